//! The mapping file, as written and checked.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use common::run_state::RunMapping;
use serde::{Deserialize, Serialize};

use super::new_fields::NewFields;
use crate::cell::LegacyUuid;
use crate::column_type::ColumnType;
use crate::extjson::JsonMode;
use crate::identifier::MAX_IDENTIFIER_BYTES;

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
    /// Per collection, by its name.
    #[serde(default)]
    pub collections: BTreeMap<String, CollectionMapping>,
}

/// One collection's table (`[collections.<name>]`); the keys are in
/// docs/reference/mapping.md.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionMapping {
    /// Target table; the collection's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Typed columns read from field paths; the one from `_id` is the key.
    pub columns: Vec<ColumnMapping>,
    /// Arrays landed as child tables, one row per element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildMapping>,
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
}

/// An array field landed as a child table `<table>_<field>` with columns `_parent`
/// (the parent's primary key), `_position` (the element's index, from 0) and `value`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChildMapping {
    /// Dotted path of the array.
    pub path: String,
    /// The elements' type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// The child table; `<table>_<field>` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
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
    table.starts_with(RESERVED_PREFIX)
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
        file.check().map_err(|invalid| MappingError::Invalid {
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
            mapping.check().map_err(|problem| InvalidMapping {
                collection: collection.clone(),
                problem,
            })?;
        }
        Ok(())
    }

    /// The file at `path`, or no mappings at all (every collection gets the default
    /// table) when there is none.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, MappingError> {
        path.map_or_else(|| Ok(MappingFile::default()), MappingFile::load)
    }
}

impl CollectionMapping {
    fn check(&self) -> Result<(), Problem> {
        if self.columns.is_empty() {
            return Err(Problem::NoColumns);
        }
        let fits = |what: &'static str, name: &str| {
            if what == "table" && is_reserved(name) {
                Err(Problem::Reserved(name.to_string()))
            } else if name.len() > MAX_IDENTIFIER_BYTES {
                Err(Problem::NameTooLong {
                    what,
                    name: name.to_string(),
                })
            } else {
                Ok(())
            }
        };
        if let Some(table) = &self.table {
            fits("table", table)?;
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
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        for column in &self.columns {
            if column.path.is_empty() || column.name.as_deref() == Some("") {
                return Err(Problem::Empty);
            }
            if let Some(name) = &column.name {
                fits("column", name)?;
                if !names.insert(name.as_str()) {
                    return Err(Problem::ColumnTwice(name.clone()));
                }
            }
            if column.path == "_id" && column.ty == ColumnType::Jsonb {
                return Err(Problem::JsonbKey);
            }
            paths.insert(column.path.as_str());
        }
        for child in &self.children {
            if !self.columns.iter().any(|c| c.path == "_id") {
                return Err(Problem::ChildWithoutParentKey(child.path.clone()));
            }
            if child.ty.element().is_some() {
                return Err(Problem::ChildOfArrays {
                    path: child.path.clone(),
                    ty: child.ty,
                });
            }
            if !paths.insert(child.path.as_str()) {
                return Err(Problem::PathTwice(child.path.clone()));
            }
            if let Some(table) = &child.table {
                fits("table", table)?;
            }
        }
        Ok(())
    }
}
