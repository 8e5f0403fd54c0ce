//! Primary keys built after the load (`consumer run --key-after-load`).
//!
//! Why: eight sessions copying neighbouring batches at once insert nearly every key
//! into the middle of the primary key, where a sorted build after the load writes it
//! once, tight (on PostgreSQL alone, 1,000,000 flat rows: 19-34% less time, a key 40%
//! smaller; docs/performance.md).
//!
//! What it changes: during the load the table does not catch a document published
//! twice (a `--restart` with another `--batch-size`, a document inserted before the
//! others between two publications: the batches are cut otherwise, so their ids
//! differ and the ledger lets both land). So:
//! 1. a table the consumers create for a plan without child tables is created without
//!    its primary key and registered here as pending ([`register`], in the same
//!    transaction); a table that exists keeps its key, and one with child tables, or
//!    one a change batch creates (nothing would build its key later), gets it at once;
//! 2. once its collection's snapshot has landed (published, and every batch committed
//!    or dead-lettered), a consumer builds it ([`build_landed`]; [`build_pending`]
//!    builds any left once the run's whole snapshot has): under the registry row's
//!    lock and one of [`BUILDS_AT_ONCE`] advisory-lock slots (the consumers build
//!    different tables' keys at once, a bounded number), `ALTER TABLE … ADD PRIMARY
//!    KEY`; if PostgreSQL finds a key twice, the copies but the one landed last are
//!    deleted first and counted, so `status` counts each such document once, as
//!    already landed. Changes land only after that: the
//!    arbitration and the upsert need the key;
//! 3. `status` calls the run incomplete while a key is pending.

use std::time::Instant;

use common::naming::{bookkeeping_table, KEYS_TABLE};
use tokio_postgres::{Client, Transaction};

use crate::identifier::{quote, quote_table};
use crate::mapping::TablePlan;
use crate::pg::{Doing, PgError};

/// Who asks for a table's primary key after the load: the run and the collection it
/// is registered under.
#[derive(Debug, Clone, Copy)]
pub struct KeyAfterLoad<'a> {
    /// The run.
    pub run: &'a str,
    /// The collection the table lands.
    pub collection: &'a str,
}

/// Whether a plan's table may wait for its key: it has one (from `_id`), and no child
/// tables, whose rows could not be told apart between two copies of a document.
pub fn can_wait(plan: &TablePlan) -> bool {
    plan.primary_key.is_some() && plan.children.is_empty()
}

/// Registers `table`'s key as pending, unless the table has a primary key already (a
/// consumer without `--key-after-load` created it a moment before). A row left by a
/// table of that name dropped since is taken over: the table was just created.
pub(crate) async fn register(
    tx: &Transaction<'_>,
    table: &str,
    column: &str,
    load: &KeyAfterLoad<'_>,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        &format!(
            "INSERT INTO {} (target_table, key_column, run, collection)
             SELECT $1, $2, $3, $4
             WHERE NOT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($5) AND indisprimary)
             ON CONFLICT (target_table) DO UPDATE SET key_column = excluded.key_column,
                run = excluded.run, collection = excluded.collection, state = 'pending',
                duplicates = 0, seconds = NULL, built_at = NULL",
            bookkeeping_table(KEYS_TABLE)
        ),
        &[&table, &column, &load.run, &load.collection, &quote_table(table)],
    )
    .await
    .map(|_| ())
}

/// The run whose snapshot `table`'s key waits for, if it is registered as pending: the
/// table may lack its unique key until that run's snapshot has landed.
pub async fn pending_for(client: &Client, table: &str) -> Result<Option<String>, PgError> {
    let found = client
        .query_opt(
            &format!(
                "SELECT run FROM {} WHERE target_table = $1 AND state = 'pending'",
                bookkeeping_table(KEYS_TABLE)
            ),
            &[&table],
        )
        .await;
    let found = found.and_then(|row| row.map(|row| row.try_get(0)).transpose());
    missing_table_is(found, None).doing("reading the keys built after the load")
}

