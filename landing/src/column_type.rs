//! The column types a mapping may name, with their SQL spelling and wire type.

use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

/// The column types a mapping may name. The `[]` types hold a BSON array whose
/// elements all convert to the element type (a PostgreSQL one-dimensional array).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Text,
    Int4,
    Int8,
    Float8,
    Numeric,
    Bool,
    Timestamptz,
    Uuid,
    Bytea,
    Jsonb,
    #[serde(rename = "text[]")]
    TextArray,
    #[serde(rename = "int4[]")]
    Int4Array,
    #[serde(rename = "int8[]")]
    Int8Array,
    #[serde(rename = "float8[]")]
    Float8Array,
    #[serde(rename = "numeric[]")]
    NumericArray,
    #[serde(rename = "bool[]")]
    BoolArray,
    #[serde(rename = "timestamptz[]")]
    TimestamptzArray,
    #[serde(rename = "uuid[]")]
    UuidArray,
    #[serde(rename = "bytea[]")]
    ByteaArray,
    #[serde(rename = "jsonb[]")]
    JsonbArray,
}

impl ColumnType {
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
