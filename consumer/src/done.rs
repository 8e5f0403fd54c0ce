//! Knowing when a run is finished (`--exit-when-done`).
//!
//! A run is done when its producer has marked the manifest complete, the run's durable
//! consumer has nothing left in the stream (nothing undelivered, nothing delivered and
//! not yet acknowledged: an ack comes only after a commit or a dead letter), and, for
//! every collection, the ledger holds (or the dead-letter table accounts for) as many
//! batches as the producer published. Until the manifest is complete the totals are
//! only a floor, so a consumer keeps waiting across a producer crash and its rerun.
//!
//! The ledger alone is not enough: batches of an earlier publication of the run (a
//! `--restart` with another batch size) count there too, and made a consumer stop
//! while this publication's batches were still in the stream.

use std::collections::HashMap;

use async_nats::jetstream::consumer::PullConsumer;
use common::naming::{bookkeeping_table, DEAD_LETTERS_TABLE, LEDGER_TABLE};
use common::run_state::{RunManifest, RunState, StateError};
use landing::pg::{Doing, PgError};
use tokio_postgres::Client;

/// Why the done check could not tell this time; the watcher tries again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DoneError {
    #[error("reading the durable consumer: {0}")]
    Stream(#[from] async_nats::jetstream::context::ConsumerInfoError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error("no PostgreSQL connection")]
    NoConnection,
}

/// Batches landed or dead-lettered per collection of a run.
pub(crate) async fn accounted_batches(
    client: &Client,
    run: &str,
) -> Result<HashMap<String, u64>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT collection, count(*) FROM {} WHERE run = $1 GROUP BY collection
                 UNION ALL
                 SELECT collection, count(DISTINCT batch_id) FROM {} WHERE run = $1 AND batch_id IS NOT NULL
                   AND batch_id NOT IN (SELECT batch_id FROM {} WHERE run = $1) GROUP BY collection",
                bookkeeping_table(LEDGER_TABLE),
                bookkeeping_table(DEAD_LETTERS_TABLE),
                bookkeeping_table(LEDGER_TABLE)
            ),
            &[&run],
        )
        .await?;
    let mut counts = HashMap::new();
    for row in rows {
        let collection: String = row.try_get(0)?;
        let count: i64 = row.try_get(1)?;
        *counts.entry(collection).or_insert(0) += count as u64;
    }
    Ok(counts)
}

/// Whether every batch of a complete manifest is accounted for.
pub(crate) fn is_done(manifest: &RunManifest, accounted: &HashMap<String, u64>) -> bool {
    manifest.complete
        && manifest
            .collections
            .iter()
            .all(|(name, totals)| accounted.get(name).copied().unwrap_or(0) >= totals.batches)
}

/// Where a run stands, as far as a consumer waiting for its end can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// No producer has announced the run: no manifest in the state bucket.
    NoProducer,
    /// The producer is still publishing (or stopped before it finished).
    Publishing,
    /// Everything is published; batches are still in the stream or in flight.
    Landing,
    /// Every batch of the run is committed or dead-lettered.
    Done,
    /// Every snapshot batch of a followed run (`producer run --follow`) is committed
    /// or dead-lettered: its changes are applied from now on, until it is stopped.
    Following,
}

/// One check: reads the manifest, the stream's view of the run, and the ledger.
pub(crate) async fn check(
    state: &RunState,
    stream: &PullConsumer,
    client: &Client,
    run: &str,
) -> Result<Progress, DoneError> {
    let Some(manifest) = state.manifest().await? else {
        return Ok(Progress::NoProducer);
    };
    if !manifest.complete {
        return Ok(Progress::Publishing);
    }
    let info = stream.get_info().await?;
    if info.num_pending > 0 || info.num_ack_pending > 0 {
        return Ok(Progress::Landing);
    }
    let accounted = accounted_batches(client, run)
        .await
        .doing("counting the run's landed batches")?;
    Ok(if is_done(&manifest, &accounted) {
        if manifest.follow {
            Progress::Following
        } else {
            Progress::Done
        }
    } else {
        Progress::Landing
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::run_state::CollectionTotals;

    #[test]
    fn done_needs_a_complete_manifest_and_every_batch() {
        let mut manifest = RunManifest::default();
        manifest.collections.insert(
            "users".into(),
            CollectionTotals {
                batches: 3,
                ..Default::default()
            },
        );
        let mut accounted = HashMap::from([("users".to_string(), 3)]);
        assert!(!is_done(&manifest, &accounted), "producer not finished");
        manifest.complete = true;
        assert!(is_done(&manifest, &accounted));
        accounted.insert("users".into(), 2);
        assert!(!is_done(&manifest, &accounted));
    }
}
