//! New fields: what the mapping does with top-level fields it does not name, and the
//! kind of value that decides an added column's type (see [`crate::added_columns`]
//! for how columns are added while several writers run).
//!
//! | first value | column |
//! |---|---|
//! | int32, int64 | `int8` (so later 64-bit values fit) |
//! | double | `float8` |
//! | Decimal128 | `numeric` |
//! | string | `text` |
//! | ObjectId | `text` (24 hex digits) |
//! | boolean | `bool` |
//! | date | `timestamptz` |
//! | binary subtype 4 (16 bytes) | `uuid` |
//! | other binary | `bytea` |
//! | subdocument, array, and every other type | `jsonb` (Extended JSON) |

use bson::spec::BinarySubtype;
use bson::RawBsonRef;

use crate::column_type::ColumnType;

/// What the mapping does with fields it does not name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NewFields {
    /// They land in `_extra`.
    #[default]
    Extra,
    /// Top-level ones become columns; deeper ones land in `_extra`.
    Columns,
}

/// The kind of value an added column was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// int32 or int64: an `int8` column.
    Integer,
    /// A double: `float8`.
    Double,
    /// A Decimal128: `numeric`.
    Decimal,
    /// A string: `text`.
    String,
    /// An ObjectId: `text`.
    ObjectId,
    /// A boolean: `bool`.
    Boolean,
    /// A date: `timestamptz`.
    Date,
    /// A UUID (binary subtype 4): `uuid`.
    Uuid,
    /// Other binary: `bytea`.
    Binary,
    /// Anything else: `jsonb`.
    Json,
}

impl FieldKind {
    const ALL: [FieldKind; 10] = [
        FieldKind::Integer,
        FieldKind::Double,
        FieldKind::Decimal,
        FieldKind::String,
        FieldKind::ObjectId,
        FieldKind::Boolean,
        FieldKind::Date,
        FieldKind::Uuid,
        FieldKind::Binary,
        FieldKind::Json,
    ];

    /// The kind of a value; `None` for null and undefined, which say nothing of a type.
    pub fn of(value: RawBsonRef<'_>) -> Option<FieldKind> {
        Some(match value {
            RawBsonRef::Null | RawBsonRef::Undefined => return None,
            RawBsonRef::Int32(_) | RawBsonRef::Int64(_) => FieldKind::Integer,
            RawBsonRef::Double(_) => FieldKind::Double,
            RawBsonRef::Decimal128(_) => FieldKind::Decimal,
            RawBsonRef::String(_) => FieldKind::String,
            RawBsonRef::ObjectId(_) => FieldKind::ObjectId,
            RawBsonRef::Boolean(_) => FieldKind::Boolean,
            RawBsonRef::DateTime(_) => FieldKind::Date,
            RawBsonRef::Binary(bin)
                if bin.subtype == BinarySubtype::Uuid && bin.bytes.len() == 16 =>
            {
                FieldKind::Uuid
            }
            RawBsonRef::Binary(_) => FieldKind::Binary,
            _ => FieldKind::Json,
        })
    }

    /// The column type an added column of this kind gets.
    pub fn column_type(self) -> ColumnType {
        match self {
            FieldKind::Integer => ColumnType::Int8,
            FieldKind::Double => ColumnType::Float8,
            FieldKind::Decimal => ColumnType::Numeric,
            FieldKind::String | FieldKind::ObjectId => ColumnType::Text,
            FieldKind::Boolean => ColumnType::Bool,
            FieldKind::Date => ColumnType::Timestamptz,
            FieldKind::Uuid => ColumnType::Uuid,
            FieldKind::Binary => ColumnType::Bytea,
            FieldKind::Json => ColumnType::Jsonb,
        }
    }

    /// The name kept in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Integer => "integer",
            FieldKind::Double => "double",
            FieldKind::Decimal => "decimal",
            FieldKind::String => "string",
            FieldKind::ObjectId => "objectId",
            FieldKind::Boolean => "bool",
            FieldKind::Date => "date",
            FieldKind::Uuid => "uuid",
            FieldKind::Binary => "binData",
            FieldKind::Json => "json",
        }
    }

    /// The kind the registry names `text`; `None` for one this version does not know.
    pub fn parse(text: &str) -> Option<FieldKind> {
        FieldKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// A top-level field seen in a batch that its table has no column for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewField {
    /// The field.
    pub field: String,
    /// The kind of its first non-null value.
    pub kind: FieldKind,
}

/// A column added for a new field, as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedColumn {
    /// The field's name in the documents.
    pub field: String,
    /// The column's name.
    pub name: String,
    /// The kind of value it holds.
    pub kind: FieldKind,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{rawdoc, Binary, Decimal128};

    #[test]
    fn kinds_round_trip_through_their_registry_names() {
        for kind in FieldKind::ALL {
            assert_eq!(FieldKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(FieldKind::parse("float"), None);
    }

    #[test]
    fn each_bson_type_gets_the_column_that_holds_it_exactly() {
        let doc = rawdoc! {
            "i": 1, "l": 2_i64, "d": 1.5, "m": Decimal128::from_bytes([0; 16]), "s": "x",
            "o": bson::oid::ObjectId::new(), "b": true, "t": bson::DateTime::now(),
            "u": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
            "g": Binary { subtype: BinarySubtype::Generic, bytes: vec![1] },
            "a": [1], "n": bson::RawBson::Null, "r": bson::Regex { pattern: "a".try_into().expect("cstr"), options: "".try_into().expect("cstr") },
        };
        let types: Vec<(String, Option<&str>)> = doc
            .iter()
            .map(|e| {
                let (k, v) = e.expect("element");
                (
                    k.as_str().to_string(),
                    FieldKind::of(v).map(|kind| kind.column_type().sql()),
                )
            })
            .collect();
        let expected = [
            ("i", Some("int8")),
            ("l", Some("int8")),
            ("d", Some("float8")),
            ("m", Some("numeric")),
            ("s", Some("text")),
            ("o", Some("text")),
            ("b", Some("bool")),
            ("t", Some("timestamptz")),
            ("u", Some("uuid")),
            ("g", Some("bytea")),
            ("a", Some("jsonb")),
            ("n", None),
            ("r", Some("jsonb")),
        ];
        let expected: Vec<(String, Option<&str>)> =
            expected.iter().map(|(k, t)| (k.to_string(), *t)).collect();
        assert_eq!(types, expected);
    }
}
