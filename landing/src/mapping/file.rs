//! The mapping file, as written and checked.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use common::run_state::RunMapping;
use serde::{Deserialize, Serialize};

use super::computed::{ComputedColumn, Expression};
use super::new_fields::NewFields;
use crate::cell::LegacyUuid;
use crate::column_type::ColumnType;
use crate::extjson::JsonMode;
use crate::identifier::{self, MAX_IDENTIFIER_BYTES};
use crate::transform::keys::{KeyError, KeySource, Keyring};
use crate::transform::{self, ChainError, Transform};

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
    /// Per collection, by its name.
    #[serde(default)]
    pub collections: BTreeMap<String, CollectionMapping>,
    /// The keys, once [`MappingFile::unlock`] has read them.
    #[serde(skip)]
    pub(super) keyring: Option<Keyring>,
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

/// PostgreSQL's limit on a table's columns.
const MAX_TABLE_COLUMNS: usize = 1600;

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

/// Why a mapping file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The file cannot be read.
    #[error("cannot read mapping file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML or YAML of a mapping.
    #[error("mapping file {path}: {detail}")]
    Syntax {
        /// The file.
        path: String,
        /// What the parser said.
        detail: String,
    },
    /// A key a transform needs cannot be read.
    #[error("mapping file {path}: {source}")]
    Key {
        /// The file.
        path: String,
        /// Which key, and where it was looked for.
        #[source]
        source: KeyError,
    },
    /// The mapping parses but cannot work.
    #[error("mapping file {path}: {invalid}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        #[source]
        invalid: InvalidMapping,
    },
}

/// A mapping that parses but cannot work, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("collection {collection:?}: {problem}")]
pub struct InvalidMapping {
    /// The collection whose mapping is wrong.
    pub collection: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with one collection's mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A table without columns.
    #[error("no columns")]
    NoColumns,
    /// A name longer than PostgreSQL keeps.
    #[error("{what} {name:?} is {} bytes; PostgreSQL keeps only {MAX_IDENTIFIER_BYTES}: choose a shorter one, or leave the name out to have one generated", .name.len())]
    NameTooLong {
        /// What is named (a table, a column).
        what: &'static str,
        /// The name.
        name: String,
    },
    /// More columns than a table may hold.
    #[error("{columns} columns and max_new_columns = {max_new_columns} exceed PostgreSQL's {MAX_TABLE_COLUMNS} columns per table; lower max_new_columns")]
    TooManyColumns {
        /// Columns mapped.
        columns: usize,
        /// Columns that may be added.
        max_new_columns: usize,
    },
    /// A column with an empty name or path.
    #[error("a column with an empty name or path")]
    Empty,
    /// A column named twice.
    #[error("column {0:?} appears twice")]
    ColumnTwice(String),
    /// A child table whose parent has no key from `_id`.
    #[error("child table for {0:?} needs a column with path \"_id\" to refer to its parent")]
    ChildWithoutParentKey(String),
    /// A child table that says neither what its elements are nor how to read them, or
    /// says both.
    #[error("child table for {0:?}: give either `type` (an array of scalars) or `columns` (an array of subdocuments)")]
    ChildShape(String),
    /// A child key that no column of the child reads.
    #[error("child table for {path:?}: key {key:?} must be the path of one of its columns")]
    ChildKey {
        /// The array's path.
        path: String,
        /// The key given.
        key: String,
    },
    /// A table name with more than one dot, or an empty part.
    #[error("table {0:?}: a dot separates a schema from a table (`shop.orders`), so a name has at most one, with a name on each side")]
    TableName(String),
    /// A reference whose type is not the referenced key's.
    #[error("{path:?} references {collection:?}, whose key is {}; the column must be {} too, so that it joins that key", .key.sql(), .key.sql())]
    ReferenceType {
        /// The referencing field.
        path: String,
        /// The referenced collection.
        collection: String,
        /// The referenced key's type.
        key: ColumnType,
    },
    /// A surrogate key with an `_id` column of another type.
    #[error("key = \"uuid\" makes the _id column a uuid: write type = \"uuid\" for path \"_id\" (or leave the column out)")]
    SurrogateType,
    /// A reference held in an array column.
    #[error("{0:?}: an array of references lands in a join table: children = [{{ path = {0:?}, references = \"...\" }}]")]
    ReferenceArray(String),
    /// A child table of arrays.
    #[error("child table for {path:?}: elements must have a scalar type, not {}", .ty.sql())]
    ChildOfArrays {
        /// The array's path.
        path: String,
        /// The element type given.
        ty: ColumnType,
    },
    /// A path read by two columns.
    #[error("path {0:?} is mapped twice")]
    PathTwice(String),
    /// A `jsonb` key column.
    #[error("the _id column is jsonb, whose equality ignores key order: the _ids {{a: 1, b: 2}} and {{b: 2, a: 1}}, distinct in MongoDB, would share one row; use type = \"text\" (canonical Extended JSON, order kept)")]
    JsonbKey,
    /// A transform that cannot fill its column.
    #[error("{path:?}: transform: {error}")]
    Transform {
        /// The column's path.
        path: String,
        /// What is wrong.
        error: Box<ChainError>,
    },
    /// A transform where the value must stay as it is.
    #[error("{path:?}: {why}")]
    TransformHere {
        /// The column's path.
        path: String,
        /// Why not here.
        why: &'static str,
    },
    /// A computed column whose expression is not CEL.
    #[error("computed column {name:?}: {reason}")]
    Expression {
        /// The column.
        name: String,
        /// The compiler's words.
        reason: String,
    },
    /// A filter that is not a query document.
    #[error("filter: {0}")]
    Filter(String),
    /// A bookkeeping table's name.
    #[error("table {0:?} is a name the migration keeps for its bookkeeping (every table starting with {RESERVED_PREFIX}); choose another table")]
    Reserved(String),
}

