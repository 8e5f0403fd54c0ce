//! One value on its way into a PostgreSQL column: BSON in, binary COPY bytes out.
//!
//! Conversions are exact or refused: a value that would lose precision, overflow, or
//! that the column's type cannot hold at all becomes a [`CellError`], which sends the
//! document to the rejects table with the field named, never a silently altered value.
//!
//! - [`convert`]: BSON value to cell, exactly or refused.
//! - [`wire`]: a cell's bytes in PostgreSQL's binary COPY format.

mod convert;
mod wire;

use bson::RawBsonRef;
use serde::{Deserialize, Serialize};

use crate::column_type::ColumnType;
use crate::extjson::JsonMode;
use crate::numeric::Numeric;

pub use convert::json_cell;

/// Legacy UUIDs (binary subtype 3) were written in a driver-specific byte order; the
/// mapping says which, and only then do they land in uuid columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LegacyUuid {
    /// The Python driver's: bytes in standard order.
    Python,
    /// The Java driver's: each 8-byte half reversed.
    Java,
    /// The C# driver's: the first three fields little-endian.
    Csharp,
}

impl LegacyUuid {
    fn standard(self, mut bytes: [u8; 16]) -> [u8; 16] {
        match self {
            LegacyUuid::Python => {}
            LegacyUuid::Java => {
                bytes[..8].reverse();
                bytes[8..].reverse();
            }
            LegacyUuid::Csharp => {
                bytes[..4].reverse();
                bytes[4..6].reverse();
                bytes[6..8].reverse();
            }
        }
        bytes
    }
}

/// How values convert, set per collection in the mapping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValueOptions {
    /// How jsonb values are written.
    pub json: JsonMode,
    /// `None`: subtype 3 is refused by uuid columns.
    pub legacy_uuid: Option<LegacyUuid>,
}

/// A value ready for binary COPY.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL `NULL`.
    Null,
    /// `text`.
    Text(String),
    /// `int4`.
    Int4(i32),
    /// `int8`.
    Int8(i64),
    /// `float8`, NaN bits and -0 kept.
    Float8(f64),
    /// `numeric`, exact.
    Numeric(Numeric),
    /// `bool`.
    Bool(bool),
    /// Microseconds since 2000-01-01 UTC, PostgreSQL's epoch.
    Timestamptz(i64),
    /// `uuid`, in RFC 4122 byte order.
    Uuid([u8; 16]),
    /// `bytea`.
    Bytea(Vec<u8>),
    /// Extended JSON text.
    Jsonb(String),
    /// A one-dimensional array of cells of one element type.
    Array(ColumnType, Vec<Cell>),
}

/// Why a value cannot be a cell at all, in words for the rejects table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Why a value cannot land in its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// What the column expects.
    pub expected: ColumnType,
    /// The BSON type found, in MongoDB's `$type` spelling.
    pub found: &'static str,
    /// Why it cannot land.
    pub reason: String,
}

/// MongoDB's name for a value's type, as `$type` spells it.
pub fn type_name(value: RawBsonRef<'_>) -> &'static str {
    match value {
        RawBsonRef::Double(_) => "double",
        RawBsonRef::String(_) => "string",
        RawBsonRef::Document(_) => "object",
        RawBsonRef::Array(_) => "array",
        RawBsonRef::Binary(_) => "binData",
        RawBsonRef::Undefined => "undefined",
        RawBsonRef::ObjectId(_) => "objectId",
        RawBsonRef::Boolean(_) => "bool",
        RawBsonRef::DateTime(_) => "date",
        RawBsonRef::Null => "null",
        RawBsonRef::RegularExpression(_) => "regex",
        RawBsonRef::DbPointer(_) => "dbPointer",
        RawBsonRef::JavaScriptCode(_) => "javascript",
        RawBsonRef::Symbol(_) => "symbol",
        RawBsonRef::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        RawBsonRef::Int32(_) => "int",
        RawBsonRef::Timestamp(_) => "timestamp",
        RawBsonRef::Int64(_) => "long",
        RawBsonRef::Decimal128(_) => "decimal",
        RawBsonRef::MaxKey => "maxKey",
        RawBsonRef::MinKey => "minKey",
    }
}

/// A short excerpt of a value as canonical Extended JSON, for the rejects table.
pub fn excerpt(value: RawBsonRef<'_>) -> String {
    let mut text = String::new();
    if crate::extjson::write_value(value, JsonMode::Canonical, &mut text).is_err() {
        text = match value {
            RawBsonRef::String(s) => format!("{s:?}"),
            other => format!("{:?}", bson::Bson::try_from(other)),
        };
    }
    const LIMIT: usize = 200;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests;