/// A key waiting for its run's snapshot, or built.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The table.
    pub table: String,
    /// The collection it lands.
    pub collection: String,
    /// Whether it is built.
    pub built: bool,
    /// Documents found landed twice when it was built, kept once.
    pub duplicates: u64,
    /// How long the build took.
    pub seconds: Option<f64>,
}

/// The keys of `run`'s tables built after the load, pending or built; none when the
/// keys table does not exist (a database of an older version).
///
/// # Errors
/// [`PgError`] when PostgreSQL cannot be read.
pub async fn of_run(client: &Client, run: &str) -> Result<Vec<Key>, PgError> {
    let rows = client
        .query(
            &format!(
                "SELECT target_table, collection, state = 'built', duplicates, seconds
                 FROM {} WHERE run = $1 ORDER BY target_table",
                bookkeeping_table(KEYS_TABLE)
            ),
            &[&run],
        )
        .await;
    let rows = missing_table_is(rows, Vec::new()).doing("reading the keys built after the load")?;
    rows.iter()
        .map(|row| {
            Ok(Key {
                table: row.try_get(0)?,
                collection: row.try_get(1)?,
                built: row.try_get(2)?,
                duplicates: u64::try_from(row.try_get::<_, i64>(3)?).unwrap_or(0),
                seconds: row.try_get(4)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .doing("reading the keys built after the load")
}

/// Builds every pending key of `run`'s tables; returns those this call built. Safe to
/// call from every consumer at once: each key is built under its registry row's lock.
/// A first pass skips the keys another consumer is building, so the consumers of a run
/// of several tables build different keys at once rather than queueing for the same
/// one; a second waits for those, so that on return none is left pending (a consumer
/// that waited finds the key built, or builds it if its builder failed).
///
/// # Errors
/// [`PgError`] when a build fails; nothing of that build is kept, and the next call
/// tries again.
pub async fn build_pending(client: &mut Client, run: &str) -> Result<Vec<Key>, PgError> {
    build_where(client, run, |_| true, &[Lock::SkipTaken, Lock::Wait]).await
}

/// Builds the pending keys of `run`'s tables that land one of `collections`, whose
/// snapshot has landed while the run's other collections still load; returns those
/// this call built. A key another consumer is building is left to it, and one that
/// fails is left for [`build_pending`] at the run's end.
///
/// # Errors
/// [`PgError`] when a build fails; nothing of that build is kept.
pub async fn build_landed(
    client: &mut Client,
    run: &str,
    collections: &[&str],
) -> Result<Vec<Key>, PgError> {
    let landed = |key: &Key| collections.contains(&key.collection.as_str());
    build_where(client, run, landed, &[Lock::SkipTaken]).await
}

/// Builds the pending keys of `run` that `wanted` selects, in one pass per lock mode.
async fn build_where(
    client: &mut Client,
    run: &str,
    wanted: impl Fn(&Key) -> bool,
    passes: &[Lock],
) -> Result<Vec<Key>, PgError> {
    let mut built = Vec::new();
    for &lock in passes {
        for key in of_run(client, run).await? {
            if key.built || !wanted(&key) {
                continue;
            }
            if let Some(key) = build(client, &key.table, lock).await? {
                built.push(key);
            }
        }
    }
    Ok(built)
}

/// Keys built at once on one database, whatever the number of consumers: each build
/// sorts its table in `maintenance_work_mem` (with its parallel workers), and the
/// consumers of a run of many tables would otherwise each build one.
const BUILDS_AT_ONCE: i32 = 4;
/// The first key of the advisory locks that count the builds under way ("m2pk").
const BUILD_SLOTS: i32 = 0x6d32_706b;

/// How [`build`] takes a key's registry row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Leave a key another consumer is building to it.
    SkipTaken,
    /// Wait for the row.
    Wait,
}

/// Takes one of the [`BUILDS_AT_ONCE`] slots for the transaction: any free one, or
/// false, with [`Lock::SkipTaken`]; the table's own, waiting for it, with [`Lock::Wait`].
async fn build_slot(
    tx: &Transaction<'_>,
    table: &str,
    lock: Lock,
) -> Result<bool, tokio_postgres::Error> {
    match lock {
        // Rows are filtered one at a time and LIMIT stops at the first: one lock taken.
        Lock::SkipTaken => Ok(tx
            .query_opt(
                "SELECT s FROM generate_series(0, $2 - 1) AS s
                 WHERE pg_try_advisory_xact_lock($1, s) LIMIT 1",
                &[&BUILD_SLOTS, &BUILDS_AT_ONCE],
            )
            .await?
            .is_some()),
        Lock::Wait => {
            let slot = table
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
                % BUILDS_AT_ONCE.unsigned_abs();
            let slot = i32::try_from(slot).unwrap_or(0);
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&BUILD_SLOTS, &slot],
            )
            .await?;
            Ok(true)
        }
    }
}

/// Builds one table's key in one transaction; `None` when another consumer built it
/// (or, with [`Lock::SkipTaken`], is building it).
async fn build(client: &mut Client, table: &str, lock: Lock) -> Result<Option<Key>, PgError> {
    let doing = format!("building the primary key of {table}");
    let keys = bookkeeping_table(KEYS_TABLE);
    let tx = client.transaction().await.doing(&doing)?;
    let Some(row) = tx
        .query_opt(
            &format!(
                "SELECT key_column, collection FROM {keys}
                 WHERE target_table = $1 AND state = 'pending' FOR UPDATE{skip}",
                skip = if lock == Lock::SkipTaken {
                    " SKIP LOCKED"
                } else {
                    ""
                }
            ),
            &[&table],
        )
        .await
        .doing(&doing)?
    else {
        return Ok(None);
    };
    if !build_slot(&tx, table, lock).await.doing(&doing)? {
        return Ok(None);
    }
    let started = Instant::now();
    let column: String = row.try_get(0).doing(&doing)?;
    let collection: String = row.try_get(1).doing(&doing)?;
    let (table_sql, column_sql) = (quote_table(table), quote(&column));
    let has_primary_key: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)",
            &[&table_sql],
        )
        .await
        .and_then(|row| row.try_get(0))
        .doing(&doing)?;
    let mut duplicates = 0;
    if !has_primary_key {
        let add = format!("ALTER TABLE {table_sql} ADD PRIMARY KEY ({column_sql})");
        tx.batch_execute("SAVEPOINT m2p_key").await.doing(&doing)?;
        match tx.batch_execute(&add).await {
            Ok(()) => {}
            Err(err) if crate::copy::is_unique_violation(&err) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT m2p_key")
                    .await
                    .doing(&doing)?;
                // The table was only ever appended to during the load: the copy with
                // the highest ctid landed last, from the latest publication.
                duplicates = tx
                    .execute(
                        &format!(
                            "DELETE FROM {table_sql} USING (
                                SELECT ctid AS older FROM (
                                    SELECT ctid, row_number() OVER (PARTITION BY {column_sql} ORDER BY ctid DESC) AS copy
                                    FROM {table_sql}) copies
                                WHERE copy > 1) duplicates
                             WHERE {table_sql}.ctid = duplicates.older"
                        ),
                        &[],
                    )
                    .await
                    .doing(&format!("deleting the second copies of documents in {table}"))?;
                tx.batch_execute(&add).await.doing(&doing)?;
            }
            Err(err) => return Err(PgError::new(doing, err)),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // `clock_timestamp()`, not `now()`: `now()` is when the transaction began, before
    // the build, and would date a key built over minutes by its start.
    tx.execute(
        &format!(
            "UPDATE {keys} SET state = 'built', duplicates = $2, seconds = $3, built_at = clock_timestamp()
             WHERE target_table = $1"
        ),
        &[
            &table,
            &i64::try_from(duplicates).unwrap_or(i64::MAX),
            &seconds,
        ],
    )
    .await
    .doing(&doing)?;
    tx.commit().await.doing(&doing)?;
    Ok(Some(Key {
        table: table.to_string(),
        collection,
        built: true,
        duplicates,
        seconds: Some(seconds),
    }))
}

/// A read of the keys table, with "the table does not exist" read as `absent`.
fn missing_table_is<T>(
    read: Result<T, tokio_postgres::Error>,
    absent: T,
) -> Result<T, tokio_postgres::Error> {
    match read {
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            Ok(absent)
        }
        read => read,
    }
}