/// Tables whose names start with this are the migration's own (ledger, rejects, dead
/// letters, added columns): no collection may land in one.
pub const RESERVED_PREFIX: &str = "_migrate_";

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
        self.collections
            .values()
            .any(|c| c.columns.iter().any(|col| !col.transform.is_empty()))
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

/// Whether a name fits PostgreSQL and is not the migration's own.
fn fits(what: &'static str, name: &str) -> Result<(), Problem> {
    if what == "table" {
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(Problem::TableName(name.to_string()));
        }
        if is_reserved(name) {
            return Err(Problem::Reserved(name.to_string()));
        }
        for part in parts {
            if part.len() > MAX_IDENTIFIER_BYTES {
                return Err(Problem::NameTooLong {
                    what,
                    name: part.to_string(),
                });
            }
        }
        return Ok(());
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(Problem::NameTooLong {
            what,
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Checks the columns of a table or child table: names fit and are unique, paths
/// are read once, references have their key's type.
fn check_columns<'a>(
    columns: &'a [ColumnMapping],
    file: &MappingFile,
    paths: &mut HashSet<&'a str>,
) -> Result<(), Problem> {
    let mut names = HashSet::new();
    for column in columns {
        if column.path.is_empty() || column.name.as_deref() == Some("") {
            return Err(Problem::Empty);
        }
        if let Some(name) = &column.name {
            fits("column", name)?;
            if !names.insert(name.as_str()) {
                return Err(Problem::ColumnTwice(name.clone()));
            }
        }
        if let Some(collection) = &column.references {
            if column.ty.element().is_some() {
                return Err(Problem::ReferenceArray(column.path.clone()));
            }
            let key = file.key_type(collection);
            if column.ty != key {
                return Err(Problem::ReferenceType {
                    path: column.path.clone(),
                    collection: collection.clone(),
                    key,
                });
            }
        }
        check_transform(column, file)?;
        if !paths.insert(column.path.as_str()) {
            return Err(Problem::PathTwice(column.path.clone()));
        }
    }
    Ok(())
}

/// A column's transform fits its type, names keys `[keys]` has, and leaves keys and
/// references as they are.
fn check_transform(column: &ColumnMapping, file: &MappingFile) -> Result<(), Problem> {
    if column.transform.is_empty() {
        return Ok(());
    }
    let here = |why| {
        Err(Problem::TransformHere {
            path: column.path.clone(),
            why,
        })
    };
    if column.path == "_id" {
        return here("the key is not transformed: rows are found by it on the change path");
    }
    if column.references.is_some() {
        return here("a reference is not transformed: it must equal the key it refers to");
    }
    if column.required && column.transform.contains(&Transform::Redact) {
        return here("a redacted column is NULL, so it cannot be required");
    }
    for key in column.transform.iter().flat_map(Transform::keys) {
        if !file.keys.contains_key(key) {
            return Err(Problem::Transform {
                path: column.path.clone(),
                error: Box::new(ChainError::Key(KeyError::Unknown(key.to_string()))),
            });
        }
    }
    transform::check(&column.transform, column.ty).map_err(|error| Problem::Transform {
        path: column.path.clone(),
        error: Box::new(error),
    })
}

impl ChildMapping {
    fn check(&self, file: &MappingFile) -> Result<(), Problem> {
        if let Some(table) = &self.table {
            fits("table", table)?;
        }
        for name in [&self.name, &self.parent_column].into_iter().flatten() {
            fits("column", name)?;
        }
        match (self.ty, self.columns.is_empty()) {
            (Some(ty), true) => {
                if ty.element().is_some() {
                    return Err(Problem::ChildOfArrays {
                        path: self.path.clone(),
                        ty,
                    });
                }
                if let Some(collection) = &self.references {
                    let key = file.key_type(collection);
                    if ty != key {
                        return Err(Problem::ReferenceType {
                            path: self.path.clone(),
                            collection: collection.clone(),
                            key,
                        });
                    }
                }
                if self.key.is_some() || !self.children.is_empty() {
                    return Err(Problem::ChildShape(self.path.clone()));
                }
            }
            (None, false) => {
                if self.references.is_some() || self.name.is_some() {
                    return Err(Problem::ChildShape(self.path.clone()));
                }
                let mut paths = HashSet::new();
                check_columns(&self.columns, file, &mut paths)?;
                if let Some(column) = self.columns.iter().find(|c| !c.transform.is_empty()) {
                    return Err(Problem::TransformHere {
                        path: format!("{}.{}", self.path, column.path),
                        why: "transforms apply to a table's columns, not yet to a child table's",
                    });
                }
                if let Some(key) = &self.key {
                    if !paths.contains(key.as_str()) {
                        return Err(Problem::ChildKey {
                            path: self.path.clone(),
                            key: key.clone(),
                        });
                    }
                }
                for child in &self.children {
                    child.check(file)?;
                    if !paths.insert(child.path.as_str()) {
                        return Err(Problem::PathTwice(child.path.clone()));
                    }
                }
            }
            _ => return Err(Problem::ChildShape(self.path.clone())),
        }
        Ok(())
    }
}

/// A filter's text as a query document.
fn parse_filter(text: &str) -> Result<bson::Document, String> {
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

    fn check(&self, file: &MappingFile) -> Result<(), Problem> {
        if let Some(filter) = &self.filter {
            parse_filter(filter).map_err(Problem::Filter)?;
        }
        if self.columns.is_empty() {
            return Err(Problem::NoColumns);
        }
        if let Some(table) = &self.table {
            fits("table", table)?;
        }
        for schema in [&self.schema, &file.schema].into_iter().flatten() {
            if schema.is_empty() || schema.contains('.') {
                return Err(Problem::TableName(format!("{schema}.")));
            }
            fits("column", schema)?;
        }
        // Mapped columns, _extra, _missing, the key and the added ones.
        let most = self
            .columns
            .len()
            .saturating_add(3)
            .saturating_add(self.max_new_columns);
        if most > MAX_TABLE_COLUMNS {
            return Err(Problem::TooManyColumns {
                columns: self.columns.len(),
                max_new_columns: self.max_new_columns,
            });
        }
        if self
            .columns
            .iter()
            .any(|c| c.path == "_id" && c.ty == ColumnType::Jsonb)
        {
            return Err(Problem::JsonbKey);
        }
        if self.key == Some(SurrogateKey::Uuid)
            && self
                .columns
                .iter()
                .any(|c| c.path == "_id" && c.ty != ColumnType::Uuid)
        {
            return Err(Problem::SurrogateType);
        }
        let mut paths = HashSet::new();
        check_columns(&self.columns, file, &mut paths)?;
        for computed in &self.computed {
            fits("column", &computed.name)?;
            if computed.name.is_empty() {
                return Err(Problem::Empty);
            }
            let named = self.columns.iter().filter_map(|c| c.name.as_deref());
            let others = self.computed.iter().map(|c| c.name.as_str());
            if named.chain(others).filter(|n| *n == computed.name).count() > 1 {
                return Err(Problem::ColumnTwice(computed.name.clone()));
            }
        }
        for child in &self.children {
            if !self.columns.iter().any(|c| c.path == "_id") {
                return Err(Problem::ChildWithoutParentKey(child.path.clone()));
            }
            child.check(file)?;
            if !paths.insert(child.path.as_str()) {
                return Err(Problem::PathTwice(child.path.clone()));
            }
        }
        Ok(())
    }
}
