//! A collection's target table and how each of its columns is filled.

use std::collections::{BTreeMap, HashSet};

use bson::RawDocument;

use super::file::{
    CollectionMapping, MappingFile, Missing, EXTRA_COLUMN, ID_COLUMN, MISSING_COLUMN,
};
use super::new_fields::{AddedColumn, FieldKind, NewField, NewFields};
use crate::cell::ValueOptions;
use crate::column_type::ColumnType;
use crate::identifier::{self, Taken};

/// Where a column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A field, by path.
    Field(Vec<String>),
    /// The `_id`, as text whatever its type (the default table's key).
    IdText,
    /// The whole document as jsonb.
    Document,
    /// The fields no other column reads, as a jsonb object.
    Extra,
    /// The mapped paths the document lacks, as text[].
    Missing,
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
}

/// A child table: one row per element of an array field.
#[derive(Debug, Clone)]
pub struct ChildPlan {
    /// The table.
    pub table: String,
    /// The array's path, split at its dots.
    pub path: Vec<String>,
    /// The elements' type.
    pub ty: ColumnType,
}

impl ChildPlan {
    /// The child table's columns, in COPY order.
    pub const COLUMNS: [&'static str; 3] = ["_parent", "_position", "value"];
}

/// A collection's target table and how to fill it.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The table.
    pub table: String,
    /// Its columns, in COPY order.
    pub columns: Vec<ColumnPlan>,
    /// Index of the primary-key column, if any.
    pub primary_key: Option<usize>,
    /// Its child tables.
    pub children: Vec<ChildPlan>,
    /// How values convert.
    pub options: ValueOptions,
    /// Where fields no column reads land.
    pub new_fields: NewFields,
    /// How many columns may be added for new fields.
    pub max_new_columns: usize,
    /// The fields that have had a column added, whether or not the plan uses it.
    pub(super) registered: HashSet<String>,
    /// The paths columns and children read; `None` when the whole document is kept.
    pub(super) read: Option<PathTree>,
}

/// The set of dotted paths a plan reads, as a tree of keys.
#[derive(Debug, Clone, Default)]
pub(super) struct PathTree {
    /// The whole value at this path is read.
    pub(super) whole: bool,
    pub(super) children: BTreeMap<String, PathTree>,
}

impl PathTree {
    fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.whole = true,
            Some((first, rest)) => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }
}

fn split_path(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

impl TablePlan {
    /// The default table of a collection without a mapping: `_id text` and `doc jsonb`.
    pub fn default_for(collection: &str) -> Self {
        TablePlan {
            table: identifier::fitted(collection),
            columns: vec![
                ColumnPlan {
                    name: "_id".to_string(),
                    source: Source::IdText,
                    ty: ColumnType::Text,
                },
                ColumnPlan {
                    name: "doc".to_string(),
                    source: Source::Document,
                    ty: ColumnType::Jsonb,
                },
            ],
            primary_key: Some(0),
            children: Vec::new(),
            options: ValueOptions::default(),
            new_fields: NewFields::Extra,
            max_new_columns: 0,
            registered: HashSet::new(),
            read: None,
        }
    }

    pub(super) fn mapped(collection: &str, mapping: &CollectionMapping) -> Self {
        let table = mapping
            .table
            .clone()
            .unwrap_or_else(|| identifier::fitted(collection));
        let mut taken = Taken::default();
        for name in mapping.columns.iter().filter_map(|c| c.name.as_deref()) {
            taken.claim(name);
        }
        let mut read = PathTree::default();
        let mut columns: Vec<ColumnPlan> = mapping
            .columns
            .iter()
            .map(|c| {
                let path = split_path(&c.path);
                read.insert(&path);
                ColumnPlan {
                    name: c
                        .name
                        .clone()
                        .unwrap_or_else(|| taken.generate(&c.path.replace('.', "_"))),
                    // A text key takes every `_id` type, written so that two `_id`s
                    // never share a key (see `Cell::id_text`).
                    source: if c.path == "_id" && c.ty == ColumnType::Text {
                        Source::IdText
                    } else {
                        Source::Field(path)
                    },
                    ty: c.ty,
                }
            })
            .collect();
        let primary_key = mapping.columns.iter().position(|c| c.path == "_id");
        let children = mapping
            .children
            .iter()
            .map(|child| {
                let path = split_path(&child.path);
                read.insert(&path);
                ChildPlan {
                    table: child.table.clone().unwrap_or_else(|| {
                        identifier::fitted(&format!("{table}_{}", child.path.replace('.', "_")))
                    }),
                    path,
                    ty: child.ty,
                }
            })
            .collect();
        columns.push(ColumnPlan {
            name: taken.generate(EXTRA_COLUMN),
            source: Source::Extra,
            ty: ColumnType::Jsonb,
        });
        if mapping.missing == Missing::Distinct {
            columns.push(ColumnPlan {
                name: taken.generate(MISSING_COLUMN),
                source: Source::Missing,
                ty: ColumnType::TextArray,
            });
        }
        // Every table has a key from `_id`: it is what lands each document once,
        // whatever batches it travelled in. A mapping that names no column for `_id`
        // gets one, as text (see [`Cell::id_text`](crate::cell::Cell::id_text)).
        let primary_key = primary_key.or_else(|| {
            read.insert(&["_id".to_string()]);
            columns.push(ColumnPlan {
                name: taken.generate(ID_COLUMN),
                source: Source::IdText,
                ty: ColumnType::Text,
            });
            Some(columns.len() - 1)
        });
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
            registered: HashSet::new(),
            read: Some(read),
        }
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
            });
        }
        self
    }

    /// The type of the primary key, which child tables refer to.
    pub fn primary_key_type(&self) -> Option<ColumnType> {
        self.primary_key.map(|pk| self.columns[pk].ty)
    }
}

impl Source {
    /// The top-level field this source reads, if it reads one.
    pub(super) fn top_key(&self) -> Option<&str> {
        match self {
            Source::Field(path) => path.first().map(String::as_str),
            Source::IdText => Some("_id"),
            Source::Added { field, .. } => Some(field),
            Source::Document | Source::Extra | Source::Missing => None,
        }
    }
}

impl MappingFile {
    /// The plan for a collection: its mapping, or the default `_id` + `doc` table.
    pub fn plan(&self, collection: &str) -> TablePlan {
        match self.collections.get(collection) {
            Some(mapping) => TablePlan::mapped(collection, mapping),
            None => TablePlan::default_for(collection),
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
