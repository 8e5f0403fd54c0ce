//! `mongo2pg cleanup`: removing what a finished run left on NATS.
//!
//! A run leaves, under its stream's names: its batch subjects in the stream (empty
//! once every batch is acknowledged, since the stream is a work queue), its durable
//! consumer, its dead-letter copies, its keys in the state bucket (manifest and
//! checkpoints, all under `<run>.`) and its large documents in the object store (all
//! named `<run>/<hash>`). Cleanup purges each of those by the run's subject or name,
//! so no marker is left behind, and touches no other run. When nothing else is left
//! on the stream and its buckets, no other run uses them: they are deleted too, and
//! NATS is as it was before the first run.
//!
//! The target database keeps its ledger: it is the record of what landed, and what
//! keeps a later run of the same name from landing a batch twice.
//!
//! Cleanup refuses while `status` does not say complete (batches would be deleted
//! before they land), while consumer processes still pull from the run, or while a
//! producer still follows its change stream, unless `--force`; a run of which nothing
//! is left is unknown, `--force` or not.

use async_nats::jetstream::{self, stream::Stream};
use base64::Engine;
use common::broker::Broker;
use common::naming::{blob_prefix, Names, RunName};
use common::run_state::RunState;
use futures::TryStreamExt;

use crate::config::CleanupConfig;
use crate::error::OperatorError;
use crate::status::{self, Verdict};

fn nats(doing: impl Into<String>) -> impl FnOnce(&dyn std::fmt::Display) -> OperatorError {
    let doing = doing.into();
    move |err| OperatorError::Nats {
        doing,
        detail: err.to_string(),
    }
}

/// What cleanup removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// The run cleaned up.
    pub run: String,
    /// Its stream.
    pub stream: String,
    /// Batches still in the stream (only with `--force`).
    pub batches: u64,
    /// Whether its durable consumer was deleted.
    pub durable_consumer: bool,
    /// Dead-letter copies purged from the `_DLQ` stream.
    pub dead_letter_copies: u64,
    /// Manifest, checkpoint, plan and lease keys purged from the state bucket.
    pub state_keys: u64,
    /// Large documents deleted from the object store.
    pub blobs: u64,
    /// Whether the stream, dead-letter stream and buckets were deleted, no other run
    /// having anything in them.
    pub removed_shared: bool,
}

impl std::fmt::Display for Cleaned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "cleaned up run {} on stream {}: {} batches, durable consumer {}, {} dead-letter copies, {} state entries, {} blobs",
            self.run,
            self.stream,
            self.batches,
            if self.durable_consumer { "deleted" } else { "absent" },
            self.dead_letter_copies,
            self.state_keys,
            self.blobs
        )?;
        if self.removed_shared {
            writeln!(
                f,
                "no other run uses stream {}: deleted it, its dead-letter stream and its buckets",
                self.stream
            )?;
        }
        writeln!(
            f,
            "the target database keeps its ledger of the run (what landed, and what keeps a rerun from landing twice)"
        )
    }
}

