//! A cell's bytes in PostgreSQL's binary format, as binary COPY sends them.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use super::Cell;
use crate::column_type::ColumnType;

impl Cell {
    /// Writes the cell as one field of a binary COPY row: its length (-1 for NULL),
    /// then its bytes.
    pub(crate) fn write_field(&self, out: &mut BytesMut) {
        let at = out.len();
        out.put_i32(0);
        let len = match self.write_value(out) {
            IsNull::Yes => -1,
            IsNull::No => field_len(out.len() - at - 4),
        };
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// The cell's bytes in PostgreSQL's binary format.
    fn write_value(&self, out: &mut BytesMut) -> IsNull {
        match self {
            Cell::Null => return IsNull::Yes,
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
            Cell::Array(element, cells) => write_array(*element, cells, out),
        }
        IsNull::No
    }
}

/// A length as the binary format writes it. Every value comes from a BSON document of
/// 16 MiB at most, far below `i32::MAX`; a length beyond could only make PostgreSQL
/// refuse the row (a reject), never land another value.
fn field_len(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

impl ToSql for Cell {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        Ok(self.write_value(out))
    }

    fn accepts(_ty: &Type) -> bool {
        // Each cell is built for its column's type; the mapping guarantees the match.
        true
    }

    to_sql_checked!();
}

/// PostgreSQL's binary array format, one dimension: header, then each element as a
/// length (-1 for NULL) and its bytes.
fn write_array(element: ColumnType, cells: &[Cell], out: &mut BytesMut) {
    out.put_i32(i32::from(!cells.is_empty()));
    out.put_i32(i32::from(cells.contains(&Cell::Null)));
    out.put_u32(element.pg_type().oid());
    if !cells.is_empty() {
        out.put_i32(field_len(cells.len()));
        out.put_i32(1);
    }
    for cell in cells {
        cell.write_field(out);
    }
}
