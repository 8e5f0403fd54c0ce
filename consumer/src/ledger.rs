//! Landing one batch exactly once.
//!
//! The batch's rows (binary COPY), its rejects, and a ledger row keyed by the batch id
//! commit in one transaction. The ledger row is inserted first: a second writer holding
//! the same batch (a redelivery racing the original) blocks on that key until the first
//! transaction ends, then finds the key taken and skips the batch. A batch whose id is
//! already in the ledger is a duplicate: acknowledged, counted, not written again.
//!
//! When PostgreSQL refuses a row during the COPY (a constraint, a value out of range:
//! SQLSTATE classes 22 and 23), the batch is landed again in isolation: halves are
//! copied under savepoints, recursively, until each refused row stands alone and goes
//! to the rejects table with PostgreSQL's error; the rest lands, as pgloader does. The
//! common case pays nothing for this: one COPY, no savepoint.

use std::borrow::Cow;

use common::naming::LEDGER_TABLE;
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Transaction};
use tracing::Instrument;

use crate::cell::Cell;
use crate::mapping::{ChildPlan, Row, TablePlan};
use crate::reject::{self, Origin, Reject};
use crate::schema::quote;

/// A batch mapped to rows, ready to land.
pub struct MappedBatch<'a> {
    pub batch_id: &'a str,
    pub run: &'a str,
    pub collection: &'a str,
    pub seq: u64,
    pub rows: Vec<Row>,
    /// Each row's source document, for a reject if PostgreSQL refuses the row.
    pub sources: Vec<Cow<'a, [u8]>>,
    pub rejects: Vec<Reject>,
}

/// What landing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landed {
    Committed {
        rows: u64,
        rejects: u64,
    },
    /// The ledger already held this batch id.
    Duplicate,
}

/// Whether PostgreSQL refused a row's data (rather than the batch, the connection or
/// the table): such rows are isolated into rejects.
fn is_row_error(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|code| {
        let code = code.code();
        code.starts_with("22") || code.starts_with("23")
    })
}

/// Writes the batch in one transaction: ledger row, COPY of the rows, rejects.
pub async fn land(
    client: &mut Client,
    plan: &TablePlan,
    batch: &MappedBatch<'_>,
) -> Result<Landed, tokio_postgres::Error> {
    let Some(tx) = begin_claimed(client, plan, batch).await? else {
        return Ok(Landed::Duplicate);
    };
    let copied = copy_rows(&tx, plan, &batch.rows)
        .instrument(tracing::info_span!("copy", table = %plan.table, rows = batch.rows.len()))
        .await;
    match copied {
        Ok(rows) => {
            let rejects: Vec<&Reject> = batch.rejects.iter().collect();
            reject::insert(&tx, &origin(batch), &rejects).await?;
            tx.commit()
                .instrument(tracing::info_span!("commit"))
                .await?;
            Ok(Landed::Committed {
                rows,
                rejects: rejects.len() as u64,
            })
        }
        Err(err) if is_row_error(&err) => {
            tx.rollback().await?;
            tracing::info!(batch = batch.batch_id, error = %crate::error::pg_detail(&err),
                "PostgreSQL refused a row; isolating the refused rows");
            land_isolating(client, plan, batch).await
        }
        Err(err) => Err(err),
    }
}

/// Lands the batch copying halves under savepoints, so that only refused rows are
/// rejected.
async fn land_isolating(
    client: &mut Client,
    plan: &TablePlan,
    batch: &MappedBatch<'_>,
) -> Result<Landed, tokio_postgres::Error> {
    let Some(tx) = begin_claimed(client, plan, batch).await? else {
        return Ok(Landed::Duplicate);
    };
    let (written, refused) = copy_isolating(&tx, plan, &batch.rows, &batch.sources).await?;
    let rejects: Vec<&Reject> = batch.rejects.iter().chain(refused.iter()).collect();
    reject::insert(&tx, &origin(batch), &rejects).await?;
    tx.execute(
        &format!(
            "UPDATE {} SET rows_written = $2, rows_rejected = $3 WHERE batch_id = $1",
            quote(LEDGER_TABLE)
        ),
        &[&batch.batch_id, &(written as i32), &(rejects.len() as i32)],
    )
    .await?;
    tx.commit().await?;
    Ok(Landed::Committed {
        rows: written,
        rejects: rejects.len() as u64,
    })
}

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

fn origin<'a>(batch: &'a MappedBatch<'_>) -> Origin<'a> {
    Origin {
        run: batch.run,
        collection: batch.collection,
        batch_id: batch.batch_id,
    }
}

/// Begins the batch's transaction with its ledger row inserted; `None` (and nothing
/// left open) when the batch id is already in the ledger.
async fn begin_claimed<'c>(
    client: &'c mut Client,
    plan: &TablePlan,
    batch: &MappedBatch<'_>,
) -> Result<Option<Transaction<'c>>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO {} (batch_id, run, collection, seq, target_table, rows_written, rows_rejected)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (batch_id) DO NOTHING",
                quote(LEDGER_TABLE)
            ),
            &[
                &batch.batch_id,
                &batch.run,
                &batch.collection,
                &(batch.seq as i64),
                &plan.table,
                &(batch.rows.len() as i32),
                &(batch.rejects.len() as i32),
            ],
        )
        .await?;
    if inserted == 1 {
        Ok(Some(tx))
    } else {
        tx.rollback().await?;
        Ok(None)
    }
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
        .unwrap_or(crate::cell::ColumnType::Text)
        .pg_type();
    for (i, child) in plan.children.iter().enumerate() {
        let types = [
            parent_type.clone(),
            tokio_postgres::types::Type::INT4,
            child.ty.pg_type(),
        ];
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
    types: &[tokio_postgres::types::Type],
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