/// Removes the run's messages, consumer, state and blobs from NATS.
///
/// # Errors
/// [`OperatorError::NotComplete`] / [`OperatorError::ConsumersBound`] without `--force`;
/// [`OperatorError::UnknownRun`] when the stream holds no such run.
pub async fn cleanup(config: &CleanupConfig) -> Result<Cleaned, OperatorError> {
    let status_config = &config.status;
    let run = &status_config.run.run;
    // Only looks until it deletes: a mistyped stream is said, not created.
    let broker = Broker::open(&status_config.nats, status_config.nats.stream.clone()).await?;
    let names = &broker.names;
    let state = RunState::new(broker.state.clone(), names.clone(), run.clone());
    let mut stream = broker
        .jetstream
        .get_stream(names.stream())
        .await
        .map_err(|e| nats(format!("opening stream {}", names.stream()))(&e))?;
    let consumer = names.durable_consumer(run);
    let bound = stream.consumer_info(&consumer).await.ok();
    // Even with --force, a run of which nothing is there is a typo, not a cleanup.
    let bound_changes = stream
        .consumer_info(&names.change_consumer(run))
        .await
        .is_ok();
    if state.manifest().await?.is_none() && (!config.force || (bound.is_none() && !bound_changes)) {
        return Err(OperatorError::UnknownRun {
            run: run.to_string(),
            stream: names.stream().to_string(),
        });
    }
    if !config.force {
        // A producer still following would die, and its consumers wait forever.
        if let Some(lease) = state
            .range_lease(common::naming::FOLLOWER, 0)
            .await?
            .filter(|lease| lease.expires_ms > common::crash::now_ms())
        {
            return Err(OperatorError::Following {
                run: run.clone(),
                holder: lease.holder,
            });
        }
        // The change consumer of a followed run counts as much as the snapshot's.
        let changes = names.change_consumer(run);
        let change_info = stream.consumer_info(&changes).await.ok();
        let durables = [
            (&consumer, bound.as_ref()),
            (&changes, change_info.as_ref()),
        ];
        for (name, info) in durables {
            let Some(info) = info else { continue };
            if info.num_waiting > 0 || info.num_ack_pending > 0 {
                return Err(OperatorError::ConsumersBound {
                    run: run.clone(),
                    consumer: name.clone(),
                    waiting: info.num_waiting,
                    unacked: info.num_ack_pending,
                });
            }
        }
        let verdict = status::status(status_config).await?.verdict();
        let verdict = match verdict {
            // Rejects wait in PostgreSQL, raw BSON included, and finish works on
            // PostgreSQL and MongoDB alone: nothing on NATS is needed.
            Verdict::Complete | Verdict::Rejected | Verdict::Unfinished => None,
            Verdict::Incomplete => Some("incomplete"),
            Verdict::Inconsistent => Some("inconsistent"),
        };
        if let Some(verdict) = verdict {
            return Err(OperatorError::NotComplete {
                run: run.clone(),
                verdict,
            });
        }
    }

    let mut cleaned = Cleaned {
        run: run.to_string(),
        stream: names.stream().to_string(),
        ..Default::default()
    };
    if bound.is_some() {
        stream
            .delete_consumer(&consumer)
            .await
            .map_err(|e| nats(format!("deleting consumer {consumer}"))(&e))?;
        cleaned.durable_consumer = true;
    }
    // A followed run's change batches and their consumer go the same way.
    let changes = names.change_consumer(run);
    if stream.consumer_info(&changes).await.is_ok() {
        stream
            .delete_consumer(&changes)
            .await
            .map_err(|e| nats(format!("deleting consumer {changes}"))(&e))?;
    }
    cleaned.batches = purge(&stream, &names.run_subjects(run)).await?
        + purge(&stream, &names.run_change_subjects(run)).await?;
    let dlq = open_stream(&broker.jetstream, &names.dead_letter_stream()).await?;
    cleaned.dead_letter_copies = purge(&dlq, &names.dead_letter_subject(run)).await?;
    cleaned.blobs = delete_blobs(&broker, run).await?;
    let kv = open_stream(&broker.jetstream, &names.state_stream()).await?;
    cleaned.state_keys = purge(&kv, &names.state_subjects(run)).await?;

    if nothing_left(&mut stream, names, &broker.jetstream).await? {
        for name in [
            names.stream().to_string(),
            names.dead_letter_stream(),
            names.state_stream(),
            names.blob_stream(),
        ] {
            broker
                .jetstream
                .delete_stream(&name)
                .await
                .map_err(|e| nats(format!("deleting stream {name}"))(&e))?;
        }
        cleaned.removed_shared = true;
    }
    tracing::info!(run = %run, stream = names.stream(), ?cleaned, "run cleaned up");
    Ok(cleaned)
}

async fn open_stream(js: &jetstream::Context, name: &str) -> Result<Stream, OperatorError> {
    js.get_stream(name)
        .await
        .map_err(|e| nats(format!("opening stream {name}"))(&e))
}

/// Purges every message on `subject` (a filter), returning how many went.
async fn purge(stream: &Stream, subject: &str) -> Result<u64, OperatorError> {
    stream
        .purge()
        .filter(subject)
        .await
        .map(|response| response.purged)
        .map_err(|e| nats(format!("purging {subject}"))(&e))
}

/// Deletes the run's objects: their chunks, then their metadata subject, so not even
/// the tombstone a plain delete leaves names the run any more.
async fn delete_blobs(broker: &Broker, run: &RunName) -> Result<u64, OperatorError> {
    let prefix = blob_prefix(run.as_str());
    let bucket = broker.names.blob_bucket();
    let mut names = Vec::new();
    let mut list = broker
        .blobs
        .list()
        .await
        .map_err(|e| nats(format!("listing object store {bucket}"))(&e))?;
    while let Some(info) = list
        .try_next()
        .await
        .map_err(|e| nats(format!("listing object store {bucket}"))(&e))?
    {
        if info.name.starts_with(&prefix) {
            names.push(info.name);
        }
    }
    let meta = open_stream(&broker.jetstream, &broker.names.blob_stream()).await?;
    for name in &names {
        broker
            .blobs
            .delete(name)
            .await
            .map_err(|e| nats(format!("deleting blob {name}"))(&e))?;
        // The subject async-nats keeps an object's metadata under.
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(name);
        purge(&meta, &format!("$O.{bucket}.M.{encoded}")).await?;
    }
    Ok(names.len() as u64)
}

/// Whether the stream and its buckets hold nothing of any run, and no other run's
/// consumer is bound to the stream.
async fn nothing_left(
    stream: &mut Stream,
    names: &Names,
    js: &jetstream::Context,
) -> Result<bool, OperatorError> {
    let info = stream
        .info()
        .await
        .map_err(|e| nats(format!("reading stream {}", names.stream()))(&e))?;
    if info.state.messages > 0 || info.state.consumer_count > 0 {
        tracing::debug!(
            stream = names.stream(),
            messages = info.state.messages,
            consumers = info.state.consumer_count,
            "other runs use the stream: kept"
        );
        return Ok(false);
    }
    for name in [
        names.dead_letter_stream(),
        names.state_stream(),
        names.blob_stream(),
    ] {
        let mut other = open_stream(js, &name).await?;
        let info = other
            .info()
            .await
            .map_err(|e| nats(format!("reading stream {name}"))(&e))?;
        // Their consumers are the short-lived ones reads of a bucket make: only what
        // they hold counts.
        if info.state.messages > 0 {
            tracing::debug!(
                stream = name,
                messages = info.state.messages,
                "other runs use the stream: kept"
            );
            return Ok(false);
        }
    }
    Ok(true)
}
