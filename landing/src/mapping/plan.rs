//! A collection's target table and how each of its columns is filled.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use bson::RawDocument;

use super::child_plan::{ChildContext, ChildPlan};
use super::computed::Expression;
use super::field_readers::FieldReaders;
use super::file::{
    ChildMapping, CollectionMapping, MappingFile, Missing, Naming, SurrogateKey, EXTRA_COLUMN,
    ID_COLUMN, MISSING_COLUMN,
};
use super::new_fields::{AddedColumn, FieldKind, NewField, NewFields};
use super::path_tree::{split_path, PathTree};
use super::reference::Reference;
use super::table_name::{generated_table, qualified};
use crate::cell::ValueOptions;
use crate::column_type::ColumnType;
use crate::identifier::{self, Taken};
use crate::transform::{Chain, ChainError};

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A field, by path.
    Field(Vec<String>),
    /// A field holding another document's `_id`, by path.
    Reference(Vec<String>, Reference),
    /// The `_id`, as text whatever its type (the default table's key).
    IdText,
    /// A UUID derived from an ObjectId `_id` (`key = "uuid"`).
    IdUuid,
    /// The whole document as jsonb.
    Document,
    /// The fields no other column reads, as a jsonb object.
    Extra,
    /// The mapped paths the document lacks, as text[].
    Missing,
    /// A computed column's expression over the document (`None`: not compiled,
    /// every value a reject).
    Computed(Option<Expression>),
    /// A top-level field that appeared after the mapping was written, when its value
    /// is of `kind`; other values of the field stay in `_extra`.
    Added {
        /// The field.
        field: String,
        /// The kind of value the column holds.
        kind: FieldKind,
    },
}

/// One column of a table: its name, where its value comes from, its type.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    /// The column's name, fitted to PostgreSQL's limits.
    pub name: String,
    /// Where the column's value comes from.
    pub source: Source,
    /// Its type.
    pub ty: ColumnType,
    /// `NOT NULL`: a document without a value is a reject.
    pub required: bool,
    /// What is done to the value first; an error when its keys were not read (every
    /// value is then a reject, never plaintext).
    pub transform: Option<Result<Arc<Chain>, ChainError>>,
}

impl ColumnPlan {
    /// The key the column's values are sealed with (`encrypt`, `reencrypt`).
    pub fn sealed_with(&self) -> Option<&crate::transform::keys::Secret> {
        self.transform.as_ref()?.as_ref().ok()?.sealed_with()
    }
}

/// A collection's target table and how to fill it.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The table: `name`, or `schema.name`.
    pub table: String,
    /// Its columns, in COPY order.
    pub columns: Vec<ColumnPlan>,
    /// Index of the primary-key column, if any.
    pub primary_key: Option<usize>,
    /// Its child tables, each after its parent.
    pub children: Vec<ChildPlan>,
    /// How values convert.
    pub options: ValueOptions,
    /// Where fields no column reads land.
    pub new_fields: NewFields,
    /// How many columns may be added for new fields.
    pub max_new_columns: usize,
    /// How names of columns added for new fields are written.
    pub naming: Naming,
    /// The fields that have had a column added, whether or not the plan uses it.
    pub(super) registered: HashSet<String>,
    /// The paths columns and children read; `None` when the whole document is kept.
    pub(super) read: Option<PathTree>,
    /// The paths of transformed columns: their source values are left out of what
    /// a reject keeps.
    pub withheld: Vec<String>,
    /// Which columns and child tables read each top-level field, found at the first
    /// row (see [`FieldReaders`]).
    pub(super) field_readers: OnceLock<FieldReaders>,
}

impl TablePlan {
    /// The default table of a collection without a mapping: `_id text` and `doc jsonb`.
    pub fn default_for(collection: &str) -> Self {
        Self::default_in(collection, Naming::Source, None)
    }

    fn default_in(collection: &str, naming: Naming, schema: Option<&String>) -> Self {
        let column = |name: &str, source, ty| ColumnPlan {
            name: name.to_string(),
            source,
            ty,
            required: false,
            transform: None,
        };
        TablePlan {
            table: qualified(schema, generated_table(naming, collection)),
            columns: vec![
                column("_id", Source::IdText, ColumnType::Text),
                column("doc", Source::Document, ColumnType::Jsonb),
            ],
            primary_key: Some(0),
            children: Vec::new(),
            options: ValueOptions::default(),
            new_fields: NewFields::Extra,
            max_new_columns: 0,
            naming,
            registered: HashSet::new(),
            read: None,
            withheld: Vec::new(),
            field_readers: OnceLock::new(),
        }
    }

