//! The mapping file, as written; its checks are in `check`, its errors in `problem`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::run_state::RunMapping;
use serde::{Deserialize, Serialize};

use super::computed::{ComputedColumn, Expression};
use super::new_fields::NewFields;
pub use super::problem::{InvalidMapping, MappingError, Problem, RESERVED_PREFIX};
use crate::cell::LegacyUuid;
use crate::column_type::ColumnType;
use crate::extjson::JsonMode;
use crate::identifier;
use crate::transform::keys::KeyError;
use crate::transform::keys::{KeySource, Keyring};
use crate::transform::{self, Chain, ChainError, Transform};

/// The column that keeps the fields no other column reads.
pub const EXTRA_COLUMN: &str = "_extra";
/// The column listing mapped fields absent from the document (`missing = "distinct"`).
pub const MISSING_COLUMN: &str = "_missing";
/// The key column a mapping gets when it names no column for `_id`.
pub const ID_COLUMN: &str = "_id";

/// The mapping file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// How generated names (tables, columns, child and join tables, columns added for
    /// new fields) are written; names the file gives are kept as written.
    #[serde(default, skip_serializing_if = "Naming::is_source")]
    pub naming: Naming,
    /// The PostgreSQL schema of the tables, created when missing; the search path's
    /// first schema (`public`) when absent. A collection may name its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The keys transforms use, by name: where each is (an environment variable or a
    /// file), never the key itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, KeySource>,
    /// In a run of several databases, where each one's tables go (`[databases.shop]`):
    /// without an entry, a collection `shop.orders` lands in the table `shop_orders`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub databases: BTreeMap<String, DatabaseMapping>,
    /// Per collection, by its name (`database.collection` in a run of several
    /// databases).
    #[serde(default)]
    pub collections: BTreeMap<String, CollectionMapping>,
    /// The keys, once [`MappingFile::unlock`] has read them.
    #[serde(skip)]
    pub(super) keyring: Option<Keyring>,
}

/// Where the tables of one source database go, in a run of several
/// (`[databases.<name>]`): `shop.orders` becomes `<schema>.<prefix>orders`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseMapping {
    /// The schema of the database's tables, over the file's `schema`; a collection's
    /// own `schema` or `table` still wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Put before each generated table name (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// One collection's table (`[collections.<name>]`); the keys are in
/// docs/reference/mapping.md.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionMapping {
    /// Target table; the collection's name when absent. `shop.orders` is the table
    /// `orders` in the schema `shop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The table's schema, over the file's `schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// How this collection's generated names are written, over the file's `naming`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming: Option<Naming>,
    /// A surrogate key instead of `_id` itself: `"uuid"` derives a time-ordered UUID
    /// from each ObjectId `_id` (see [`crate::cell::Cell::uuid_of_object_id`]), and every
    /// reference to the collection is written the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<SurrogateKey>,
    /// Which documents move: a MongoDB query in Extended JSON
    /// (`'{"status": {"$ne": "deleted"}}'`), applied by the producer to the snapshot
    /// and to each change (a document leaving it is deleted from the tables, one
    /// entering it lands), and by `verify` to the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Typed columns read from field paths; the one from `_id` is the key.
    pub columns: Vec<ColumnMapping>,
    /// Arrays landed as child tables, one row per element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildMapping>,
    /// Columns computed from the whole document by a CEL expression.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub computed: Vec<ComputedColumn>,
    /// How `jsonb` values are written: canonical or relaxed Extended JSON.
    #[serde(default)]
    pub json: JsonMode,
    /// The byte order of binary subtype 3 UUIDs, for `uuid` columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_uuid: Option<LegacyUuid>,
    /// Whether a missing field can be told from a null one.
    #[serde(default)]
    pub missing: Missing,
    /// Where fields no column reads land: `_extra`, or columns of their own.
    #[serde(default)]
    pub new_fields: NewFields,
    /// How many columns `new_fields = "columns"` may add to the table; later new fields
    /// land in `_extra`. A collection that uses keys as data (a key per day, per user)
    /// would otherwise grow the table to PostgreSQL's 1,600 columns and stop.
    #[serde(default = "default_max_new_columns")]
    pub max_new_columns: usize,
}

/// The default `max_new_columns`.
pub const DEFAULT_MAX_NEW_COLUMNS: usize = 100;

fn default_max_new_columns() -> usize {
    DEFAULT_MAX_NEW_COLUMNS
}

/// Whether a missing field and a null one can be told apart in the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// Both are NULL.
    #[default]
    Null,
    /// Both are NULL, and `_missing` lists the paths that were absent.
    Distinct,
}

/// A key derived from `_id` rather than `_id` itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SurrogateKey {
    /// A UUID made of the ObjectId's bytes, its time first (see
    /// [`crate::cell::Cell::uuid_of_object_id`]).
    Uuid,
}

