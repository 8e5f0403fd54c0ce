//! Which table a collection lands in and how each document becomes a row.
//!
//! A mapping file (`--mapping FILE`, TOML, or YAML when it ends in `.yaml`/`.yml`)
//! names, per collection, a table and its columns, each with a source field path
//! (`address.city`) and a type; `producer infer` writes one from a sample:
//!
//! ```toml
//! [collections.users]
//! table = "app_users"
//! columns = [
//!   { name = "id", path = "_id", type = "text" },
//!   { path = "address.city", type = "text" },          # column "address_city"
//!   { name = "balance", path = "balance", type = "numeric" },
//!   { name = "scores", path = "scores", type = "int8[]" },
//! ]
//! children = [ { path = "tags", type = "text" } ]      # table "app_users_tags"
//! json = "canonical"       # or "relaxed", for jsonb columns
//! legacy_uuid = "java"     # binary subtype 3 into uuid columns: python, java, csharp
//! missing = "null"         # or "distinct": a `_missing text[]` column lists absent fields
//! new_fields = "extra"     # or "columns": new top-level fields become columns
//! max_new_columns = 100    # at most this many; later new fields land in `_extra`
//! ```
//!
//! Nothing in a document is dropped: every field no column or child table reads lands
//! in the table's `_extra jsonb` column, keyed by its path (`{"address":{"zip":"..."}}`),
//! NULL when there is none; with `new_fields = "columns"`, new top-level fields get
//! columns of their own instead (see [`crate::drift`]). A column whose path is `_id`
//! is the table's primary key.
//!
//! A collection with no mapping lands in a table of its own name with `_id text primary
//! key` and `doc jsonb`, the whole document as canonical Extended JSON.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use bson::{RawBsonRef, RawDocument};
use serde::{Deserialize, Serialize};

use crate::cell::{
    excerpt, json_cell, type_name, Cell, CellError, ColumnType, LegacyUuid, ValueOptions,
};
use crate::drift::{AddedColumn, FieldKind, NewField, NewFields};
use crate::extjson::{self, JsonMode};
use crate::identifier::{self, Taken, MAX_IDENTIFIER_BYTES};

/// The column that keeps the fields no other column reads.
pub const EXTRA_COLUMN: &str = "_extra";
/// The column listing mapped fields absent from the document (`missing = "distinct"`).
pub const MISSING_COLUMN: &str = "_missing";

/// The mapping file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    #[serde(default)]
    pub collections: BTreeMap<String, CollectionMapping>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionMapping {
    /// Target table; the collection's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub columns: Vec<ColumnMapping>,
    /// Arrays landed as child tables, one row per element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildMapping>,
    #[serde(default)]
    pub json: JsonMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_uuid: Option<LegacyUuid>,
    #[serde(default)]
    pub missing: Missing,
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    /// The column's name; generated from the path when absent (`address.city` →
    /// `address_city`, see [`identifier`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Dotted path of the source field.
    pub path: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// An array field landed as a child table `<table>_<field>` with columns `_parent`
/// (the parent's primary key), `_position` (the element's index, from 0) and `value`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChildMapping {
    pub path: String,
    /// The elements' type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping file {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("mapping file {path}: {detail}")]
    Invalid { path: String, detail: String },
}

impl MappingFile {
    /// Reads and checks a mapping file.
    pub fn load(path: &Path) -> Result<Self, MappingError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MappingError::Read {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        let yaml = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml"));
        let parsed = if yaml {
            serde_yaml_ng::from_str::<MappingFile>(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str::<MappingFile>(&text).map_err(|e| e.to_string())
        };
        let file = parsed.map_err(|detail| MappingError::Invalid {
            path: shown.clone(),
            detail: detail.replace('\n', " "),
        })?;
        file.check().map_err(|detail| MappingError::Invalid {
            path: shown,
            detail,
        })?;
        Ok(file)
    }

    /// What a file must satisfy beyond its syntax.
    pub fn check(&self) -> Result<(), String> {
        for (collection, mapping) in &self.collections {
            mapping
                .check()
                .map_err(|detail| format!("collection {collection:?}: {detail}"))?;
        }
        Ok(())
    }

    /// The file at `path`, or no mappings at all (every collection gets the default
    /// table) when there is none.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, MappingError> {
        path.map_or_else(|| Ok(MappingFile::default()), MappingFile::load)
    }