    pub(super) fn mapped(
        collection: &str,
        mapping: &CollectionMapping,
        file: &MappingFile,
    ) -> Self {
        let naming = mapping.naming.unwrap_or(file.naming);
        let (in_schema, wanted) = file.placement(collection);
        let schema = mapping.schema.as_ref().or(in_schema);
        let table = qualified(
            schema,
            mapping
                .table
                .clone()
                .unwrap_or_else(|| generated_table(naming, &wanted)),
        );
        let mut taken = Taken::default();
        for name in mapping.columns.iter().filter_map(|c| c.name.as_deref()) {
            taken.claim(name);
        }
        for computed in &mapping.computed {
            taken.claim(&computed.name);
        }
        let mut read = PathTree::default();
        let mut columns: Vec<ColumnPlan> = mapping
            .columns
            .iter()
            .map(|c| {
                let path = split_path(&c.path);
                read.insert(&path);
                ColumnPlan {
                    name: c.name.clone().unwrap_or_else(|| {
                        taken.generate(&naming.apply(&c.path.replace('.', "_")))
                    }),
                    // A text key takes every `_id` type, written so that two `_id`s
                    // never share a key (see `Cell::id_text`).
                    source: if c.path == "_id" && mapping.key == Some(SurrogateKey::Uuid) {
                        Source::IdUuid
                    } else if c.path == "_id" && c.ty == ColumnType::Text {
                        Source::IdText
                    } else if let Some(to) = &c.references {
                        Source::Reference(path, Reference::to(file, to))
                    } else {
                        Source::Field(path)
                    },
                    ty: c.ty,
                    required: c.required,
                    transform: file.compiled(&c.transform, c.ty),
                }
            })
            .collect();
        let primary_key = mapping.columns.iter().position(|c| c.path == "_id");
        for computed in &mapping.computed {
            columns.push(ColumnPlan {
                name: computed.name.clone(),
                source: Source::Computed(computed.compiled.clone()),
                ty: computed.ty,
                required: computed.required,
                transform: None,
            });
        }
        columns.push(ColumnPlan {
            name: taken.generate(EXTRA_COLUMN),
            source: Source::Extra,
            ty: ColumnType::Jsonb,
            required: false,
            transform: None,
        });
        if mapping.missing == Missing::Distinct {
            columns.push(ColumnPlan {
                name: taken.generate(MISSING_COLUMN),
                source: Source::Missing,
                ty: ColumnType::TextArray,
                required: false,
                transform: None,
            });
        }
        // Every table has a key from `_id`: it is what lands each document once,
        // whatever batches it travelled in. A mapping that names no column for `_id`
        // gets one, as text (see [`Cell::id_text`](crate::cell::Cell::id_text)).
        let primary_key = primary_key.or_else(|| {
            read.insert(&["_id".to_string()]);
            let (source, ty) = match mapping.key {
                Some(SurrogateKey::Uuid) => (Source::IdUuid, ColumnType::Uuid),
                None => (Source::IdText, ColumnType::Text),
            };
            columns.push(ColumnPlan {
                name: taken.generate(ID_COLUMN),
                source,
                ty,
                required: false,
                transform: None,
            });
            Some(columns.len() - 1)
        });
        let key = primary_key.map_or(ColumnType::Text, |pk| columns[pk].ty);
        let mut children = Vec::new();
        let (schema_of_table, table_name) = identifier::split_table(&table);
        let context = ChildContext {
            file,
            naming,
            schema: schema_of_table.map(str::to_string),
            document_key: key,
        };
        for child in &mapping.children {
            read.insert(&split_path(&child.path));
            context.plan(child, table_name, None, &mut children);
        }
        TablePlan {
            table,
            columns,
            primary_key,
            children,
            options: ValueOptions {
                json: mapping.json,
                legacy_uuid: mapping.legacy_uuid,
            },
            new_fields: mapping.new_fields,
            max_new_columns: mapping.max_new_columns,
            naming,
            registered: HashSet::new(),
            read: Some(read),
            withheld: withheld(&mapping.columns, &mapping.children, ""),
            field_readers: OnceLock::new(),
        }
    }

    /// Which columns and child tables read each top-level field.
    pub(super) fn field_readers(&self) -> &FieldReaders {
        self.field_readers.get_or_init(|| {
            FieldReaders::of(
                self.columns.iter().map(|c| c.source.top_key()),
                self.children
                    .iter()
                    .map(|c| c.path.first().map(String::as_str)),
            )
        })
    }

