//! Questions about the ledger, the table with one row per landed batch (made in
//! [`crate::schema`], written by [`crate::landing`]).

use std::collections::HashMap;

use common::naming::{
    bookkeeping_table, DEAD_LETTERS_TABLE, LEDGER_TABLE, REJECTS_TABLE, VERSIONS_TABLE,
};
use tokio_postgres::Client;

use crate::identifier::quote_table;
use crate::pg::{Doing, PgError};

/// Batches of `run` landed or dead-lettered, per collection: what a consumer compares
/// with what the producer published to know a collection, or the run, has landed.
///
/// # Errors
/// [`PgError`] when PostgreSQL cannot be read.
pub async fn accounted_batches(
    client: &Client,
    run: &str,
) -> Result<HashMap<String, u64>, PgError> {
    let rows = client
        .query(
            &format!(
                "SELECT collection, count(*) FROM {ledger} WHERE run = $1 GROUP BY collection
                 UNION ALL
                 SELECT collection, count(DISTINCT batch_id) FROM {dead} WHERE run = $1 AND batch_id IS NOT NULL
                   AND batch_id NOT IN (SELECT batch_id FROM {ledger} WHERE run = $1) GROUP BY collection",
                ledger = bookkeeping_table(LEDGER_TABLE),
                dead = bookkeeping_table(DEAD_LETTERS_TABLE),
            ),
            &[&run],
        )
        .await
        .doing("counting the run's landed batches")?;
    let mut counts = HashMap::new();
    for row in rows {
        let collection: String = row.try_get(0).doing("reading the landed batches")?;
        let count: i64 = row.try_get(1).doing("reading the landed batches")?;
        *counts.entry(collection).or_insert(0) += u64::try_from(count).unwrap_or(0);
    }
    Ok(counts)
}

/// Whether anything of `run` (of `collection`, when given) reached this database: a
/// landed batch, a reject or a dead letter. No means a mistyped run or collection
/// name, or another database.
pub async fn has_run(
    client: &Client,
    run: &str,
    collection: Option<&str>,
) -> Result<bool, PgError> {
    let filter = "run = $1 AND ($2::text IS NULL OR collection = $2)";
    client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE {filter})
                     OR EXISTS (SELECT 1 FROM {} WHERE {filter})
                     OR EXISTS (SELECT 1 FROM {} WHERE {filter})",
                bookkeeping_table(LEDGER_TABLE),
                bookkeeping_table(REJECTS_TABLE),
                bookkeeping_table(DEAD_LETTERS_TABLE),
            ),
            &[&run, &collection],
        )
        .await
        .doing("looking for the run in the ledger")?
        .try_get(0)
        .doing("looking for the run in the ledger")
}

/// Whether `table` is gone although `run` committed rows into it, or changes landed in
/// it: dropped after rows landed. Recreating it would pass the later batches off as
/// the whole run (the earlier ones are claimed in the ledger and never land again).
///
/// One statement, so one snapshot: asked in two, a table created and filled by
/// another writer between the two looked dropped.
pub async fn dropped_under_run(client: &Client, run: &str, table: &str) -> Result<bool, PgError> {
    let found = client
        .query_one(
            &format!(
                "SELECT to_regclass($3) IS NULL
                    AND (EXISTS (SELECT 1 FROM {} WHERE run = $1 AND target_table = $2 AND rows_written > 0)
                         OR EXISTS (SELECT 1 FROM {} WHERE target_table = $2))",
                bookkeeping_table(LEDGER_TABLE),
                bookkeeping_table(VERSIONS_TABLE),
            ),
            &[&run, &table, &quote_table(table)],
        )
        .await;
    match found {
        Ok(row) => row.try_get(0).doing("looking for the table in the ledger"),
        // No bookkeeping tables yet: nothing landed anywhere.
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            Ok(false)
        }
        Err(err) => Err(PgError::new("looking for the table in the ledger", err)),
    }
}

/// Whether the batch is in the ledger: landed (or its rejects kept) once already.
pub async fn has_batch(client: &Client, batch_id: &str) -> Result<bool, PgError> {
    client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE batch_id = $1)",
                bookkeeping_table(LEDGER_TABLE)
            ),
            &[&batch_id],
        )
        .await
        .and_then(|row| row.try_get(0))
        .doing("looking for the batch in the ledger")
}