/// How generated names are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Naming {
    /// As the source spells them: `createdAt` stays `createdAt` (quoted in SQL).
    #[default]
    Source,
    /// `createdAt` becomes `created_at`, which SQL needs no quotes for.
    SnakeCase,
}

impl Naming {
    /// A generated name for the source's `name`.
    pub fn apply(self, name: &str) -> String {
        match self {
            Naming::Source => name.to_string(),
            Naming::SnakeCase => identifier::snake_case(name),
        }
    }

    fn is_source(&self) -> bool {
        *self == Naming::Source
    }
}

/// One typed column of a table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    /// The column's name; generated from the path when absent (`address.city` →
    /// `address_city`, see [`identifier`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Dotted path of the source field.
    pub path: String,
    /// The column's type, which the value must convert to exactly.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// A document without the field, or with it null, is a reject naming the field;
    /// the column is `NOT NULL`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// The collection whose `_id` this field holds (an ObjectId, any `_id` value, or a
    /// DBRef to that collection): the value is converted as that collection's key is,
    /// so the column joins its table's key, and its type must be that key's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
    /// What is done to the value before it lands (see [`crate::transform`]): one step
    /// or a list.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "transform::one_or_many"
    )]
    pub transform: Vec<Transform>,
}

impl ColumnMapping {
    /// A column of `ty` read from `path`, named from the path.
    pub fn new(path: &str, ty: ColumnType) -> Self {
        ColumnMapping {
            name: None,
            path: path.to_string(),
            ty,
            required: false,
            references: None,
            transform: Vec::new(),
        }
    }
}

/// An array field landed as a child table, one row per element, keyed by the
/// document's key (`_parent`) and the element's position (`_position`, from 0) or a
/// field of the element (`key`).
///
/// An array of scalars gives `type` (and, for references, `references`): its
/// elements land in one column, `value` unless `name` says otherwise. An array of
/// subdocuments gives `columns`, read from each element like a table's from its
/// document, with the element fields no column reads in the child's `_extra`; its
/// own arrays may be child tables in turn (`children`), keyed by their parent
/// element's key and their own.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChildMapping {
    /// Dotted path of the array, from the document (or from the parent's element).
    pub path: String,
    /// The child table; `<table>_<field>` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// An array of scalars: the elements' type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<ColumnType>,
    /// An array of scalars: the value column's name (`value` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An array of scalars holding other documents' `_id`s (or DBRefs): a join table,
    /// its values converted as that collection's key is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<String>,
    /// An array of subdocuments: the columns read from each element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnMapping>,
    /// An array of subdocuments: the path of the column that keys an element within
    /// its parent, instead of its position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The column holding the document's key (`_parent` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_column: Option<String>,
    /// Arrays inside each element, as child tables of this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildMapping>,
}

/// Whether `table` is a bookkeeping table's name, compared as PostgreSQL folds
/// nothing: quoted identifiers are case-sensitive, so only this exact prefix.
pub fn is_reserved(table: &str) -> bool {
    identifier::split_table(table)
        .1
        .starts_with(RESERVED_PREFIX)
}

impl MappingFile {
    /// Reads and checks a mapping file.
    pub fn load(path: &Path) -> Result<Self, MappingError> {
        Self::load_recorded(Some(path)).map(|(file, _)| file)
    }

