//! The column types a mapping may name, with their SQL spelling and wire type.

use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

/// The column types a mapping may name. The `[]` types hold a BSON array whose
/// elements all convert to the element type (a PostgreSQL one-dimensional array).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// PostgreSQL `text`.
    Text,
    /// PostgreSQL `int4`.
    Int4,
    /// PostgreSQL `int8`.
    Int8,
    /// PostgreSQL `float8`.
    Float8,
    /// PostgreSQL `numeric`.
    Numeric,
    /// PostgreSQL `bool`.
    Bool,
    /// PostgreSQL `timestamptz`.
    Timestamptz,
    /// PostgreSQL `uuid`.
    Uuid,
    /// PostgreSQL `bytea`.
    Bytea,
    /// PostgreSQL `jsonb`.
    Jsonb,
    /// PostgreSQL `text[]`.
    #[serde(rename = "text[]")]
    TextArray,
    /// PostgreSQL `int4[]`.
    #[serde(rename = "int4[]")]
    Int4Array,
    /// PostgreSQL `int8[]`.
    #[serde(rename = "int8[]")]
    Int8Array,
    /// PostgreSQL `float8[]`.
    #[serde(rename = "float8[]")]
    Float8Array,
    /// PostgreSQL `numeric[]`.
    #[serde(rename = "numeric[]")]
    NumericArray,
    /// PostgreSQL `bool[]`.
    #[serde(rename = "bool[]")]
    BoolArray,
    /// PostgreSQL `timestamptz[]`.
    #[serde(rename = "timestamptz[]")]
    TimestamptzArray,
    /// PostgreSQL `uuid[]`.
    #[serde(rename = "uuid[]")]
    UuidArray,
    /// PostgreSQL `bytea[]`.
    #[serde(rename = "bytea[]")]
    ByteaArray,
    /// PostgreSQL `jsonb[]`.
    #[serde(rename = "jsonb[]")]
    JsonbArray,
}

impl ColumnType {
    /// The type as SQL writes it (`int8`, `text[]`).
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Int4 => "int4",
            ColumnType::Int8 => "int8",
            ColumnType::Float8 => "float8",
            ColumnType::Numeric => "numeric",
            ColumnType::Bool => "bool",
            ColumnType::Timestamptz => "timestamptz",
            ColumnType::Uuid => "uuid",
            ColumnType::Bytea => "bytea",
            ColumnType::Jsonb => "jsonb",
            ColumnType::TextArray => "text[]",
            ColumnType::Int4Array => "int4[]",
            ColumnType::Int8Array => "int8[]",
            ColumnType::Float8Array => "float8[]",
            ColumnType::NumericArray => "numeric[]",
            ColumnType::BoolArray => "bool[]",
            ColumnType::TimestamptzArray => "timestamptz[]",
            ColumnType::UuidArray => "uuid[]",
            ColumnType::ByteaArray => "bytea[]",
            ColumnType::JsonbArray => "jsonb[]",
        }
    }

    /// The type as the binary COPY protocol knows it.
    pub fn pg_type(self) -> Type {
        match self {
            ColumnType::Text => Type::TEXT,
            ColumnType::Int4 => Type::INT4,
            ColumnType::Int8 => Type::INT8,
            ColumnType::Float8 => Type::FLOAT8,
            ColumnType::Numeric => Type::NUMERIC,
            ColumnType::Bool => Type::BOOL,
            ColumnType::Timestamptz => Type::TIMESTAMPTZ,
            ColumnType::Uuid => Type::UUID,
            ColumnType::Bytea => Type::BYTEA,
            ColumnType::Jsonb => Type::JSONB,
            ColumnType::TextArray => Type::TEXT_ARRAY,
            ColumnType::Int4Array => Type::INT4_ARRAY,
            ColumnType::Int8Array => Type::INT8_ARRAY,
            ColumnType::Float8Array => Type::FLOAT8_ARRAY,
            ColumnType::NumericArray => Type::NUMERIC_ARRAY,
            ColumnType::BoolArray => Type::BOOL_ARRAY,
            ColumnType::TimestamptzArray => Type::TIMESTAMPTZ_ARRAY,
            ColumnType::UuidArray => Type::UUID_ARRAY,
            ColumnType::ByteaArray => Type::BYTEA_ARRAY,
            ColumnType::JsonbArray => Type::JSONB_ARRAY,
        }
    }

    /// The element type of an array type.
    pub fn element(self) -> Option<ColumnType> {
        Some(match self {
            ColumnType::TextArray => ColumnType::Text,
            ColumnType::Int4Array => ColumnType::Int4,
            ColumnType::Int8Array => ColumnType::Int8,
            ColumnType::Float8Array => ColumnType::Float8,
            ColumnType::NumericArray => ColumnType::Numeric,
            ColumnType::BoolArray => ColumnType::Bool,
            ColumnType::TimestamptzArray => ColumnType::Timestamptz,
            ColumnType::UuidArray => ColumnType::Uuid,
            ColumnType::ByteaArray => ColumnType::Bytea,
            ColumnType::JsonbArray => ColumnType::Jsonb,
            _ => return None,
        })
    }

    /// The array type of a scalar type.
    pub fn array_of(self) -> Option<ColumnType> {
        Some(match self {
            ColumnType::Text => ColumnType::TextArray,
            ColumnType::Int4 => ColumnType::Int4Array,
            ColumnType::Int8 => ColumnType::Int8Array,
            ColumnType::Float8 => ColumnType::Float8Array,
            ColumnType::Numeric => ColumnType::NumericArray,
            ColumnType::Bool => ColumnType::BoolArray,
            ColumnType::Timestamptz => ColumnType::TimestamptzArray,
            ColumnType::Uuid => ColumnType::UuidArray,
            ColumnType::Bytea => ColumnType::ByteaArray,
            ColumnType::Jsonb => ColumnType::JsonbArray,
            _ => return None,
        })
    }
}
