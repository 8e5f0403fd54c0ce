//! One value on its way into a PostgreSQL column: BSON in, binary COPY bytes out.
//!
//! Conversions are exact or refused: a value that would lose precision, overflow, or
//! that the column's type cannot hold at all becomes a [`CellError`], which sends the
//! document to the rejects table with the field named, never a silently altered value.

use std::error::Error;

use bson::spec::BinarySubtype;
use bson::RawBsonRef;
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::extjson::JsonMode;
use crate::numeric::Numeric;

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
    pub json: JsonMode,
    /// `None`: subtype 3 is refused by uuid columns.
    pub legacy_uuid: Option<LegacyUuid>,
}

/// A value ready for binary COPY.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int4(i32),
    Int8(i64),
    Float8(f64),
    Numeric(Numeric),
    Bool(bool),
    /// Microseconds since 2000-01-01 UTC, PostgreSQL's epoch.
    Timestamptz(i64),
    Uuid([u8; 16]),
    Bytea(Vec<u8>),
    /// Extended JSON text.
    Jsonb(String),
    /// A one-dimensional array of cells of one element type.
    Array(ColumnType, Vec<Cell>),
}

/// Why a value cannot land in its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    pub expected: ColumnType,
    /// The BSON type found, in MongoDB's `$type` spelling.
    pub found: &'static str,
    pub reason: String,
}

/// Milliseconds from the Unix epoch to PostgreSQL's.
const PG_EPOCH_MS: i64 = 946_684_800_000;
/// PostgreSQL's timestamp range in microseconds from its epoch: 4713-01-01 BC to
/// 294276-12-31 AD (`MIN_TIMESTAMP` and `END_TIMESTAMP` in its source).
const PG_MIN_MICROS: i64 = -211_813_488_000_000_000;
const PG_END_MICROS: i64 = 9_223_371_331_200_000_000;
/// Integers a double represents exactly.
const F64_EXACT: i64 = 1 << 53;

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

