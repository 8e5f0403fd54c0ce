//! `consumer replay`: landing a run's rejects again once the mapping is fixed.
//!
//! Rejects are read in chunks by id, up to the largest id present when the replay
//! starts (so rejects it writes back are not read again). Each chunk, per collection
//! and batch, is one transaction: delete the chunk's reject rows (their `RETURNING`
//! also tells which rows a concurrent replay has already taken), map and copy the
//! documents with refused rows isolated, write back what still cannot land with its
//! new reason, and move the landed count from rejected to written on the batch's
//! ledger row, so `producer status` still adds up. A crash at any point leaves each
//! reject either landed or still in the rejects table, never both, never neither.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use clap::Args;
use common::config::{redact_url, PostgresArgs, RunArgs};
use common::naming::{LEDGER_TABLE, REJECTS_TABLE};
use tokio_postgres::Client;

use crate::error::{pg_detail, ConsumerError};
use crate::ledger::copy_isolating;
use crate::mapping::MappingFile;
use crate::plans::Plans;
use crate::reject::{self, Origin, Reject};
use crate::schema::{self, quote};

#[derive(Debug, Clone, Args)]
pub struct ReplayConfig {
    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub postgres: PostgresArgs,

    /// The fixed mapping file.
    #[arg(long = "mapping", env = "MAPPING_FILE")]
    pub mapping: Option<PathBuf>,

    /// Replay only this collection's rejects.
    #[arg(long)]
    pub collection: Option<String>,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    pub landed: u64,
    pub still_rejected: u64,
}

impl std::fmt::Display for Replayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replay: {} rejects landed, {} still rejected (their reasons are updated in {REJECTS_TABLE})",
            self.landed, self.still_rejected
        )
    }
}

/// Rejects read per round trip.
const CHUNK: i64 = 1000;

/// One reject as read back.
struct Stored {
    id: i64,
    raw: Vec<u8>,
}

pub async fn replay(config: &ReplayConfig) -> Result<Replayed, ConsumerError> {
    let mapping = MappingFile::load_or_default(config.mapping.as_deref())?;
    let mut client = crate::writer::connect(&config.postgres.database_url)
        .await
        .map_err(|e| ConsumerError::PgConnect {
            url: redact_url(&config.postgres.database_url),
            detail: pg_detail(&e),
        })?;
    let failed = |doing: &str, e: tokio_postgres::Error| {
        ConsumerError::Schema(format!("{doing}: {}", pg_detail(&e)))
    };
    schema::ensure_bookkeeping(&mut client)
        .await
        .map_err(|e| failed("creating the bookkeeping tables", e))?;
    let run = config.run.run.as_str();
    let collection = config.collection.as_deref();
    let filter = "run = $1 AND ($2::text IS NULL OR collection = $2)";
    let last: i64 = client
        .query_one(
            &format!(
                "SELECT coalesce(max(id), 0) FROM {} WHERE {filter}",
                quote(REJECTS_TABLE)
            ),
            &[&run, &collection],
        )
        .await
        .map_err(|e| failed("reading the rejects", e))?
        .get(0);
    let mut after = 0_i64;
    let mut total = Replayed::default();
    let mut plans = Plans::default();
    loop {
        let rows = client
            .query(
                &format!(
                    "SELECT id, collection, batch_id, raw_bson FROM {} WHERE {filter} AND id > $3 AND id <= $4 ORDER BY id LIMIT {CHUNK}",
                    quote(REJECTS_TABLE)
                ),
                &[&run, &collection, &after, &last],
            )
            .await
            .map_err(|e| failed("reading the rejects", e))?;
        let Some(tail) = rows.last() else { break };
        after = tail.get(0);
        let mut groups: BTreeMap<(String, String), Vec<Stored>> = BTreeMap::new();
        for row in rows {
            groups
                .entry((row.get(1), row.get(2)))
                .or_default()
                .push(Stored {
                    id: row.get(0),
                    raw: row.get(3),
                });
        }
        for ((collection, batch_id), stored) in groups {
            let plan = plans
                .for_documents(
                    &mut client,
                    &mapping,
                    &collection,
                    stored.iter().map(|s| s.raw.as_slice()),
                )
                .await
                .map_err(|e| {
                    ConsumerError::Schema(format!("preparing the target table: {}", e.detail()))
                })?;
            let origin = Origin {
                run,
                collection: &collection,
                batch_id: &batch_id,
            };
            let done = replay_group(&mut client, plan, &origin, stored)
                .await
                .map_err(|e| failed(&format!("replaying rejects of batch {batch_id}"), e))?;
            total.landed += done.landed;
            total.still_rejected += done.still_rejected;
        }
    }
    Ok(total)
}

async fn replay_group(
    client: &mut Client,
    plan: &crate::mapping::TablePlan,
    origin: &Origin<'_>,
    stored: Vec<Stored>,
) -> Result<Replayed, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let ids: Vec<i64> = stored.iter().map(|s| s.id).collect();
    let taken: HashSet<i64> = tx
        .query(
            &format!(
                "DELETE FROM {} WHERE id = ANY($1) RETURNING id",
                quote(REJECTS_TABLE)
            ),
            &[&ids],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut rows = Vec::new();
    let mut sources = Vec::new();
    let mut rejects = Vec::new();
    for s in stored.into_iter().filter(|s| taken.contains(&s.id)) {
        match plan.row_from_bytes(&s.raw) {
            Ok(row) => {
                rows.push(row);
                sources.push(s.raw);
            }
            Err(error) => rejects.push(Reject::new(&s.raw, error)),
        }
    }
    let (landed, refused) = copy_isolating(&tx, plan, &rows, &sources).await?;
    let still: Vec<&Reject> = rejects.iter().chain(refused.iter()).collect();
    reject::insert(&tx, origin, &still).await?;
    let landed_i32 = i32::try_from(landed).unwrap_or(i32::MAX);
    tx.execute(
        &format!(
            "UPDATE {} SET rows_written = rows_written + $2, rows_rejected = rows_rejected - $2 WHERE batch_id = $1",
            quote(LEDGER_TABLE)
        ),
        &[&origin.batch_id, &landed_i32],
    )
    .await?;
    tx.commit().await?;
    Ok(Replayed {
        landed,
        still_rejected: still.len() as u64,
    })
}
