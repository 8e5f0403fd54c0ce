//! Which table a collection lands in and how each document becomes a row.
//!
//! A mapping file (`--mapping FILE`, TOML, or YAML when it ends in `.yaml`/`.yml`)
//! names, per collection, a table and its
//! columns, each with a source field path (`address.city`) and a type:
//!
//! ```toml
//! [collections.users]
//! table = "app_users"
//! columns = [
//!   { name = "id", path = "_id", type = "text" },
//!   { name = "city", path = "address.city", type = "text" },
//!   { name = "balance", path = "balance", type = "numeric" },
//! ]
//! ```
//!
//! A collection with no mapping lands in a table of its own name with `_id text primary
//! key` and `doc jsonb`, the whole document as canonical Extended JSON. A column whose
//! path is `_id` is the table's primary key.

use std::collections::BTreeMap;
use std::path::Path;

use bson::{RawBsonRef, RawDocument};
use serde::Deserialize;

use crate::cell::{json_cell, Cell, CellError, ColumnType};

/// The mapping file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    #[serde(default)]
    pub collections: BTreeMap<String, CollectionMapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionMapping {
    /// Target table; the collection's name when absent.
    pub table: Option<String>,
    pub columns: Vec<ColumnMapping>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    pub name: String,
    /// Dotted path of the source field.
    pub path: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
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
        for (collection, mapping) in &file.collections {
            let invalid = |detail: String| MappingError::Invalid {
                path: shown.clone(),
                detail: format!("collection {collection:?}: {detail}"),
            };
            if mapping.columns.is_empty() {
                return Err(invalid("no columns".to_string()));
            }
            let mut seen = std::collections::HashSet::new();
            for column in &mapping.columns {
                if column.name.is_empty() || column.path.is_empty() {
                    return Err(invalid("a column with an empty name or path".to_string()));
                }
                if !seen.insert(column.name.as_str()) {
                    return Err(invalid(format!("column {:?} appears twice", column.name)));
                }
            }
        }
        Ok(file)
    }

    /// The plan for a collection: its mapping, or the default `_id` + `doc` table.
    pub fn plan(&self, collection: &str) -> TablePlan {
        match self.collections.get(collection) {
            Some(mapping) => TablePlan::mapped(collection, mapping),
            None => TablePlan::default_for(collection),
        }
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
}

#[derive(Debug, Clone)]
pub struct ColumnPlan {
    pub name: String,
    pub source: Source,
    pub ty: ColumnType,
}

/// A collection's target table and how to fill it.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub table: String,
    pub columns: Vec<ColumnPlan>,
    /// Index of the primary-key column, if any.
    pub primary_key: Option<usize>,
}

/// A document that cannot become a row, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The field path at fault (empty when the document itself is unreadable).
    pub field: String,
    pub expected: Option<ColumnType>,
    pub found: String,
    pub reason: String,
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

impl TablePlan {
    pub fn default_for(collection: &str) -> Self {
        TablePlan {
            table: collection.to_string(),
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
        }
    }

    fn mapped(collection: &str, mapping: &CollectionMapping) -> Self {
        let columns: Vec<ColumnPlan> = mapping
            .columns
            .iter()
            .map(|c| ColumnPlan {
                name: c.name.clone(),
                source: Source::Field(c.path.split('.').map(str::to_string).collect()),
                ty: c.ty,
            })
            .collect();
        let primary_key = mapping.columns.iter().position(|c| c.path == "_id");
        TablePlan {
            table: mapping
                .table
                .clone()
                .unwrap_or_else(|| collection.to_string()),
            columns,
            primary_key,
        }
    }

    /// The row for one document.
    /// The row for one document.
    ///
    /// One pass over the document's top-level fields hands each to the columns that
    /// read it; looking each column's field up from the start of the document instead
    /// parsed every element once per column and was the consumer's largest cost.
    pub fn row(&self, doc: &RawDocument) -> Result<Vec<Cell>, RowError> {
        let mut top: Vec<Option<RawBsonRef<'_>>> = vec![None; self.columns.len()];
        for element in doc.iter() {
            let (key, value) = element.map_err(|e| unreadable(e.to_string()))?;
            let key = key.as_str();
            for (slot, column) in top.iter_mut().zip(&self.columns) {
                // The first of duplicate keys wins, as with `RawDocument::get`.
                if slot.is_none() && column.source.top_key() == Some(key) {
                    *slot = Some(value);
                }
            }
        }
        let mut row = Vec::with_capacity(self.columns.len());
        for (column, value) in self.columns.iter().zip(top) {
            let cell = match &column.source {
                Source::Field(path) => {
                    let value = descend(value, &path[1..]).map_err(|reason| RowError {
                        field: path.join("."),
                        expected: Some(column.ty),
                        found: "unreadable".to_string(),
                        reason,
                    })?;
                    Cell::convert(value, column.ty).map_err(|e| row_error(path.join("."), e))?
                }
                Source::IdText => {
                    Cell::id_text(value).map_err(|e| row_error("_id".to_string(), e))?
                }
                Source::Document => {
                    json_cell(RawBsonRef::Document(doc)).map_err(|reason| RowError {
                        field: String::new(),
                        expected: Some(ColumnType::Jsonb),
                        found: "object".to_string(),
                        reason,
                    })?
                }
            };
            row.push(cell);
        }
        Ok(row)
    }
}

impl Source {
    /// The top-level field this source reads, if it reads one.
    fn top_key(&self) -> Option<&str> {
        match self {
            Source::Field(path) => path.first().map(String::as_str),
            Source::IdText => Some("_id"),
            Source::Document => None,
        }
    }
}

fn row_error(field: String, e: CellError) -> RowError {
    RowError {
        field,
        expected: Some(e.expected),
        found: e.found.to_string(),
        reason: e.reason,
    }
}

fn unreadable(reason: String) -> RowError {
    RowError {
        field: String::new(),
        expected: None,
        found: "unreadable".to_string(),
        reason: format!("not a readable BSON document: {reason}"),
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
        let row = plan.row(&doc).expect("maps");
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
            row,
            vec![
                Cell::Text("u1".into()),
                Cell::Text("Porto".into()),
                Cell::Null
            ]
        );
        let err = plan
            .row(&rawdoc! { "_id": "u2", "age": "old" })
            .expect_err("rejected");
        assert_eq!(err.field, "age");
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