impl Cell {
    /// Converts a field's value (`None` when the field is absent) for a column.
    pub fn convert(
        value: Option<RawBsonRef<'_>>,
        ty: ColumnType,
        options: &ValueOptions,
    ) -> Result<Cell, CellError> {
        let Some(value) = value else {
            return Ok(Cell::Null);
        };
        let found = type_name(value);
        let refuse = |reason: String| CellError {
            expected: ty,
            found,
            reason,
        };
        let wrong_type = || refuse(format!("a {found} value cannot be stored as {}", ty.sql()));
        if matches!(value, RawBsonRef::Null | RawBsonRef::Undefined) {
            return Ok(Cell::Null);
        }
        if let Some(element) = ty.element() {
            let RawBsonRef::Array(array) = value else {
                return Err(wrong_type());
            };
            let mut cells = Vec::new();
            for (i, item) in array.into_iter().enumerate() {
                let item = item.map_err(|e| refuse(format!("unreadable BSON: {e}")))?;
                let cell = Cell::convert(Some(item), element, options).map_err(|e| CellError {
                    expected: ty,
                    found: e.found,
                    reason: format!("element {i}: {}", e.reason),
                })?;
                cells.push(cell);
            }
            return Ok(Cell::Array(element, cells));
        }
        match ty {
            ColumnType::Jsonb => json_cell(value, options.json).map_err(refuse),
            ColumnType::Text => match value {
                RawBsonRef::String(s) | RawBsonRef::Symbol(s) => text_cell(s).map_err(refuse),
                RawBsonRef::ObjectId(oid) => Ok(Cell::Text(oid.to_hex())),
                _ => Err(wrong_type()),
            },
            ColumnType::Int4 => match value {
                RawBsonRef::Int32(v) => Ok(Cell::Int4(v)),
                RawBsonRef::Int64(v) => i32::try_from(v)
                    .map(Cell::Int4)
                    .map_err(|_| refuse(format!("{v} is out of range for int4"))),
                _ => Err(wrong_type()),
            },
            ColumnType::Int8 => match value {
                RawBsonRef::Int32(v) => Ok(Cell::Int8(v.into())),
                RawBsonRef::Int64(v) => Ok(Cell::Int8(v)),
                // t·2³² + i: one number, ordered as the timestamps are.
                RawBsonRef::Timestamp(ts) => {
                    i64::try_from((u64::from(ts.time) << 32) | u64::from(ts.increment))
                        .map(Cell::Int8)
                        .map_err(|_| refuse(format!("timestamp t={} does not fit int8", ts.time)))
                }
                _ => Err(wrong_type()),
            },
            ColumnType::Float8 => match value {
                RawBsonRef::Double(v) => Ok(Cell::Float8(v)),
                RawBsonRef::Int32(v) => Ok(Cell::Float8(v.into())),
                RawBsonRef::Int64(v) if v.abs() <= F64_EXACT => Ok(Cell::Float8(v as f64)),
                RawBsonRef::Int64(v) => Err(refuse(format!(
                    "{v} cannot be stored exactly as float8; map the field as int8 or numeric"
                ))),
                _ => Err(wrong_type()),
            },
            ColumnType::Numeric => {
                let text = match value {
                    RawBsonRef::Decimal128(d) => d.to_string(),
                    RawBsonRef::Int32(v) => v.to_string(),
                    RawBsonRef::Int64(v) => v.to_string(),
                    // Rust prints the shortest text that reads back as the same double.
                    RawBsonRef::Double(v) if v.is_nan() => "NaN".to_string(),
                    RawBsonRef::Double(v) if v.is_infinite() => {
                        if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
                    }
                    RawBsonRef::Double(v) => format!("{v:?}"),
                    _ => return Err(wrong_type()),
                };
                Numeric::parse(&text).map(Cell::Numeric).map_err(refuse)
            }
            ColumnType::Bool => match value {
                RawBsonRef::Boolean(v) => Ok(Cell::Bool(v)),
                _ => Err(wrong_type()),
            },
            ColumnType::Timestamptz => match value {
                RawBsonRef::DateTime(dt) => timestamp_cell(dt.timestamp_millis()).map_err(refuse),
                _ => Err(wrong_type()),
            },
            ColumnType::Uuid => match value {
                RawBsonRef::Binary(bin) if bin.subtype == BinarySubtype::Uuid => {
                    <[u8; 16]>::try_from(bin.bytes)
                        .map(Cell::Uuid)
                        .map_err(|_| {
                            refuse(format!("a UUID of {} bytes instead of 16", bin.bytes.len()))
                        })
                }
                RawBsonRef::Binary(bin) if bin.subtype == BinarySubtype::UuidOld => {
                    let Some(legacy) = options.legacy_uuid else {
                        return Err(refuse(
                            "a legacy UUID (subtype 3) has a driver-specific byte order; set legacy_uuid in the mapping".to_string(),
                        ));
                    };
                    <[u8; 16]>::try_from(bin.bytes)
                        .map(|bytes| Cell::Uuid(legacy.standard(bytes)))
                        .map_err(|_| {
                            refuse(format!("a UUID of {} bytes instead of 16", bin.bytes.len()))
                        })
                }
                RawBsonRef::Binary(bin) => Err(refuse(format!(
                    "binary subtype {:?} is not a UUID (subtype 4)",
                    bin.subtype
                ))),
                _ => Err(wrong_type()),
            },
            ColumnType::Bytea => match value {
                RawBsonRef::Binary(bin) => Ok(Cell::Bytea(bin.bytes.to_vec())),
                RawBsonRef::ObjectId(oid) => Ok(Cell::Bytea(oid.bytes().to_vec())),
                _ => Err(wrong_type()),
            },
            // Array types were handled above, element by element.
            _ => Err(wrong_type()),
        }
    }

    /// The `_id` as text, whatever its type, so every document lands in the default
    /// table: strings as they are, ObjectIds as 24 hex digits, anything else as
    /// canonical Extended JSON (`{"$numberInt":"5"}`), which keeps `5` and `"5"` apart.
    pub fn id_text(value: Option<RawBsonRef<'_>>) -> Result<Cell, CellError> {
        match value {
            Some(RawBsonRef::String(s)) => text_cell(s).map_err(|reason| CellError {
                expected: ColumnType::Text,
                found: "string",
                reason,
            }),
            Some(RawBsonRef::ObjectId(oid)) => Ok(Cell::Text(oid.to_hex())),
            Some(other) => match json_cell(other, JsonMode::Canonical) {
                Ok(Cell::Jsonb(json)) => Ok(Cell::Text(json)),
                Ok(_) => Ok(Cell::Null),
                Err(reason) => Err(CellError {
                    expected: ColumnType::Text,
                    found: type_name(other),
                    reason,
                }),
            },
            None => Err(CellError {
                expected: ColumnType::Text,
                found: "missing",
                reason: "the document has no _id".to_string(),
            }),
        }
    }
}

fn text_cell(s: &str) -> Result<Cell, String> {
    if s.contains('\0') {
        return Err("the string holds a NUL byte, which PostgreSQL text cannot store".to_string());
    }
    Ok(Cell::Text(s.to_string()))
}

