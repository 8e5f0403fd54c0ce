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
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use common::naming::RunName;
use common::run_state::{RunManifest, RunState, StateError};
use landing::ledger::accounted_batches;
use landing::pg::{self, PgError};
use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::keys::build_keys;

/// How often `--exit-when-done` checks whether the run is complete.
const DONE_CHECK_EVERY: Duration = Duration::from_millis(500);
/// After a writer settles a batch, how long to wait for others before looking: a burst
/// of batches settling makes one look, and a loading process looks at most this often.
const SETTLE_PAUSE: Duration = Duration::from_millis(50);

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
    let accounted = accounted_batches(client, run).await?;
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

/// Waits until the next look at the run: `every` at the latest, sooner once a writer of
/// this process has settled a batch (`settled` moved) and the run's durable consumer then
/// holds nothing undelivered or unacknowledged, which is how the run's last batch shows.
/// Returns at once when `stop` is cancelled.
pub(crate) async fn until_next_look(
    every: Duration,
    mut settled: Option<&mut watch::Receiver<u64>>,
    stream: &PullConsumer,
    stop: &CancellationToken,
) {
    let tick = tokio::time::sleep(every);
    tokio::pin!(tick);
    loop {
        let moved = async {
            match settled.as_deref_mut() {
                Some(settled) => settled.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            () = &mut tick => return,
            moved = moved => {
                if !moved {
                    // No writer will say so any more: the tick alone.
                    settled = None;
                    continue;
                }
            }
        }
        let drained = async {
            tokio::time::sleep(SETTLE_PAUSE).await;
            stream
                .get_info()
                .await
                .is_ok_and(|info| info.num_pending == 0 && info.num_ack_pending == 0)
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            () = &mut tick => return,
            drained = drained => if drained {
                return;
            },
        }
    }
}

/// With `--exit-when-done`: checks where the run stands every [`DONE_CHECK_EVERY`], and
/// as soon as the run's durable consumer is drained after one of this process's writers
/// settled a batch ([`until_next_look`]); says when that changes, and once the run is
/// done and its keys waiting for the load are built, cancels `stop`.
pub(crate) async fn watch_done(
    state: RunState,
    stream: PullConsumer,
    mut settled: watch::Receiver<u64>,
    client: tokio_postgres::Client,
    database_url: String,
    run: RunName,
    stop: CancellationToken,
) {
    let mut client = Some(client);
    let mut last = None;
    loop {
        if client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            // PostgreSQL restarted: the old connection is gone for good.
            client = pg::connect(&database_url).await.ok();
        }
        let check = async {
            match &client {
                Some(client) => check(&state, &stream, client, run.as_str()).await,
                None => Err(DoneError::NoConnection),
            }
        };
        // A check waiting on a server that stopped answering must not hold up a stop.
        let checked = tokio::select! {
            _ = stop.cancelled() => return,
            checked = check => checked,
        };
        match checked {
            Ok(Progress::Done) => {
                // Done means the keys waiting for the snapshot are built too.
                let build = async {
                    match client.as_mut() {
                        Some(pg) => build_keys(pg, run.as_str()).await,
                        None => false,
                    }
                };
                let built = tokio::select! {
                    _ = stop.cancelled() => return,
                    built = build => built,
                };
                if !built {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(DONE_CHECK_EVERY) => continue,
                    }
                }
                tracing::info!(run = %run,
                    "every batch of the run is accounted for; stopping (once `mongo2pg status --run {run}` says complete, `mongo2pg cleanup --run {run}` removes the run from NATS)");
                stop.cancel();
                return;
            }
            Ok(progress) if last != Some(progress) => {
                last = Some(progress);
                match progress {
                    Progress::NoProducer => tracing::warn!(run = %run,
                        "no producer has announced this run yet; waiting for one (start `producer run --run {run}` with the same NATS stream)"),
                    Progress::Publishing => tracing::info!(run = %run,
                        "the producer is publishing the run; waiting for it to finish"),
                    Progress::Following => tracing::info!(run = %run,
                        "the run follows the change stream: its snapshot has landed, and this consumer applies changes until stopped"),
                    Progress::Landing | Progress::Done => {}
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(error = %err, "cannot check whether the run is done yet; will retry")
            }
        }
        // Settled batches tell of the run's end only once everything is published and
        // the rest is landing: not while the producer publishes (each would cost NATS a
        // request for the consumer's info, from every consumer), and not once a
        // followed run's snapshot has landed for good (its change batches would make a
        // look at the ledger out of each).
        let nudged = (last == Some(Progress::Landing)).then_some(&mut settled);
        until_next_look(DONE_CHECK_EVERY, nudged, &stream, &stop).await;
        if stop.is_cancelled() {
            return;
        }
    }
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
