//! A cell's bytes in PostgreSQL's binary format, as binary COPY sends them.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use super::Cell;
use crate::column_type::ColumnType;

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