    /// The plan for a collection: its mapping, or the default `_id` + `doc` table.
    pub fn plan(&self, collection: &str) -> TablePlan {
        match self.collections.get(collection) {
            Some(mapping) => TablePlan::mapped(collection, mapping),
            None => TablePlan::default_for(collection),
        }
    }
}

impl CollectionMapping {
    fn check(&self) -> Result<(), String> {
        if self.columns.is_empty() {
            return Err("no columns".to_string());
        }
        let too_long = |what: &str, name: &str| {
            format!(
                "{what} {name:?} is {} bytes; PostgreSQL keeps only {MAX_IDENTIFIER_BYTES}: choose a shorter one, or leave the name out to have one generated",
                name.len()
            )
        };
        if let Some(table) = &self.table {
            if table.len() > MAX_IDENTIFIER_BYTES {
                return Err(too_long("table", table));
            }
        }
        // Mapped columns, _extra, _missing and the added ones.
        if self.columns.len() + 2 + self.max_new_columns > MAX_TABLE_COLUMNS {
            return Err(format!(
                "{} columns and max_new_columns = {} exceed PostgreSQL's {MAX_TABLE_COLUMNS} columns per table; lower max_new_columns",
                self.columns.len(),
                self.max_new_columns
            ));
        }
        let mut names = std::collections::HashSet::new();
        let mut paths = std::collections::HashSet::new();
        for column in &self.columns {
            if column.path.is_empty() || column.name.as_deref() == Some("") {
                return Err("a column with an empty name or path".to_string());
            }
            if let Some(name) = &column.name {
                if name.len() > MAX_IDENTIFIER_BYTES {
                    return Err(too_long("column", name));
                }
                if !names.insert(name.as_str()) {
                    return Err(format!("column {name:?} appears twice"));
                }
            }
            paths.insert(column.path.as_str());
        }
        for child in &self.children {
            if !self.columns.iter().any(|c| c.path == "_id") {
                return Err(format!(
                    "child table for {:?} needs a column with path \"_id\" to refer to its parent",
                    child.path
                ));
            }
            if child.ty.element().is_some() {
                return Err(format!(
                    "child table for {:?}: elements must have a scalar type, not {}",
                    child.path,
                    child.ty.sql()
                ));
            }
            if !paths.insert(child.path.as_str()) {
                return Err(format!("path {:?} is mapped twice", child.path));
            }
            if let Some(table) = &child.table {
                if table.len() > MAX_IDENTIFIER_BYTES {
                    return Err(too_long("table", table));
                }
            }
        }
        Ok(())
    }
}

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
    Added { field: String, kind: FieldKind },
}

#[derive(Debug, Clone)]
pub struct ColumnPlan {
    pub name: String,
    pub source: Source,
    pub ty: ColumnType,
}

/// A child table: one row per element of an array field.
#[derive(Debug, Clone)]
pub struct ChildPlan {
    pub table: String,
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
    pub table: String,
    pub columns: Vec<ColumnPlan>,
    /// Index of the primary-key column, if any.
    pub primary_key: Option<usize>,
    pub children: Vec<ChildPlan>,
    pub options: ValueOptions,
    pub new_fields: NewFields,
    /// How many columns may be added for new fields.
    pub max_new_columns: usize,
    /// The fields that have had a column added, whether or not the plan uses it.
    registered: HashSet<String>,
    /// The paths columns and children read; `None` when the whole document is kept.
    read: Option<PathTree>,
}

/// One document's rows: its row in the table, and its rows in each child table (in
/// the order of [`TablePlan::children`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub cells: Vec<Cell>,
    pub children: Vec<Vec<Vec<Cell>>>,
}