fn timestamp_cell(millis: i64) -> Result<Cell, String> {
    let micros = millis
        .checked_sub(PG_EPOCH_MS)
        .and_then(|ms| ms.checked_mul(1000))
        .filter(|us| (PG_MIN_MICROS..PG_END_MICROS).contains(us));
    micros
        .map(Cell::Timestamptz)
        .ok_or_else(|| format!("date {millis} ms from 1970 is outside PostgreSQL's timestamptz range (4713 BC to 294276 AD)"))
}

/// A short rendering of a value for the rejects table: Extended JSON, or the value's
/// debug form when JSON cannot hold it (a NUL byte), cut at 200 characters.
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

/// A value as Extended JSON, refused when a string holds a NUL byte (jsonb cannot
/// store `\u0000`), with the path of that string.
pub fn json_cell(value: RawBsonRef<'_>, mode: JsonMode) -> Result<Cell, String> {
    let mut text = String::new();
    crate::extjson::write_value(value, mode, &mut text).map_err(|e| {
        if e.path.is_empty() {
            format!("the value {}", e.reason)
        } else {
            format!("the string at {:?} {}", e.path.join("."), e.reason)
        }
    })?;
    Ok(Cell::Jsonb(text))
}

impl ToSql for Cell {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Cell::Null => return Ok(IsNull::Yes),
            Cell::Text(s) => out.put_slice(s.as_bytes()),
            Cell::Int4(v) => out.put_i32(*v),
            Cell::Int8(v) => out.put_i64(*v),
            Cell::Float8(v) => out.put_f64(*v),
            Cell::Numeric(n) => n.write(out),
            Cell::Bool(v) => out.put_u8(u8::from(*v)),
            Cell::Timestamptz(us) => out.put_i64(*us),
            Cell::Uuid(bytes) => out.put_slice(bytes),
            Cell::Bytea(bytes) => out.put_slice(bytes),
            Cell::Jsonb(json) => {
                // jsonb's binary format: a version byte, then the JSON text.
                out.put_u8(1);
                out.put_slice(json.as_bytes());
            }
            Cell::Array(element, cells) => write_array(*element, cells, out)?,
        }
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        // Each cell is built for its column's type; the mapping guarantees the match.
        true
    }

    to_sql_checked!();
}

