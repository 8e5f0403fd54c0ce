//! BSON value to cell: exact conversions, or a [`CellError`] saying why not.

use bson::spec::BinarySubtype;
use bson::RawBsonRef;

use super::{type_name, Cell, CellError, Refused, ValueOptions};
use crate::column_type::ColumnType;
use crate::extjson::{object_id_hex, JsonMode};
use crate::numeric::Numeric;

pub(super) const PG_EPOCH_MS: i64 = 946_684_800_000;
/// PostgreSQL's timestamp range in microseconds from its epoch: 4713-01-01 BC to
/// 294276-12-31 AD (`MIN_TIMESTAMP` and `END_TIMESTAMP` in its source).
const PG_MIN_MICROS: i64 = -211_813_488_000_000_000;
const PG_END_MICROS: i64 = 9_223_371_331_200_000_000;
/// Integers a double represents exactly.
const F64_EXACT: i64 = 1 << 53;

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
            ColumnType::Jsonb => json_cell(value, options.json).map_err(|r| refuse(r.0)),
            ColumnType::Text => match value {
                RawBsonRef::String(s) | RawBsonRef::Symbol(s) => {
                    text_cell(s).map_err(|r| refuse(r.0))
                }
                RawBsonRef::ObjectId(oid) => Ok(Cell::Text(object_id_hex(&oid))),
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
                    RawBsonRef::Decimal128(d) => {
                        return Numeric::from_decimal128(d)
                            .map(Cell::Numeric)
                            .map_err(|e| refuse(e.0))
                    }
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
                Numeric::parse(&text)
                    .map(Cell::Numeric)
                    .map_err(|e| refuse(e.0))
            }
            ColumnType::Bool => match value {
                RawBsonRef::Boolean(v) => Ok(Cell::Bool(v)),
                _ => Err(wrong_type()),
            },
            ColumnType::Timestamptz => match value {
                RawBsonRef::DateTime(dt) => {
                    timestamp_cell(dt.timestamp_millis()).map_err(|r| refuse(r.0))
                }
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

    /// The `_id` for a typed key column. A value column may give distinct BSON values
    /// one cell (a timestamp and the int64 t·2³²+i, an ObjectId and a 12-byte binary,
    /// a double and the shortest decimal that reads back as it); in a key that would
    /// land two documents MongoDB tells apart as one, the second skipped as "landed
    /// already". So a key takes only values whose cells differ whenever MongoDB's
    /// `_id`s differ, and refuses the others with the reason (`text` takes every
    /// type; see [`Cell::id_text`]):
    /// - numbers compare by value in MongoDB as in PostgreSQL, but a double lands in a
    ///   numeric key as its exact value (`0.1` is 0.1000000000000000055…, which a
    ///   Decimal128 `0.1` is not), and a timestamp never lands in an int8 key;
    /// - a uuid key takes one UUID subtype: 3 when the mapping sets `legacy_uuid`,
    ///   4 otherwise;
    /// - a bytea key takes ObjectIds and generic binaries (subtype 0) of any length
    ///   but an ObjectId's 12 bytes.
    pub fn key(
        value: Option<RawBsonRef<'_>>,
        ty: ColumnType,
        options: &ValueOptions,
    ) -> Result<Cell, CellError> {
        let Some(value) = value else {
            return Cell::convert(value, ty, options);
        };
        let refuse = |reason: &str| {
            Err(CellError {
                expected: ty,
                found: type_name(value),
                reason: format!(
                    "{reason}, a different _id in MongoDB could share this key; map _id as text"
                ),
            })
        };
        match (ty, value) {
            (ColumnType::Int8, RawBsonRef::Timestamp(_)) => {
                refuse("a timestamp _id lands in int8 as the number t·2³²+i")
            }
            (ColumnType::Numeric, RawBsonRef::Double(v)) if v.is_finite() => {
                // Fixed-precision formatting is exact; 1074 places hold any double.
                let exact = format!("{v:.1074}");
                let exact = exact.trim_end_matches('0').trim_end_matches('.');
                Numeric::parse(exact)
                    .map(Cell::Numeric)
                    .map_err(|e| CellError {
                        expected: ty,
                        found: "double",
                        reason: e.0,
                    })
            }
            (ColumnType::Uuid, RawBsonRef::Binary(bin))
                if (bin.subtype == BinarySubtype::UuidOld) != options.legacy_uuid.is_some() =>
            {
                refuse(if options.legacy_uuid.is_some() {
                    "a standard UUID (subtype 4) _id in a key of legacy UUIDs"
                } else {
                    "a legacy UUID (subtype 3) _id in a key of standard UUIDs"
                })
            }
            (ColumnType::Bytea, RawBsonRef::Binary(bin))
                if bin.subtype != BinarySubtype::Generic =>
            {
                refuse(&format!(
                    "a binary _id of subtype {:?} lands in bytea as its bytes alone",
                    bin.subtype
                ))
            }
            (ColumnType::Bytea, RawBsonRef::Binary(bin)) if bin.bytes.len() == 12 => {
                refuse("a 12-byte binary _id lands in bytea as an ObjectId's bytes do")
            }
            _ => Cell::convert(Some(value), ty, options),
        }
    }

    /// The surrogate key of an ObjectId `_id` (`key = "uuid"`): a version 7 UUID whose
    /// first 48 bits are the ObjectId's time in milliseconds (its seconds × 1000), so
    /// keys are ordered by creation like the ObjectIds and new rows land at the right
    /// end of a B-tree; the ObjectId's other 8 bytes follow in the UUID's 12 + 62 free
    /// bits (the last 10 zero). Every ObjectId gives another UUID, and the same one
    /// everywhere: in the table and in every reference to it. Any other `_id` is
    /// refused: there is no ObjectId to derive from.
    pub fn uuid_of_object_id(value: Option<RawBsonRef<'_>>) -> Result<Cell, CellError> {
        let id = match value {
            Some(RawBsonRef::ObjectId(id)) => id.bytes(),
            other => {
                return Err(CellError {
                    expected: ColumnType::Uuid,
                    found: other.map_or("missing", type_name),
                    reason: "key = \"uuid\" derives the key from an ObjectId _id".to_string(),
                })
            }
        };
        let seconds = u64::from(u32::from_be_bytes([id[0], id[1], id[2], id[3]]));
        let millis = (seconds * 1000).to_be_bytes();
        let rest = u64::from_be_bytes([id[4], id[5], id[6], id[7], id[8], id[9], id[10], id[11]]);
        let mut uuid = [0_u8; 16];
        uuid[..6].copy_from_slice(&millis[2..]);
        // Version 7, then the top 12 bits of the rest.
        let rand_a = (rest >> 52) as u16;
        uuid[6..8].copy_from_slice(&(0x7000 | rand_a).to_be_bytes());
        // Variant 10, then the remaining 52 bits, then 10 zero bits.
        let rand_b = (0b10_u64 << 62) | ((rest & ((1 << 52) - 1)) << 10);
        uuid[8..].copy_from_slice(&rand_b.to_be_bytes());
        Ok(Cell::Uuid(uuid))
    }

    /// The `_id` as text, whatever its type, so every document lands in the default
    /// table, and two different `_id`s never share a key (the encoding is injective):
    /// - an ObjectId as its 24 lowercase hex digits;
    /// - any other type but string as canonical Extended JSON (`{"$numberInt":"5"}`,
    ///   `null`, `true`), which starts with `{` or is one of `null`, `true`, `false`;
    /// - a string as it is, unless it could be read as one of those (24 lowercase hex
    ///   digits, a start with `{` or `"`, or `null`, `true`, `false`): then as a JSON
    ///   string literal, quotes included (`"5f1d…"`, `"{\"$numberInt\":\"5\"}"`).
    ///
    /// So the ObjectId `5f1d…` and the string `"5f1d…"`, `5` and the string
    /// `{"$numberInt":"5"}`, `null` and `"null"` land as distinct rows.
    pub fn id_text(value: Option<RawBsonRef<'_>>) -> Result<Cell, CellError> {
        match value {
            // A string holding a NUL byte (which text cannot store) is escaped the same
            // way: its key exists, so rejects and `verify` can name it.
            Some(RawBsonRef::String(s)) if id_string_is_ambiguous(s) || s.contains('\0') => Ok(
                Cell::Text(serde_json::Value::String(s.to_string()).to_string()),
            ),
            Some(RawBsonRef::String(s)) => Ok(Cell::Text(s.to_string())),
            Some(RawBsonRef::ObjectId(oid)) => Ok(Cell::Text(object_id_hex(&oid))),
            Some(other) => match json_cell(other, JsonMode::Canonical) {
                Ok(Cell::Jsonb(json)) => Ok(Cell::Text(json)),
                Ok(_) => Ok(Cell::Null),
                Err(Refused(reason)) => Err(CellError {
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

/// Whether a string `_id` written as it is could be read as the key of another type
/// (see [`Cell::id_text`]).
fn id_string_is_ambiguous(s: &str) -> bool {
    let object_id = s.len() == 24 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    object_id || s.starts_with(['{', '"']) || matches!(s, "null" | "true" | "false")
}

fn text_cell(s: &str) -> Result<Cell, Refused> {
    if s.contains('\0') {
        return Err(Refused(
            "the string holds a NUL byte, which PostgreSQL text cannot store".to_string(),
        ));
    }
    Ok(Cell::Text(s.to_string()))
}

fn timestamp_cell(millis: i64) -> Result<Cell, Refused> {
    let micros = millis
        .checked_sub(PG_EPOCH_MS)
        .and_then(|ms| ms.checked_mul(1000))
        .filter(|us| (PG_MIN_MICROS..PG_END_MICROS).contains(us));
    micros
        .map(Cell::Timestamptz)
        .ok_or_else(|| Refused(format!("date {millis} ms from 1970 is outside PostgreSQL's timestamptz range (4713 BC to 294276 AD)")))
}

/// A value as Extended JSON, refused when a string holds a NUL byte (jsonb cannot
/// store `\u0000`), with the path of that string.
pub fn json_cell(value: RawBsonRef<'_>, mode: JsonMode) -> Result<Cell, Refused> {
    // Extended JSON is about as long as the BSON it renders: sized once, the text
    // is not grown (and copied) several times over.
    let mut text = String::with_capacity(match value {
        RawBsonRef::Document(doc) => doc.as_bytes().len(),
        RawBsonRef::Array(array) => array.as_bytes().len(),
        _ => 32,
    });
    crate::extjson::write_value(value, mode, &mut text).map_err(|e| {
        Refused(if e.path.is_empty() {
            format!("the value {}", e.reason)
        } else {
            format!("the string at {:?} {}", e.path.join("."), e.reason)
        })
    })?;
    Ok(Cell::Jsonb(text))
}