/// A document that cannot become a row, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The field path at fault (empty when the document itself is unreadable).
    pub field: String,
    pub expected: Option<ColumnType>,
    pub found: String,
    pub reason: String,
    /// A short rendering of the value at fault.
    pub excerpt: Option<String>,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.expected {
            Some(ty) => write!(
                f,
                "field {:?}: expected {}, found {}: {}",
                self.field,
                ty.sql(),
                self.found,
                self.reason
            ),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// The set of dotted paths a plan reads, as a tree of keys.
#[derive(Debug, Clone, Default)]
struct PathTree {
    /// The whole value at this path is read.
    whole: bool,
    children: BTreeMap<String, PathTree>,
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

    fn mapped(collection: &str, mapping: &CollectionMapping) -> Self {
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
                    source: Source::Field(path),
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

    /// The plan with the columns added for new fields (see [`crate::drift`]) after its
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

    /// The rows for a document as it came off the wire, which may not be BSON at all.
    pub fn row_from_bytes(&self, bytes: &[u8]) -> Result<Row, RowError> {
        let doc = RawDocument::from_bytes(bytes).map_err(|e| unreadable(e.to_string()))?;
        self.row(doc)
    }

    /// The type of the primary key, which child tables refer to.
    pub fn primary_key_type(&self) -> Option<ColumnType> {
        self.primary_key.map(|pk| self.columns[pk].ty)
    }

    /// The rows for one document.
    ///
    /// One pass over the document's top-level fields hands each to the columns that
    /// read it; looking each column's field up from the start of the document instead
    /// parsed every element once per column and was the consumer's largest cost.
    pub fn row(&self, doc: &RawDocument) -> Result<Row, RowError> {
        let mut top: Vec<Option<RawBsonRef<'_>>> = vec![None; self.columns.len()];
        let mut child_top: Vec<Option<RawBsonRef<'_>>> = vec![None; self.children.len()];
        let mut extra = self.read.as_ref().map(|_| JsonObject::default());
        // Cells of added columns, made while reading: a value that does not fit its
        // column goes to `_extra` instead.
        let mut added: Vec<Option<Cell>> = Vec::new();
        for element in doc.iter() {
            let (key, value) = element.map_err(|e| unreadable(e.to_string()))?;
            let key = key.as_str();
            let mut in_added_column = false;
            for (i, (slot, column)) in top.iter_mut().zip(&self.columns).enumerate() {
                // The first of duplicate keys wins, as with `RawDocument::get`.
                if slot.is_none() && column.source.top_key() == Some(key) {
                    *slot = Some(value);
                    if let Source::Added { kind, .. } = column.source {
                        if let Some(cell) = self.added_cell(value, kind, column.ty) {
                            added.resize(self.columns.len(), None);
                            added[i] = Some(cell);
                            in_added_column = true;
                        }
                    }
                }
            }
            for (slot, child) in child_top.iter_mut().zip(&self.children) {
                if slot.is_none() && child.path[0] == key {
                    *slot = Some(value);
                }
            }
            if let (Some(read), Some(extra), false) = (&self.read, extra.as_mut(), in_added_column)
            {
                keep_unread(key, value, read, "", self.options.json, extra)?;
            }
        }
        let mut cells = Vec::with_capacity(self.columns.len());
        let mut missing = Vec::new();
        for (column, value) in self.columns.iter().zip(top) {
            let cell = match &column.source {
                Source::Field(path) => {
                    let field = || path.join(".");
                    let value = descend(value, &path[1..]).map_err(|reason| RowError {
                        field: field(),
                        expected: Some(column.ty),
                        found: "unreadable".to_string(),
                        reason,
                        excerpt: None,
                    })?;
                    if value.is_none() {
                        missing.push(Cell::Text(field()));
                    }
                    Cell::convert(value, column.ty, &self.options)
                        .map_err(|e| row_error(field(), e, value))?
                }
                Source::IdText => {
                    Cell::id_text(value).map_err(|e| row_error("_id".to_string(), e, value))?
                }
                Source::Document => json_cell(RawBsonRef::Document(doc), JsonMode::Canonical)
                    .map_err(|reason| RowError {
                        field: String::new(),
                        expected: Some(ColumnType::Jsonb),
                        found: "object".to_string(),
                        reason,
                        excerpt: None,
                    })?,
                Source::Extra => match extra.take() {
                    Some(object) if !object.is_empty() => Cell::Jsonb(object.finish()),
                    _ => Cell::Null,
                },
                // Filled below, once every field column has been read.
                Source::Missing => Cell::Null,
                Source::Added { .. } => added
                    .get_mut(cells.len())
                    .and_then(Option::take)
                    .unwrap_or(Cell::Null),
            };
            cells.push(cell);
        }
        for (cell, column) in cells.iter_mut().zip(&self.columns) {
            if column.source == Source::Missing {
                *cell = Cell::Array(ColumnType::Text, std::mem::take(&mut missing));
            }
        }
        let mut children = Vec::with_capacity(self.children.len());
        for (child, value) in self.children.iter().zip(child_top) {
            children.push(self.child_rows(child, value, &cells)?);
        }
        Ok(Row { cells, children })
    }

    /// A value's cell in an added column, if it is of the column's kind and fits.
    fn added_cell(&self, value: RawBsonRef<'_>, kind: FieldKind, ty: ColumnType) -> Option<Cell> {
        if FieldKind::of(value) != Some(kind) {
            return None;
        }
        Cell::convert(Some(value), ty, &self.options).ok()
    }

    fn child_rows(
        &self,
        child: &ChildPlan,
        top: Option<RawBsonRef<'_>>,
        parent: &[Cell],
    ) -> Result<Vec<Vec<Cell>>, RowError> {
        let field = child.path.join(".");
        let value = descend(top, &child.path[1..]).map_err(|reason| RowError {
            field: field.clone(),
            expected: Some(child.ty),
            found: "unreadable".to_string(),
            reason,
            excerpt: None,
        })?;
        let array = match value {
            None | Some(RawBsonRef::Null) => return Ok(Vec::new()),
            Some(RawBsonRef::Array(array)) => array,
            Some(other) => {
                return Err(RowError {
                    field,
                    expected: Some(child.ty),
                    found: type_name(other).to_string(),
                    reason: "the field lands in a child table and must be an array".to_string(),
                    excerpt: Some(excerpt(other)),
                })
            }
        };
        let parent_id = self
            .primary_key
            .and_then(|pk| parent.get(pk))
            .cloned()
            .unwrap_or(Cell::Null);
        let mut rows = Vec::new();
        for (position, element) in array.into_iter().enumerate() {
            let element = element.map_err(|e| unreadable(e.to_string()))?;
            let cell = Cell::convert(Some(element), child.ty, &self.options)
                .map_err(|e| row_error(format!("{field}.{position}"), e, Some(element)))?;
            let position = i32::try_from(position).map_err(|_| RowError {
                field: field.clone(),
                expected: Some(child.ty),
                found: "array".to_string(),
                reason: "more elements than int4 positions".to_string(),
                excerpt: None,
            })?;
            rows.push(vec![parent_id.clone(), Cell::Int4(position), cell]);
        }
        Ok(rows)
    }
}

impl Source {
    /// The top-level field this source reads, if it reads one.
    fn top_key(&self) -> Option<&str> {
        match self {
            Source::Field(path) => path.first().map(String::as_str),
            Source::IdText => Some("_id"),
            Source::Added { field, .. } => Some(field),
            Source::Document | Source::Extra | Source::Missing => None,
        }
    }
}

/// A JSON object written as its members arrive.
#[derive(Debug, Default)]
struct JsonObject {
    text: String,
}

impl JsonObject {
    fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn member(&mut self, key: &str) -> Result<&mut String, extjson::JsonError> {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        extjson::write_string(key, &mut self.text)?;
        self.text.push(':');
        Ok(&mut self.text)
    }

    fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// Adds to `extra` what of the field `key` no column reads: all of it when no path
/// starts there, the unread part of a subdocument whose fields are read in part, and
/// all of it when a path goes through a value that is not a subdocument.
fn keep_unread(
    key: &str,
    value: RawBsonRef<'_>,
    read: &PathTree,
    prefix: &str,
    mode: JsonMode,
    extra: &mut JsonObject,
) -> Result<(), RowError> {
    let node = read.children.get(key);
    // Fields a column reads whole, the common case, cost no allocation.
    if node.is_some_and(|n| n.whole) {
        return Ok(());
    }
    let path = || {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    let refused = |e: extjson::JsonError| {
        let mut field = path();
        for step in &e.path {
            field.push('.');
            field.push_str(step);
        }
        RowError {
            field,
            expected: Some(ColumnType::Jsonb),
            found: type_name(value).to_string(),
            reason: format!("kept in {EXTRA_COLUMN}, but {}", e.reason),
            excerpt: Some(excerpt(value)),
        }
    };
    match (node, value) {
        (Some(node), RawBsonRef::Document(inner)) => {
            let here = path();
            let mut unread = JsonObject::default();
            for element in inner.iter() {
                let (k, v) = element.map_err(|e| unreadable(e.to_string()))?;
                keep_unread(k.as_str(), v, node, &here, mode, &mut unread)?;
            }
            if !unread.is_empty() {
                let out = extra.member(key).map_err(refused)?;
                out.push_str(&unread.finish());
            }
            Ok(())
        }
        _ => {
            let out = extra.member(key).map_err(refused)?;
            extjson::write_value(value, mode, out).map_err(refused)
        }
    }
}

fn row_error(field: String, e: CellError, value: Option<RawBsonRef<'_>>) -> RowError {
    RowError {
        field,
        expected: Some(e.expected),
        found: e.found.to_string(),
        reason: e.reason,
        excerpt: value.map(excerpt),
    }
}

fn unreadable(reason: String) -> RowError {
    RowError {
        field: String::new(),
        expected: None,
        found: "unreadable".to_string(),
        reason: format!("not a readable BSON document: {reason}"),
        excerpt: None,
    }
}

/// Follows the rest of a dotted path from a top-level value through subdocuments. A
/// missing step, or a scalar where the path goes deeper, is a missing value.
fn descend<'a>(
    value: Option<RawBsonRef<'a>>,
    rest: &[String],
) -> Result<Option<RawBsonRef<'a>>, String> {
    let mut current = value;
    for key in rest {
        current = match current {
            Some(RawBsonRef::Document(inner)) => inner.get(key).map_err(|e| e.to_string())?,
            _ => return Ok(None),
        };
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn default_plan_keeps_the_whole_document() {
        let plan = TablePlan::default_for("users");
        let doc = rawdoc! { "_id": 1, "a": { "b": [1, "x"] } };
        let row = plan.row(&doc).expect("maps").cells;
        assert_eq!(row[0], Cell::Text(r#"{"$numberInt":"1"}"#.into()));
        let Cell::Jsonb(json) = &row[1] else {
            panic!("jsonb")
        };
        let back: serde_json::Value = serde_json::from_str(json).expect("json");
        assert_eq!(back["a"]["b"][1], "x");
    }

    #[test]
    fn paths_reach_into_subdocuments_and_name_the_bad_field() {
        let file: MappingFile = toml::from_str(
            r#"
            [collections.users]
            table = "people"
            columns = [
              { name = "id", path = "_id", type = "text" },
              { name = "city", path = "address.city", type = "text" },
              { name = "age", path = "age", type = "int4" },
            ]
            "#,
        )
        .expect("parses");
        let plan = file.plan("users");
        assert_eq!(plan.table, "people");
        assert_eq!(plan.primary_key, Some(0));
        let row = plan
            .row(&rawdoc! { "_id": "u1", "address": { "city": "Porto" } })
            .expect("maps");
        assert_eq!(
            row.cells,
            vec![
                Cell::Text("u1".into()),
                Cell::Text("Porto".into()),
                Cell::Null,
                Cell::Null,
            ]
        );
        let err = plan
            .row(&rawdoc! { "_id": "u2", "age": "old" })
            .expect_err("rejected");
        assert_eq!(err.field, "age");
        assert_eq!(err.excerpt.as_deref(), Some(r#""old""#));
        assert_eq!(
            err.to_string(),
            r#"field "age": expected int4, found string: a string value cannot be stored as int4"#
        );
    }

    #[test]
    fn yaml_files_read_like_toml_ones() {
        let dir = std::env::temp_dir().join(format!("mapping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("m.yaml");
        std::fs::write(
            &path,
            "collections:\n  users:\n    table: people\n    columns:\n      - { name: id, path: _id, type: text }\n      - { name: age, path: age, type: int4 }\n",
        )
        .expect("write");
        let plan = MappingFile::load(&path).expect("loads").plan("users");
        assert_eq!(plan.table, "people");
        assert_eq!(plan.columns[1].ty, ColumnType::Int4);
        std::fs::write(&path, "collections:\n  users:\n    colums: []\n").expect("write");
        assert!(
            MappingFile::load(&path).is_err(),
            "unknown keys refused in YAML too"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn plan_of(toml_text: &str) -> TablePlan {
        let file: MappingFile = toml::from_str(toml_text).expect("parses");
        file.check().expect("valid");
        file.plan("c")
    }

    fn json(cell: &Cell) -> serde_json::Value {
        match cell {
            Cell::Jsonb(text) => serde_json::from_str(text).expect("json"),
            other => panic!("not jsonb: {other:?}"),
        }
    }

    #[test]
    fn unread_fields_land_in_extra_by_path() {
        let plan = plan_of(
            r#"
            [collections.c]
            columns = [
              { path = "_id", type = "int4" },
              { path = "address.city", type = "text" },
            ]
            "#,
        );
        let names: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_id", "address_city", "_extra"]);
        let row = plan
            .row(&rawdoc! { "_id": 1, "address": { "city": "Porto", "zip": "4000" }, "new": [1] })
            .expect("maps");
        assert_eq!(row.cells[1], Cell::Text("Porto".into()));
        assert_eq!(
            json(&row.cells[2]),
            serde_json::json!({ "address": { "zip": "4000" }, "new": [{ "$numberInt": "1" }] })
        );
        // A path through a scalar: the scalar is kept whole.
        let row = plan
            .row(&rawdoc! { "_id": 2, "address": "unknown" })
            .expect("maps");
        assert_eq!(row.cells[1], Cell::Null);
        assert_eq!(
            json(&row.cells[2]),
            serde_json::json!({ "address": "unknown" })
        );
        // Everything read: no extra.
        let row = plan
            .row(&rawdoc! { "_id": 3, "address": { "city": "x" } })
            .expect("maps");
        assert_eq!(row.cells[2], Cell::Null);
        // A NUL byte in an unread field is refused with its path, not dropped.
        let err = plan
            .row(&rawdoc! { "_id": 4, "notes": { "a": "x\0" } })
            .expect_err("refused");
        assert_eq!(err.field, "notes.a");
    }

    #[test]
    fn missing_and_null_can_be_told_apart() {
        let plan = plan_of(
            r#"
            [collections.c]
            missing = "distinct"
            json = "relaxed"
            columns = [
              { path = "_id", type = "int4" },
              { path = "a", type = "int4" },
              { path = "b", type = "jsonb" },
            ]
            "#,
        );
        let row = plan
            .row(&rawdoc! { "_id": 1, "a": bson::RawBson::Null, "b": { "n": 5 } })
            .expect("maps");
        assert_eq!(row.cells[1], Cell::Null);
        assert_eq!(
            row.cells[2],
            Cell::Jsonb(r#"{"n":5}"#.into()),
            "relaxed JSON"
        );
        assert_eq!(row.cells[4], Cell::Array(ColumnType::Text, vec![]));
        let row = plan.row(&rawdoc! { "_id": 2 }).expect("maps");
        assert_eq!(
            row.cells[4],
            Cell::Array(
                ColumnType::Text,
                vec![Cell::Text("a".into()), Cell::Text("b".into())]
            )
        );
    }

    #[test]
    fn arrays_land_in_child_tables_with_their_positions() {
        let plan = plan_of(
            r#"
            [collections.c]
            table = "people"
            columns = [ { name = "id", path = "_id", type = "int8" } ]
            children = [ { path = "tags", type = "text" } ]
            "#,
        );
        assert_eq!(plan.children[0].table, "people_tags");
        let row = plan
            .row(&rawdoc! { "_id": 7, "tags": ["a", "b"] })
            .expect("maps");
        assert_eq!(
            row.children[0],
            vec![
                vec![Cell::Int8(7), Cell::Int4(0), Cell::Text("a".into())],
                vec![Cell::Int8(7), Cell::Int4(1), Cell::Text("b".into())],
            ]
        );
        assert_eq!(row.cells[1], Cell::Null, "tags are read, not extra");
        let err = plan
            .row(&rawdoc! { "_id": 8, "tags": ["a", 1] })
            .expect_err("refused");
        assert_eq!(err.field, "tags.1");
        let err = plan
            .row(&rawdoc! { "_id": 9, "tags": "a" })
            .expect_err("refused");
        assert_eq!(err.found, "string");
    }

    #[test]
    fn bad_mappings_say_what_to_change() {
        let check = |text: &str| {
            toml::from_str::<MappingFile>(text)
                .expect("parses")
                .check()
                .expect_err("refused")
        };
        let long = "x".repeat(64);
        let err = check(&format!(
            "[collections.c]\ncolumns = [ {{ name = \"{long}\", path = \"a\", type = \"text\" }} ]"
        ));
        assert!(err.contains("63"), "{err}");
        let err = check(
            "[collections.c]\ncolumns = [ { path = \"a\", type = \"text\" } ]\nchildren = [ { path = \"t\", type = \"text\" } ]",
        );
        assert!(err.contains("_id"), "{err}");
    }

    #[test]
    fn generated_names_never_collide() {
        let long_a = format!("{}.a", "k".repeat(70));
        let long_b = format!("{}.b", "k".repeat(70));
        let plan = plan_of(&format!(
            r#"
            [collections.c]
            columns = [
              {{ path = "_id", type = "text" }},
              {{ path = "Name", type = "text" }},
              {{ path = "name", type = "text" }},
              {{ path = "{long_a}", type = "text" }},
              {{ path = "{long_b}", type = "text" }},
            ]
            "#
        ));
        let names: std::collections::HashSet<String> =
            plan.columns.iter().map(|c| c.name.to_lowercase()).collect();
        assert_eq!(names.len(), plan.columns.len());
        assert!(plan.columns.iter().all(|c| c.name.len() <= 63));
    }

    #[test]
    fn new_fields_become_columns_when_their_values_fit() {
        let plan = plan_of(
            r#"
            [collections.c]
            new_fields = "columns"
            columns = [ { path = "_id", type = "int4" }, { path = "a.b", type = "text" } ]
            "#,
        );
        let docs = [
            rawdoc! { "_id": 1, "a": { "b": "x", "c": 1 }, "score": bson::RawBson::Null, "": 1 },
            rawdoc! { "_id": 2, "score": 7, "tags": ["t"], "_extra": "mine" },
        ];
        let new = plan.new_fields_in(docs.iter().map(|d| d.as_bytes()));
        let seen: Vec<(&str, ColumnType)> = new
            .iter()
            .map(|n| (n.field.as_str(), n.kind.column_type()))
            .collect();
        // Nested fields, empty keys and nulls say nothing a column could be made of.
        assert_eq!(
            seen,
            [
                ("score", ColumnType::Int8),
                ("tags", ColumnType::Jsonb),
                ("_extra", ColumnType::Text)
            ]
        );
        let added: Vec<AddedColumn> = new
            .into_iter()
            .map(|n| AddedColumn {
                name: if n.field == "_extra" {
                    "_extra_1".to_string()
                } else {
                    n.field.clone()
                },
                field: n.field,
                kind: n.kind,
            })
            .collect();
        let plan = plan.with_added(&added);
        assert!(plan
            .new_fields_in(docs.iter().map(|d| d.as_bytes()))
            .is_empty());
        let names: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_id", "a_b", "_extra", "score", "tags", "_extra_1"]);

        let row = plan.row(&docs[1]).expect("maps");
        assert_eq!(row.cells[3], Cell::Int8(7));
        assert_eq!(json(&row.cells[4]), serde_json::json!(["t"]));
        assert_eq!(row.cells[5], Cell::Text("mine".into()));
        assert_eq!(row.cells[2], Cell::Null, "nothing left for _extra");
        // Null, and values of another kind, stay in _extra: a document lands the same
        // whether the column existed when it was mapped or not.
        let row = plan.row(&docs[0]).expect("maps");
        assert_eq!(row.cells[3], Cell::Null);
        assert_eq!(
            json(&row.cells[2]),
            serde_json::json!({ "a": { "c": { "$numberInt": "1" } }, "score": null, "": { "$numberInt": "1" } })
        );
        let row = plan
            .row(&rawdoc! { "_id": 3, "score": "high", "tags": { "k": true } })
            .expect("maps");
        assert_eq!(row.cells[3], Cell::Null);
        assert_eq!(json(&row.cells[4]), serde_json::json!({ "k": true }));
        assert_eq!(json(&row.cells[2]), serde_json::json!({ "score": "high" }));
        // A field the mapping reads now is left to the mapping.
        let mapped = plan_of(
            r#"
            [collections.c]
            columns = [ { path = "_id", type = "int4" }, { path = "score", type = "int4" } ]
            "#,
        )
        .with_added(&added);
        let names: Vec<&str> = mapped.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_id", "score", "_extra", "tags", "_extra_1"]);
        assert!(
            mapped.new_fields_in([docs[1].as_bytes()]).is_empty(),
            "the option is off"
        );
        // A column the mapping has since named like an added one: never twice in the
        // plan, and the added column's field goes to _extra without being added again.
        let renamed = plan_of(
            r#"
            [collections.c]
            new_fields = "columns"
            columns = [ { path = "_id", type = "int4" }, { name = "TAGS", path = "labels", type = "text" } ]
            "#,
        )
        .with_added(&added);
        let names: Vec<&str> = renamed.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_id", "TAGS", "_extra", "score", "_extra_1"]);
        assert!(renamed.new_fields_in([docs[1].as_bytes()]).is_empty());
        let row = renamed.row(&docs[1]).expect("maps");
        assert_eq!(json(&row.cells[2]), serde_json::json!({ "tags": ["t"] }));
    }

    #[test]
    fn new_fields_stop_becoming_columns_at_the_limit() {
        let text = r#"
            [collections.c]
            new_fields = "columns"
            max_new_columns = 2
            columns = [ { path = "_id", type = "int4" } ]
            "#;
        let plan = plan_of(text);
        let doc = rawdoc! { "_id": 1, "a": 1, "b": 2, "c": 3 };
        assert_eq!(plan.new_fields_in([doc.as_bytes()]).len(), 3);
        let added = ["a", "b"].map(|field| AddedColumn {
            field: field.to_string(),
            name: field.to_string(),
            kind: FieldKind::Integer,
        });
        let plan = plan.with_added(&added);
        assert!(plan.new_fields_in([doc.as_bytes()]).is_empty());
        let row = plan.row(&doc).expect("maps");
        assert_eq!(row.cells[2..], [Cell::Int8(1), Cell::Int8(2)]);
        assert_eq!(
            json(&row.cells[1]),
            serde_json::json!({ "c": { "$numberInt": "3" } })
        );

        let too_many = text.replace("= 2", "= 1599");
        let err = toml::from_str::<MappingFile>(&too_many)
            .expect("parses")
            .check()
            .expect_err("refused");
        assert!(err.contains("1600"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<MappingFile, _> = toml::from_str(
            r#"
            [collections.users]
            colums = []
            "#,
        );
        assert!(parsed.is_err());
    }
}