    /// The plan with the columns added for new fields (see [`crate::added_columns`]) after its
    /// own. A field the mapping has come to read since is left to the mapping.
    pub fn with_added(mut self, added: &[AddedColumn]) -> Self {
        let Some(read) = &self.read else {
            return self;
        };
        self.registered = added.iter().map(|a| a.field.clone()).collect();
        let fresh: Vec<&AddedColumn> = added
            .iter()
            .filter(|a| !read.children.contains_key(&a.field))
            .collect();
        for column in fresh {
            let name_taken = self
                .columns
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&column.name));
            if name_taken {
                // The mapping has since named a column like this one: the field stays
                // in `_extra` (it is registered, so not added again) rather than the
                // table getting one name twice.
                tracing::warn!(
                    table = %self.table,
                    column = %column.name,
                    field = %column.field,
                    "the mapping names a column added for another field; that field lands in _extra"
                );
                continue;
            }
            self.columns.push(ColumnPlan {
                name: column.name.clone(),
                source: Source::Added {
                    field: column.field.clone(),
                    kind: column.kind,
                },
                ty: column.kind.column_type(),
                required: false,
                transform: None,
            });
        }
        // Its readers are found again from its columns as they are now.
        self.field_readers = OnceLock::new();
        self
    }

    /// The type of the primary key, which child tables refer to.
    pub fn primary_key_type(&self) -> Option<ColumnType> {
        self.primary_key.map(|pk| self.columns[pk].ty)
    }
}

impl Source {
    /// Whether this source reads its top-level field whole (a mapping's column of a
    /// top-level path): the field is then in the plan's `read` tree as read whole.
    pub(super) fn reads_whole_field(&self) -> bool {
        match self {
            Source::Field(path) | Source::Reference(path, _) => path.len() == 1,
            Source::IdText | Source::IdUuid => true,
            _ => false,
        }
    }

    /// The top-level field this source reads, if it reads one.
    pub(super) fn top_key(&self) -> Option<&str> {
        match self {
            Source::Field(path) | Source::Reference(path, _) => path.first().map(String::as_str),
            Source::IdText | Source::IdUuid => Some("_id"),
            Source::Added { field, .. } => Some(field),
            Source::Document | Source::Extra | Source::Missing | Source::Computed(_) => None,
        }
    }
}

/// The dotted paths of the transformed columns, of the table and of its child
/// tables' elements (`items.card`: the field in every element of `items`).
fn withheld(
    columns: &[super::ColumnMapping],
    children: &[ChildMapping],
    prefix: &str,
) -> Vec<String> {
    let mut paths: Vec<String> = columns
        .iter()
        .filter(|c| !c.transform.is_empty())
        .map(|c| format!("{prefix}{}", c.path))
        .collect();
    for child in children {
        paths.extend(withheld(
            &child.columns,
            &child.children,
            &format!("{prefix}{}.", child.path),
        ));
    }
    paths
}

impl MappingFile {
    /// The plan for a collection: its mapping, or the default `_id` + `doc` table.
    pub fn plan(&self, collection: &str) -> TablePlan {
        match self.collections.get(collection) {
            Some(mapping) => TablePlan::mapped(collection, mapping, self),
            None => {
                let (schema, wanted) = self.placement(collection);
                TablePlan::default_in(&wanted, self.naming, schema)
            }
        }
    }

    /// Where a collection's table goes unless its mapping says: its schema, and the
    /// name its table's name is generated from. A collection `shop.orders` of a
    /// database with a `[databases.shop]` entry goes to that entry's schema, under its
    /// prefix; any other to the file's schema, under its own name.
    pub fn placement<'a>(&'a self, collection: &str) -> (Option<&'a String>, String) {
        let placed = collection
            .split_once('.')
            .and_then(|(database, rest)| Some((self.databases.get(database)?, rest)));
        match placed {
            Some((database, rest)) => (
                database.schema.as_ref().or(self.schema.as_ref()),
                format!("{}{rest}", database.prefix.as_deref().unwrap_or_default()),
            ),
            None => (self.schema.as_ref(), collection.to_string()),
        }
    }
}

impl TablePlan {
    /// The top-level fields of `docs` that would get columns of their own and have
    /// none yet, each with the kind of its first non-null value; none unless the
    /// mapping asks for columns. Empty keys, which cannot name a column, stay in
    /// `_extra`, and so do all new fields once `max_new_columns` have been added;
    /// unreadable documents are left for [`TablePlan::row`] to reject.
    pub fn new_fields_in<'a>(&self, docs: impl IntoIterator<Item = &'a [u8]>) -> Vec<NewField> {
        let Some(read) = self.read.as_ref() else {
            return Vec::new();
        };
        if self.new_fields != NewFields::Columns || self.registered.len() >= self.max_new_columns {
            return Vec::new();
        }
        let mut found: Vec<NewField> = Vec::new();
        for bytes in docs {
            let Ok(doc) = RawDocument::from_bytes(bytes) else {
                continue;
            };
            for (key, value) in doc.iter().flatten() {
                let key = key.as_str();
                let known = key.is_empty()
                    || read.children.contains_key(key)
                    || self.registered.contains(key)
                    || found.iter().any(|f| f.field == key);
                if known {
                    continue;
                }
                if let Some(kind) = FieldKind::of(value) {
                    found.push(NewField {
                        field: key.to_string(),
                        kind,
                    });
                }
            }
        }
        found
    }
}
