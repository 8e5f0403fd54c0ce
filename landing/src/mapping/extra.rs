//! The `_extra` column: the fields no column or child table reads, kept by path as a
//! JSON object written while the document is read.

use bson::RawBsonRef;

use super::file::EXTRA_COLUMN;
use super::path_tree::PathTree;
use super::row_error::{unreadable, RejectKind, RowError};
use crate::cell::{excerpt, type_name};
use crate::column_type::ColumnType;
use crate::extjson::{self, JsonMode};

/// A JSON object written as its members arrive.
#[derive(Debug, Default)]
pub(super) struct JsonObject {
    text: String,
}

impl JsonObject {
    pub(super) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn member(&mut self, key: &str) -> Result<&mut String, extjson::JsonError> {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        extjson::write_string(key, &mut self.text)?;
        self.text.push(':');
        Ok(&mut self.text)
    }

    pub(super) fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// Adds to `extra` what of the field `key` no column reads: all of it when no path
/// starts there, the unread part of a subdocument whose fields are read in part, and
/// all of it when a path goes through a value that is not a subdocument.
pub(super) fn keep_unread(
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
            kind: RejectKind::Type,
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
