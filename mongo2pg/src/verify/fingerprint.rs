//! Comparing what would be written with what PostgreSQL holds, value by value.
//!
//! `verify` maps each source document as a writer would, and reads the target's rows
//! back in binary. Most binary values come back byte for byte as [`Cell`] wrote them;
//! two do not: `numeric` (PostgreSQL strips zero digit groups) and `jsonb`
//! (PostgreSQL reorders keys and respaces). [`normalized`] turns both sides into one
//! canonical form, and [`Fingerprint`] hashes a row of such values, so equal content
//! gives equal fingerprints whichever side it came from, and sums of fingerprints
//! compare whole ranges regardless of order.

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

use landing::cell::Cell;
use landing::column_type::ColumnType;
use std::borrow::Cow;

use landing::mapping::{ChildPlan, Row, TablePlan};
use landing::numeric::Numeric;
use landing::transform::keys::Secret;

use super::error::FingerprintError;

/// A value as PostgreSQL sent it, undecoded.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawValue<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The binary bytes a cell is written as; `None` for NULL.
pub(super) fn cell_bytes(cell: &Cell, ty: ColumnType) -> Result<Option<Vec<u8>>, FingerprintError> {
    let mut out = BytesMut::new();
    match cell.to_sql(&ty.pg_type(), &mut out) {
        Ok(IsNull::Yes) => Ok(None),
        Ok(IsNull::No) => Ok(Some(out.to_vec())),
        Err(e) => Err(FingerprintError::Encode(e)),
    }
}

/// A canonical form of a binary value of type `ty`, equal for equal values.
pub(super) fn normalized(ty: ColumnType, bytes: &[u8]) -> Result<Vec<u8>, FingerprintError> {
    if let Some(element) = ty.element() {
        return normalized_array(element, bytes);
    }
    match ty {
        ColumnType::Numeric => Ok(Numeric::text_of(bytes)?.into_bytes()),
        ColumnType::Jsonb => {
            let text = match bytes.split_first() {
                Some((1, text)) => text,
                _ => {
                    return Err(FingerprintError::Malformed(
                        "jsonb of an unknown binary version".to_string(),
                    ))
                }
            };
            let value: serde_json::Value = serde_json::from_slice(text)?;
            let mut out = String::new();
            canonical_json(&value, &mut out);
            Ok(out.into_bytes())
        }
        _ => Ok(bytes.to_vec()),
    }
}

