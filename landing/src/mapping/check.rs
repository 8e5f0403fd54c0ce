//! What a mapping file must satisfy beyond its syntax: names that fit PostgreSQL,
//! paths read once, references of their key's type, transforms that fit their column,
//! child tables of one shape, a filter that is a query.

use std::collections::HashSet;

use super::file::{
    is_reserved, parse_filter, ChildMapping, CollectionMapping, ColumnMapping, DatabaseMapping,
    MappingFile, SurrogateKey,
};
use super::problem::{Problem, MAX_TABLE_COLUMNS};
use crate::column_type::ColumnType;
use crate::identifier::MAX_IDENTIFIER_BYTES;
use crate::transform::keys::KeyError;
use crate::transform::{self, ChainError, Transform};

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
    pub(super) fn check(&self, file: &MappingFile) -> Result<(), Problem> {
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
                if let Some(column) = self
                    .columns
                    .iter()
                    .find(|c| !c.transform.is_empty() && self.key.as_deref() == Some(&c.path))
                {
                    return Err(Problem::TransformHere {
                        path: format!("{}.{}", self.path, column.path),
                        why: "the key of a child table's elements is not transformed: rows are found by it",
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

impl DatabaseMapping {
    pub(super) fn check(&self) -> Result<(), Problem> {
        if let Some(schema) = &self.schema {
            if schema.is_empty() || schema.contains('.') {
                return Err(Problem::TableName(format!("{schema}.")));
            }
            fits("column", schema)?;
        }
        if let Some(prefix) = &self.prefix {
            if prefix.contains('.') {
                return Err(Problem::TableName(format!("{prefix}...")));
            }
            fits("column", prefix)?;
        }
        Ok(())
    }
}

impl CollectionMapping {
    pub(super) fn check(&self, file: &MappingFile) -> Result<(), Problem> {
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