/// PostgreSQL's binary array format, one dimension: header, then each element as a
/// length (-1 for NULL) and its bytes.
fn write_array(
    element: ColumnType,
    cells: &[Cell],
    out: &mut BytesMut,
) -> Result<(), Box<dyn Error + Sync + Send>> {
    let element_type = element.pg_type();
    out.put_i32(i32::from(!cells.is_empty()));
    out.put_i32(i32::from(cells.contains(&Cell::Null)));
    out.put_u32(element_type.oid());
    if !cells.is_empty() {
        out.put_i32(i32::try_from(cells.len())?);
        out.put_i32(1);
    }
    for cell in cells {
        let at = out.len();
        out.put_i32(0);
        match cell.to_sql(&element_type, out)? {
            IsNull::Yes => out[at..at + 4].copy_from_slice(&(-1_i32).to_be_bytes()),
            IsNull::No => {
                let len = i32::try_from(out.len() - at - 4)?;
                out[at..at + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{rawdoc, Binary, DateTime, Decimal128};

    fn convert(doc: &bson::RawDocumentBuf, ty: ColumnType) -> Result<Cell, CellError> {
        Cell::convert(
            doc.get("v").expect("readable"),
            ty,
            &ValueOptions::default(),
        )
    }

    #[test]
    fn exact_conversions() {
        assert_eq!(
            convert(&rawdoc! { "v": 7 }, ColumnType::Int8),
            Ok(Cell::Int8(7))
        );
        assert_eq!(
            convert(&rawdoc! { "v": 7_i64 }, ColumnType::Int4),
            Ok(Cell::Int4(7))
        );
        assert_eq!(
            convert(&rawdoc! { "v": 2.5 }, ColumnType::Float8),
            Ok(Cell::Float8(2.5))
        );
        assert_eq!(convert(&rawdoc! {}, ColumnType::Int8), Ok(Cell::Null));
        assert_eq!(
            convert(&rawdoc! { "v": bson::RawBson::Null }, ColumnType::Bool),
            Ok(Cell::Null)
        );
        let d: Decimal128 = "1.50".parse().expect("decimal");
        assert_eq!(
            convert(&rawdoc! { "v": d }, ColumnType::Numeric),
            Ok(Cell::Numeric(Numeric::parse("1.50").expect("numeric")))
        );
        assert_eq!(
            convert(
                &rawdoc! { "v": DateTime::from_millis(PG_EPOCH_MS + 1) },
                ColumnType::Timestamptz
            ),
            Ok(Cell::Timestamptz(1000))
        );
        let uuid = Binary {
            subtype: BinarySubtype::Uuid,
            bytes: vec![7; 16],
        };
        assert_eq!(
            convert(&rawdoc! { "v": uuid }, ColumnType::Uuid),
            Ok(Cell::Uuid([7; 16]))
        );
    }

    #[test]
    fn lossy_or_wrong_values_are_refused_with_a_reason() {
        let err = convert(&rawdoc! { "v": "x" }, ColumnType::Int4).expect_err("refused");
        assert_eq!((err.expected, err.found), (ColumnType::Int4, "string"));
        let err = convert(&rawdoc! { "v": 1_i64 << 40 }, ColumnType::Int4).expect_err("refused");
        assert!(err.reason.contains("out of range"), "{}", err.reason);
        assert!(convert(&rawdoc! { "v": (1_i64 << 53) + 1 }, ColumnType::Float8).is_err());
        let err = convert(&rawdoc! { "v": "a\0b" }, ColumnType::Text).expect_err("refused");
        assert!(err.reason.contains("NUL"), "{}", err.reason);
        let err =
            convert(&rawdoc! { "v": { "k": "a\0b" } }, ColumnType::Jsonb).expect_err("refused");
        assert!(err.reason.contains("\"k\""), "{}", err.reason);
        assert!(convert(&rawdoc! { "v": DateTime::MAX }, ColumnType::Timestamptz).is_err());
    }

    #[test]
    fn arrays_legacy_uuids_object_ids_and_timestamps() {
        assert_eq!(
            convert(
                &rawdoc! { "v": [1, 2_i64, bson::RawBson::Null] },
                ColumnType::Int8Array
            ),
            Ok(Cell::Array(
                ColumnType::Int8,
                vec![Cell::Int8(1), Cell::Int8(2), Cell::Null]
            ))
        );
        let err = convert(&rawdoc! { "v": [1, "two"] }, ColumnType::Int8Array).expect_err("mixed");
        assert!(err.reason.starts_with("element 1:"), "{}", err.reason);
        assert!(convert(&rawdoc! { "v": 1 }, ColumnType::TextArray).is_err());

        let bytes: Vec<u8> = (0..16).collect();
        let legacy =
            rawdoc! { "v": Binary { subtype: BinarySubtype::UuidOld, bytes: bytes.clone() } };
        assert!(
            convert(&legacy, ColumnType::Uuid).is_err(),
            "refused unless asked"
        );
        let java = ValueOptions {
            legacy_uuid: Some(LegacyUuid::Java),
            ..ValueOptions::default()
        };
        assert_eq!(
            Cell::convert(legacy.get("v").expect("readable"), ColumnType::Uuid, &java),
            Ok(Cell::Uuid([
                7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8
            ]))
        );
        let csharp = ValueOptions {
            legacy_uuid: Some(LegacyUuid::Csharp),
            ..ValueOptions::default()
        };
        assert_eq!(
            Cell::convert(
                legacy.get("v").expect("readable"),
                ColumnType::Uuid,
                &csharp
            ),
            Ok(Cell::Uuid([
                3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15
            ]))
        );

        let oid = bson::oid::ObjectId::new();
        assert_eq!(
            convert(&rawdoc! { "v": oid }, ColumnType::Bytea),
            Ok(Cell::Bytea(oid.bytes().to_vec()))
        );
        let ts = bson::Timestamp {
            time: 3,
            increment: 4,
        };
        assert_eq!(
            convert(&rawdoc! { "v": ts }, ColumnType::Int8),
            Ok(Cell::Int8((3 << 32) | 4))
        );
        assert!(convert(&rawdoc! { "v": ts }, ColumnType::Timestamptz).is_err());
    }

    #[test]
    fn excerpts_are_short_and_show_nul_bytes() {
        let long = "x".repeat(500);
        let text = excerpt(rawdoc! { "v": long }.get("v").expect("r").expect("v"));
        assert_eq!(text.chars().count(), 201);
        let text = excerpt(rawdoc! { "v": "a\0b" }.get("v").expect("r").expect("v"));
        assert_eq!(text, r#""a\0b""#);
    }

    #[test]
    fn ids_of_any_type_become_distinct_text() {
        let id = |doc: bson::RawDocumentBuf| Cell::id_text(doc.get("_id").expect("readable"));
        assert_eq!(id(rawdoc! { "_id": "5" }), Ok(Cell::Text("5".into())));
        assert_eq!(
            id(rawdoc! { "_id": 5 }),
            Ok(Cell::Text(r#"{"$numberInt":"5"}"#.into()))
        );
        let oid = bson::oid::ObjectId::new();
        assert_eq!(id(rawdoc! { "_id": oid }), Ok(Cell::Text(oid.to_hex())));
    }
}