/// JSON with object keys sorted (PostgreSQL stores them in its own order).
fn canonical_json(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A one-dimensional binary array as its element count and canonical elements.
fn normalized_array(element: ColumnType, bytes: &[u8]) -> Result<Vec<u8>, FingerprintError> {
    let mut reader = Reader(bytes);
    let ndim = reader.i32()?;
    let _has_null = reader.i32()?;
    let _oid = reader.i32()?;
    let count = match ndim {
        0 => 0,
        1 => {
            let count = reader.i32()?;
            let _lower = reader.i32()?;
            count
        }
        n => {
            return Err(FingerprintError::Malformed(format!(
                "an array of {n} dimensions"
            )))
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&count.to_be_bytes());
    for _ in 0..count {
        let len = reader.i32()?;
        if len < 0 {
            out.extend_from_slice(&(-1_i32).to_be_bytes());
            continue;
        }
        let value = normalized(element, reader.take(len as usize)?)?;
        out.extend_from_slice(&(value.len() as i32).to_be_bytes());
        out.extend_from_slice(&value);
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FingerprintError> {
        if self.0.len() < n {
            return Err(FingerprintError::Malformed("a truncated array".to_string()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32, FingerprintError> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// A 128-bit hash of a row's canonical values; rows add up (wrapping) into the
/// fingerprint of a set of rows, whatever their order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(super) struct Fingerprint(pub u128);

impl Fingerprint {
    /// The fingerprint of one row of values (`None` for NULL) of the given types;
    /// `table` tells a parent row from a row of child table `n` (`Some(n)`).
    pub(super) fn of_row<'v>(
        table: Option<usize>,
        values: impl IntoIterator<Item = (ColumnType, Option<&'v [u8]>)>,
    ) -> Result<Fingerprint, FingerprintError> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&table.map_or(-1_i64, |n| n as i64).to_be_bytes());
        for (ty, value) in values {
            match value {
                None => {
                    hasher.update(&[0]);
                }
                Some(bytes) => {
                    let value = normalized(ty, bytes)?;
                    hasher.update(&[1]);
                    hasher.update(&(value.len() as u64).to_be_bytes());
                    hasher.update(&value);
                }
            }
        }
        let hash = hasher.finalize();
        let mut first = [0_u8; 16];
        first.copy_from_slice(&hash.as_bytes()[..16]);
        Ok(Fingerprint(u128::from_be_bytes(first)))
    }

    pub(super) fn add(&mut self, other: Fingerprint) {
        self.0 = self.0.wrapping_add(other.0);
    }

    /// A document's fingerprint: its row and its child rows, as the mapping writes them.
    pub(super) fn of_document(
        plan: &TablePlan,
        row: &Row,
    ) -> Result<Fingerprint, FingerprintError> {
        let columns = plan.columns.iter().map(|c| (c.ty, c.sealed_with()));
        let mut total = Fingerprint::of_cells(None, columns, &row.cells)?;
        for (i, (child, rows)) in plan.children.iter().zip(&row.children).enumerate() {
            for cells in rows {
                total.add(Fingerprint::of_cells(Some(i), child_columns(child), cells)?);
            }
        }
        Ok(total)
    }

    /// The fingerprint of one row of cells, each of a column (its type, and the key
    /// its values are sealed with).
    pub(super) fn of_cells<'k>(
        table: Option<usize>,
        columns: impl Iterator<Item = (ColumnType, Option<&'k Secret>)>,
        cells: &[Cell],
    ) -> Result<Fingerprint, FingerprintError> {
        let encoded = columns
            .zip(cells)
            .map(|((ty, key), cell)| {
                cell_bytes(cell, ty)
                    .map(|bytes| (ty, bytes.map(|b| compared(key, &b).into_owned())))
            })
            .collect::<Result<Vec<_>, FingerprintError>>()?;
        Fingerprint::of_row(table, encoded.iter().map(|(ty, b)| (*ty, b.as_deref())))
    }
}

/// A value as compared: an encrypted column's plaintext, opened with its key (each
/// encryption draws a fresh nonce, so equal values are never equal bytes); a value
/// that does not open is compared as it is, marked, and differs.
pub(super) fn compared<'a>(key: Option<&Secret>, bytes: &'a [u8]) -> Cow<'a, [u8]> {
    let Some(key) = key else {
        return Cow::Borrowed(bytes);
    };
    match landing::transform::cipher::open_sealed(key, bytes) {
        Ok(plain) => Cow::Owned([&b"opened:"[..], &plain].concat()),
        Err(_) => Cow::Owned([&b"sealed:"[..], bytes].concat()),
    }
}

/// The columns of a child table, in order: each one's type and the key its values
/// are sealed with.
pub(super) fn child_columns(
    child: &ChildPlan,
) -> impl Iterator<Item = (ColumnType, Option<&Secret>)> + '_ {
    child.columns.iter().map(|c| (c.ty, c.sealed_with()))
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    fn bytes(cell: &Cell, ty: ColumnType) -> Vec<u8> {
        cell_bytes(cell, ty).expect("encodes").expect("not null")
    }

    #[test]
    fn postgres_forms_of_numeric_and_jsonb_compare_equal() {
        // 1.50 written by us, and 1.50 with a trailing zero digit group (a form
        // PostgreSQL strips, as it strips leading ones): both read as "1.50".
        let ours = bytes(
            &Cell::Numeric(Numeric::parse("1.50").expect("n")),
            ColumnType::Numeric,
        );
        let theirs = [0, 3, 0, 0, 0, 0, 0, 2, 0, 1, 0x13, 0x88, 0, 0];
        assert_eq!(
            normalized(ColumnType::Numeric, &ours).expect("ours"),
            normalized(ColumnType::Numeric, &theirs).expect("theirs")
        );
        let ours = bytes(
            &Cell::Jsonb(r#"{"b":1,"a":[true]}"#.into()),
            ColumnType::Jsonb,
        );
        let theirs = b"\x01{\"a\": [true], \"b\": 1}";
        assert_eq!(
            normalized(ColumnType::Jsonb, &ours).expect("ours"),
            normalized(ColumnType::Jsonb, theirs).expect("theirs")
        );
        let other = b"\x01{\"a\": [false], \"b\": 1}";
        assert_ne!(
            normalized(ColumnType::Jsonb, &ours).expect("ours"),
            normalized(ColumnType::Jsonb, other).expect("other")
        );
    }

    #[test]
    fn arrays_normalize_their_elements() {
        let array = |n: Cell| {
            let cell = Cell::Array(ColumnType::Numeric, vec![n, Cell::Null]);
            normalized(
                ColumnType::NumericArray,
                &bytes(&cell, ColumnType::NumericArray),
            )
            .expect("normalizes")
        };
        let a = array(Cell::Numeric(Numeric::parse("1.50").expect("n")));
        assert_eq!(
            a,
            array(Cell::Numeric(Numeric::parse("150E-2").expect("n")))
        );
        assert_ne!(a, array(Cell::Numeric(Numeric::parse("1.5").expect("n"))));
        let empty = Cell::Array(ColumnType::Text, vec![]);
        assert_eq!(
            normalized(ColumnType::TextArray, &bytes(&empty, ColumnType::TextArray))
                .expect("normalizes"),
            0_i32.to_be_bytes().to_vec()
        );
    }

    #[test]
    fn fingerprints_ignore_order_and_see_every_value() {
        let plan = TablePlan::default_for("c");
        let fp = |doc: bson::RawDocumentBuf| {
            Fingerprint::of_document(&plan, &plan.row(&doc).expect("maps")).expect("fingerprint")
        };
        let (a, b) = (
            fp(rawdoc! { "_id": 1, "x": 1 }),
            fp(rawdoc! { "_id": 2, "x": 2 }),
        );
        assert_ne!(
            a,
            fp(rawdoc! { "_id": 1, "x": 1_i64 }),
            "int and long differ"
        );
        let (mut ab, mut ba) = (a, b);
        ab.add(b);
        ba.add(a);
        assert_eq!(ab, ba);
    }
}
