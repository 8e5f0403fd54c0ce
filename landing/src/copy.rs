//! Binary COPY of mapped rows into a table and its child tables, and the slower path
//! that isolates the rows PostgreSQL refuses.
//!
//! When PostgreSQL refuses a row during a COPY (a constraint, a value out of range:
//! SQLSTATE classes 22 and 23), [`copy_isolating`] copies halves under savepoints,
//! recursively, until each refused row stands alone and becomes a reject with
//! PostgreSQL's error; the rest lands, as pgloader does.

use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Transaction;

use crate::cell::Cell;
use crate::column_type::ColumnType;
use crate::identifier::quote;
use crate::mapping::{ChildPlan, Row, TablePlan};
use crate::pg::is_row_error;
use crate::reject::Reject;

/// Copies `rows` under savepoints, halving what PostgreSQL refuses until each refused
/// row stands alone; returns the rows written and a reject for each refused row (built
/// from its source document in `sources`).
pub async fn copy_isolating(
    tx: &Transaction<'_>,
    plan: &TablePlan,
    rows: &[Row],
    sources: &[impl AsRef<[u8]>],
) -> Result<(u64, Vec<Reject>), tokio_postgres::Error> {
    let mut written = 0;
    let mut refused = Vec::new();
    let mut ranges = vec![(0, rows.len())];
    while let Some((lo, hi)) = ranges.pop() {
        if lo == hi {
            continue;
        }
        tx.batch_execute("SAVEPOINT m2p_rows").await?;
        match copy_rows(tx, plan, &rows[lo..hi]).await {
            Ok(n) => {
                written += n;
                tx.batch_execute("RELEASE SAVEPOINT m2p_rows").await?;
            }
            Err(err) if is_row_error(&err) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT m2p_rows").await?;
                if hi - lo == 1 {
                    refused.push(Reject::refused(sources[lo].as_ref(), &err));
                } else {
                    let mid = lo + (hi - lo) / 2;
                    // Popped in order: the lower half first.
                    ranges.push((mid, hi));
                    ranges.push((lo, mid));
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok((written, refused))
}

/// Binary COPY of `rows` into the table, then of their elements into each child
/// table; returns the number of (parent) rows written.
pub async fn copy_rows(
    tx: &Transaction<'_>,
    plan: &TablePlan,
    rows: &[Row],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
    let types: Vec<_> = plan.columns.iter().map(|c| c.ty.pg_type()).collect();
    let parents: Vec<&Vec<Cell>> = rows.iter().map(|r| &r.cells).collect();
    let written = copy_into(tx, &plan.table, &names, &types, &parents).await?;
    let parent_type = plan
        .primary_key_type()
        .unwrap_or(ColumnType::Text)
        .pg_type();
    for (i, child) in plan.children.iter().enumerate() {
        let types = [parent_type.clone(), Type::INT4, child.ty.pg_type()];
        let elements: Vec<&Vec<Cell>> = rows.iter().flat_map(|r| r.children[i].iter()).collect();
        copy_into(tx, &child.table, &ChildPlan::COLUMNS, &types, &elements).await?;
    }
    Ok(written)
}

/// One binary COPY; returns the number of rows written.
async fn copy_into(
    tx: &Transaction<'_>,
    table: &str,
    columns: &[&str],
    types: &[Type],
    rows: &[&Vec<Cell>],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let columns: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let sink = tx
        .copy_in(&format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            quote(table),
            columns.join(", ")
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, types);
    pin_mut!(writer);
    let mut values: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(columns.len());
    for row in rows {
        values.clear();
        values.extend(row.iter().map(|cell| cell as &(dyn ToSql + Sync)));
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await
}
