//! Binary COPY of mapped rows into a table and its child tables, and the slower path
//! that isolates the rows PostgreSQL refuses.
//!
//! [`already_landed`] finds the rows whose key the table holds already (landed by an
//! earlier publication of the run, cut into other batches).
//!
//! COPY says how many rows it wrote. Fewer than it was sent means a `BEFORE INSERT`
//! trigger returned NULL for some: [`copy_accounted`] finds which (their keys are not in
//! the table) and makes each a reject saying so, instead of a batch the ledger counts
//! as written in full.
//!
//! When PostgreSQL refuses a row during a COPY (a constraint, a value out of range:
//! SQLSTATE classes 22 and 23), [`copy_isolating`] copies halves under savepoints,
//! recursively, until each refused row stands alone and becomes a reject with
//! PostgreSQL's error; the rest lands, as pgloader does.

use bytes::{BufMut, BytesMut};
use futures::{pin_mut, SinkExt};
use tokio_postgres::types::ToSql;

use crate::cell::Cell;
use crate::identifier::{quote, quote_table};
use crate::mapping::{Row, TablePlan};
use crate::pg::is_row_error;
use crate::reject::Reject;
use crate::session::Tx;

/// Copies `rows` under savepoints, halving what PostgreSQL refuses until each refused
/// row stands alone; returns the rows written and a reject for each refused row (built
/// from its source document in `sources`).
pub(crate) async fn copy_isolating(
    tx: &Tx<'_>,
    plan: &TablePlan,
    rows: &[Row],
    sources: &[impl AsRef<[u8]>],
) -> Result<Isolated, tokio_postgres::Error> {
    let mut written = 0;
    let mut refused = Vec::new();
    let mut unique_violations = 0;
    let mut ranges = vec![(0, rows.len())];
    while let Some((lo, hi)) = ranges.pop() {
        if lo == hi {
            continue;
        }
        tx.batch_execute("SAVEPOINT m2p_rows").await?;
        match copy_accounted(tx, plan, &rows[lo..hi], &sources[lo..hi]).await {
            Ok(copied) => {
                written += copied.written;
                refused.extend(copied.refused);
                tx.batch_execute("RELEASE SAVEPOINT m2p_rows").await?;
            }
            Err(err) if is_row_error(&err) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT m2p_rows").await?;
                if hi - lo == 1 {
                    if is_unique_violation(&err) {
                        unique_violations += 1;
                    }
                    refused.push(Reject::refused(plan, sources[lo].as_ref(), &err));
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
    Ok(Isolated {
        written,
        refused,
        unique_violations,
    })
}

/// What [`copy_isolating`] did.
#[derive(Debug, Default)]
pub struct Isolated {
    /// Rows written.
    pub written: u64,
    /// A reject for each row PostgreSQL refused.
    pub refused: Vec<Reject>,
    /// How many of those were refused for a key already in the table.
    pub unique_violations: usize,
}

/// Copies `rows` in one COPY (see [`copy_rows`]); each row a trigger skipped becomes a
/// reject.
pub(crate) async fn copy_accounted(
    tx: &Tx<'_>,
    plan: &TablePlan,
    rows: &[Row],
    sources: &[impl AsRef<[u8]>],
) -> Result<Isolated, tokio_postgres::Error> {
    let written = copy_rows(tx, plan, rows).await?;
    let mut refused = Vec::new();
    if written < rows.len() as u64 {
        for position in key_positions(tx, plan, rows, Present::No).await? {
            if let Some(source) = sources.get(position) {
                refused.push(Reject::skipped(plan, source.as_ref()));
            }
        }
        tracing::warn!(table = %plan.table, sent = rows.len(), written, skipped = refused.len(),
            "a trigger on the table skipped rows; they are kept as rejects");
    }
    Ok(Isolated {
        written,
        refused,
        unique_violations: 0,
    })
}

/// Whether PostgreSQL refused a row for a key already in a unique index (23505).
pub fn is_unique_violation(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// The positions of `rows` whose key is in the table already, for a plan with a
/// primary key; none without one.
pub(crate) async fn already_landed(
    tx: &Tx<'_>,
    plan: &TablePlan,
    rows: &[Row],
) -> Result<Vec<usize>, tokio_postgres::Error> {
    key_positions(tx, plan, rows, Present::Yes).await
}

/// Which of [`key_positions`]: the rows whose key the table holds, or those it lacks.
#[derive(Clone, Copy)]
enum Present {
    Yes,
    No,
}

/// The positions of `rows` whose key the table holds (or lacks); none without a key.
async fn key_positions(
    tx: &Tx<'_>,
    plan: &TablePlan,
    rows: &[Row],
    present: Present,
) -> Result<Vec<usize>, tokio_postgres::Error> {
    let Some(pk) = plan.primary_key else {
        return Ok(Vec::new());
    };
    let keys: Vec<&Cell> = rows.iter().map(|row| &row.cells[pk]).collect();
    // Unprepared: a join whose plan depends on how much the table holds.
    let found = tx
        .query_unprepared(
            &format!(
                "SELECT k.i FROM unnest($1::{}[]) WITH ORDINALITY AS k(key, i)
                 WHERE {} EXISTS (SELECT 1 FROM {} t WHERE t.{} = k.key)",
                plan.columns[pk].ty.sql(),
                match present {
                    Present::Yes => "",
                    Present::No => "NOT",
                },
                quote_table(&plan.table),
                quote(&plan.columns[pk].name)
            ),
            &[&keys as &(dyn ToSql + Sync)],
        )
        .await?;
    found
        .iter()
        .map(|row| {
            let position: i64 = row.try_get(0)?;
            // WITH ORDINALITY counts from 1.
            Ok(usize::try_from(position - 1).unwrap_or(usize::MAX))
        })
        .collect()
}

/// Binary COPY of `rows` into the table, then of their elements into each child
/// table; returns the number of (parent) rows written.
pub(crate) async fn copy_rows(
    tx: &Tx<'_>,
    plan: &TablePlan,
    rows: &[Row],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let names: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
    let parents: Vec<&Vec<Cell>> = rows.iter().map(|r| &r.cells).collect();
    let written = copy_into(tx, &plan.table, &names, &parents).await?;
    for (i, child) in plan.children.iter().enumerate() {
        let names: Vec<&str> = child.columns.iter().map(|c| c.name.as_str()).collect();
        let elements: Vec<&Vec<Cell>> = rows.iter().flat_map(|r| r.children[i].iter()).collect();
        copy_into(tx, &child.table, &names, &elements).await?;
    }
    Ok(written)
}

/// How much of a COPY's data is sent at a time. tokio-postgres' own binary writer
/// sends 4 KiB at a time, each chunk a hand-off to the connection's task (often on
/// the other thread); a batch of 5,000 users was some 400 of them.
const COPY_CHUNK: usize = 256 * 1024;

/// The binary COPY format's header: signature, flags, header extension length.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// One binary COPY; returns the number of rows written.
async fn copy_into(
    tx: &Tx<'_>,
    table: &str,
    columns: &[&str],
    rows: &[&Vec<Cell>],
) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let sink = tx
        .copy_in(&format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            quote_table(table),
            quoted.join(", ")
        ))
        .await?;
    pin_mut!(sink);
    // A table has at most 1,600 columns.
    let fields = i16::try_from(columns.len()).unwrap_or(i16::MAX);
    let mut data = BytesMut::with_capacity(COPY_CHUNK);
    data.put_slice(COPY_HEADER);
    for row in rows {
        data.put_i16(fields);
        for cell in row.iter() {
            cell.write_field(&mut data);
        }
        if data.len() >= COPY_CHUNK {
            sink.send(data.split().freeze()).await?;
        }
    }
    // The trailer.
    data.put_i16(-1);
    sink.send(data.freeze()).await?;
    sink.finish().await
}