    /// Reads and checks a mapping file (none: the default tables), with what a run
    /// records of it.
    pub fn load_recorded(path: Option<&Path>) -> Result<(Self, RunMapping), MappingError> {
        let Some(path) = path else {
            return Ok((MappingFile::default(), RunMapping::default_tables()));
        };
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: shown.clone(),
            source,
        })?;
        let yaml = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"));
        let recorded = RunMapping::new(&shown, &text, yaml);
        Ok((Self::parse(&recorded)?, recorded))
    }

    /// Reads and checks a run's recorded mapping.
    pub fn parse(recorded: &RunMapping) -> Result<Self, MappingError> {
        let (shown, text, yaml) = (recorded.source.clone(), &recorded.text, recorded.yaml);
        if text.is_empty() && recorded == &RunMapping::default_tables() {
            return Ok(MappingFile::default());
        }
        let parsed = if yaml {
            serde_yaml_ng::from_str::<MappingFile>(text).map_err(|e| e.to_string())
        } else {
            toml::from_str::<MappingFile>(text).map_err(|e| e.to_string())
        };
        let file = parsed.map_err(|detail| MappingError::Syntax {
            path: shown.clone(),
            detail: detail.replace('\n', " "),
        })?;
        let mut file = file;
        file.check()
            .and_then(|()| file.compile())
            .map_err(|invalid| MappingError::Invalid {
                path: shown,
                invalid,
            })?;
        Ok(file)
    }

    /// What a file must satisfy beyond its syntax.
    ///
    /// # Errors
    /// The first collection whose mapping cannot work, and why.
    pub fn check(&self) -> Result<(), InvalidMapping> {
        for (database, mapping) in &self.databases {
            mapping.check().map_err(|problem| InvalidMapping {
                collection: format!("{database}.*"),
                problem,
            })?;
        }
        for (collection, mapping) in &self.collections {
            mapping.check(self).map_err(|problem| InvalidMapping {
                collection: collection.clone(),
                problem,
            })?;
        }
        Ok(())
    }

    /// Reads the keys the transforms use (from the environment or files), so that the
    /// plans transform; a process that lands or compares rows calls it after loading.
    /// Without it, a transformed column's every value is a reject, never plaintext.
    ///
    /// # Errors
    /// [`MappingError::Key`] naming the key and where it was looked for.
    pub fn unlock(&mut self, shown: &str) -> Result<(), MappingError> {
        if !self.transforms() {
            return Ok(());
        }
        self.keyring = Some(
            Keyring::read(&self.keys).map_err(|source| MappingError::Key {
                path: shown.to_string(),
                source,
            })?,
        );
        Ok(())
    }

    /// Compiles the computed columns' expressions.
    fn compile(&mut self) -> Result<(), InvalidMapping> {
        for (collection, mapping) in &mut self.collections {
            for computed in &mut mapping.computed {
                computed.compiled =
                    Some(Expression::compile(&computed.expression).map_err(|reason| {
                        InvalidMapping {
                            collection: collection.clone(),
                            problem: Problem::Expression {
                                name: computed.name.clone(),
                                reason,
                            },
                        }
                    })?);
            }
        }
        Ok(())
    }

    /// Whether any column is transformed.
    pub fn transforms(&self) -> bool {
        fn any(columns: &[ColumnMapping], children: &[ChildMapping]) -> bool {
            columns.iter().any(|c| !c.transform.is_empty())
                || children.iter().any(|c| any(&c.columns, &c.children))
        }
        self.collections
            .values()
            .any(|c| any(&c.columns, &c.children))
    }

    /// The file at `path`, or no mappings at all (every collection gets the default
    /// table) when there is none.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, MappingError> {
        path.map_or_else(|| Ok(MappingFile::default()), MappingFile::load)
    }

    /// The type of a collection's key, which references to it take: its `_id`
    /// column's, or text (the key a collection without one gets).
    pub fn key_type(&self, collection: &str) -> ColumnType {
        let Some(mapping) = self.collections.get(collection) else {
            return ColumnType::Text;
        };
        if mapping.key == Some(SurrogateKey::Uuid) {
            return ColumnType::Uuid;
        }
        mapping
            .columns
            .iter()
            .find(|c| c.path == "_id")
            .map_or(ColumnType::Text, |c| c.ty)
    }
}

/// A filter's text as a query document.
pub(super) fn parse_filter(text: &str) -> Result<bson::Document, String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{text:?} is not JSON: {e}"))?;
    if !json.is_object() {
        return Err(format!("{text:?} is not a query document ({{...}})"));
    }
    match bson::Bson::try_from(json) {
        Ok(bson::Bson::Document(filter)) => Ok(filter),
        Ok(_) => Err(format!("{text:?} is not a query document")),
        Err(e) => Err(format!("{text:?} is not Extended JSON: {e}")),
    }
}

impl MappingFile {
    /// Each filtered collection's filter, as a query document.
    pub fn filters(&self) -> BTreeMap<String, bson::Document> {
        self.collections
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), c.filter_document()?)))
            .collect()
    }

    /// Each filtered collection's filter as relaxed Extended JSON: how the run's
    /// manifest records the filters the producer read through, and how consumers
    /// compare theirs.
    pub fn filters_json(&self) -> BTreeMap<String, String> {
        self.filters()
            .into_iter()
            .map(|(name, f)| {
                (
                    name,
                    bson::Bson::Document(f).into_relaxed_extjson().to_string(),
                )
            })
            .collect()
    }
}

impl CollectionMapping {
    /// The filter as a query document (checked when the file was read).
    pub fn filter_document(&self) -> Option<bson::Document> {
        self.filter.as_deref().and_then(|f| parse_filter(f).ok())
    }
}

impl MappingFile {
    /// A column's transform compiled with the file's keys (an error, making every value
    /// a reject, when they were not read); `None` without one.
    pub(super) fn compiled(
        &self,
        transforms: &[crate::transform::Transform],
        ty: ColumnType,
    ) -> Option<Result<Arc<Chain>, ChainError>> {
        (!transforms.is_empty()).then(|| {
            match &self.keyring {
                Some(keyring) => Chain::compile(transforms, ty, keyring),
                None => Err(ChainError::Key(KeyError::NotRead)),
            }
            .map(Arc::new)
        })
    }
}
