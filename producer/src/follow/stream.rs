//! Reading the change stream from the checkpoint and publishing change batches until
//! stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{Bson, Document, RawDocumentBuf};
use common::run_state::{ClusterTime, RunState, StartPosition, StreamCheckpoint};
use mongodb::change_stream::event::ResumeToken;
use mongodb::change_stream::ChangeStream;
use mongodb::options::FullDocumentType;
use source::Source;
use tokio_util::sync::CancellationToken;

use source::change::{self as event, Event};
use source::{mongo_detail, ReadFailure, SourceError};

use super::batches::{now_ms, ChangeBatches};
use super::known::{adopt, Known};
use super::start::Scope;
use crate::context::RunContext;
use crate::error::ProducerError;
use crate::metrics::Metrics;
use crate::retry;

/// Longest a change waits in the producer before it is published.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often the checkpoint moves while the source is idle, so that `cutover` and
/// `status` see the stream read up to now.
const IDLE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How long one read of the stream waits for new events on the server.
const MAX_AWAIT: Duration = Duration::from_millis(250);

/// How often following logs its rate, lag and oplog headroom (also span events of the
/// `follow` span in traces).
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// How often the lag and headroom `/metrics` shows are measured (the log says them
/// every [`REPORT_EVERY`]).
const MEASURE_EVERY: Duration = Duration::from_secs(2);

/// Logs the events published per second since the last report, how far behind MongoDB
/// the stream is, and the oplog headroom before the checkpoint; warns when it is short.
async fn report(
    mongo: &Source,
    metrics: &Metrics,
    checkpoint: &StreamCheckpoint,
    reported_events: u64,
    elapsed: Duration,
    log: bool,
) {
    let rate = (checkpoint.events - reported_events) as f64 / elapsed.as_secs_f64().max(1e-9);
    let Ok(now) = source::clock::cluster_time(mongo.home()).await else {
        return;
    };
    let lag = now.time.saturating_sub(checkpoint.read_until.time);
    let window = source::clock::oplog_window(mongo.home(), now, checkpoint.read_until).await;
    metrics.position(u64::from(lag), window.map(|(_, headroom)| headroom));
    if !log {
        return;
    }
    match window {
        Some((window, headroom)) if headroom < source::clock::SHORT_HEADROOM.as_secs() as i64 => {
            tracing::warn!(
                events_per_sec = rate as u64,
                lag_seconds = lag,
                oplog_headroom_seconds = headroom,
                oplog_window_seconds = window,
                "following: the checkpoint is close to falling out of the oplog; grow the oplog (replSetResizeOplog)"
            )
        }
        headroom => tracing::info!(
            events_per_sec = rate as u64,
            lag_seconds = lag,
            events = checkpoint.events,
            oplog_headroom_seconds = headroom.map(|(_, h)| h),
            "following"
        ),
    }
}

/// Measures the lag and the oplog headroom from the run's start position while the
/// snapshot is read, for `/metrics`, every [`MEASURE_EVERY`] until `stop`: a snapshot
/// slower than the oplog turns over loses the start position before following begins,
/// and the alert on headroom against the snapshot's remaining time needs to see it.
/// Once this process follows, the follower measures from its checkpoint instead.
pub(crate) async fn measure_from_start(
    mongo: Source,
    metrics: Arc<Metrics>,
    start: ClusterTime,
    stop: CancellationToken,
) {
    loop {
        if !metrics.is_following() {
            if let Ok(now) = source::clock::cluster_time(mongo.home()).await {
                let window = source::clock::oplog_window(mongo.home(), now, start).await;
                if !metrics.is_following() {
                    metrics.position(
                        u64::from(now.time.saturating_sub(start.time)),
                        window.map(|(_, headroom)| headroom),
                    );
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(MEASURE_EVERY) => {}
        }
    }
}

/// What following published, until it was stopped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Followed {
    /// Change events published.
    pub events: u64,
    /// Change batches published.
    pub batches: u64,
    /// Events whose document MongoDB found gone when it looked it up: a later event
    /// says what became of it.
    pub skipped: u64,
}

/// Follows the change stream from the checkpoint (or the start position) and publishes
/// change batches until `shutdown`.
///
/// # Errors
/// When the stream cannot be opened or resumed (its history may be gone from the
/// oplog), a collection is dropped or renamed, or publishing keeps failing. What was
/// acknowledged is checkpointed: running again resumes.
pub(crate) async fn follow(
    ctx: &RunContext,
    collections: &[String],
    scope: &Scope,
    start: &StartPosition,
    shutdown: &CancellationToken,
) -> Result<Followed, ProducerError> {
    let RunContext {
        source: mongo,
        state,
        config,
        metrics,
        ..
    } = ctx;
    let checkpoint = retry::with_retries("reading the stream checkpoint", shutdown, || {
        state.stream_checkpoint()
    })
    .await?;
    let (token, mut checkpoint) = match checkpoint {
        Some(checkpoint) => (checkpoint.resume_token.clone(), checkpoint),
        None => (
            start.resume_token.clone(),
            StreamCheckpoint {
                resume_token: start.resume_token.clone(),
                read_until: start.cluster_time,
                last: None,
                events: 0,
                batches: 0,
                saved_at_ms: now_ms(),
            },
        ),
    };
    let resume = resume_token(&token)?;
    common::crash::point("snapshot-done");
    // MongoDB resumes silently from its oldest entry when a position without an event
    // (an idle stream's token) has fallen out of the oplog: look first.
    // A MongoDB that does not answer now (a primary being elected, the network
    // silent): following is tried again, not given up.
    let now = source::clock::cluster_time(mongo.home())
        .await
        .map_err(|err| match err {
            SourceError::Read { .. } => ProducerError::FollowInterrupted {
                detail: err.to_string(),
            },
            other => ProducerError::Source(other),
        })?;
    if let Some((window, headroom)) =
        source::clock::oplog_window(mongo.home(), now, checkpoint.read_until).await
    {
        if headroom < 0 {
            return Err(ProducerError::HistoryLost {
                behind: headroom.unsigned_abs(),
                window,
                collections: collections.join(", "),
            });
        }
    }
    let opened = mongo
        .watch()
        .pipeline(event::pipeline(
            mongo.databases(),
            match scope {
                Scope::Named(names) => Some(names),
                Scope::Database => None,
            },
        ))
        .full_document(FullDocumentType::UpdateLookup)
        .max_await_time(MAX_AWAIT)
        .batch_size(u32::try_from(config.batch_size.get()).unwrap_or(u32::MAX))
        .resume_after(resume)
        .await
        .map_err(|e| stream_error(&e))?;
    let mut stream: ChangeStream<RawDocumentBuf> = opened.with_type();
    tracing::info!(
        run = %config.run.run,
        from = checkpoint.read_until.time,
        events = checkpoint.events,
        "following the change stream"
    );
    let mut batches = ChangeBatches::new(ctx, shutdown, checkpoint.last);
    let mut followed = Known::new(ctx, collections, scope)?;
    let started_events = checkpoint.events;
    let started_batches = checkpoint.batches;
    let mut last_flush = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut last_report = Instant::now();
    let mut last_measure = Instant::now()
        .checked_sub(MEASURE_EVERY)
        .unwrap_or_else(Instant::now);
    let mut reported_events = checkpoint.events;
    loop {
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            next = stream.next_if_any() => next,
        };
        let raw = next.map_err(|e| stream_error(&e))?;
        if let Some(raw) = raw {
            let read = event::read(&raw, mongo.several()).map_err(|e| ProducerError::Follow {
                detail: e.to_string(),
            })?;
            match read {
                Event::Change { ref collection, .. } => {
                    if followed.takes(collection, state).await? {
                        batches.add(read).await?;
                    } else {
                        batches.skipped_other += 1;
                    }
                }
                Event::End {
                    collection,
                    renamed_to,
                    operation,
                    cluster_time,
                } => {
                    if followed.passes(collection.as_deref(), renamed_to.as_deref(), &operation) {
                        continue;
                    }
                    if let (Some(dropped), "drop", Scope::Database) =
                        (&collection, operation.as_str(), scope)
                    {
                        // Its changes so far land; the run goes on without it.
                        let token = stream_token(&stream)?;
                        batches.flush(&mut checkpoint, Some(token)).await?;
                        save(state, &checkpoint, shutdown).await?;
                        let why = format!(
                            "dropped in MongoDB at cluster time {}",
                            checkpoint.read_until.time
                        );
                        followed.gone(dropped, why, state).await?;
                        continue;
                    }
                    if let (Some(to), "rename", Scope::Database, Some(at)) =
                        (&renamed_to, operation.as_str(), scope, cluster_time)
                    {
                        if !followed.names.contains(to) {
                            // A followed collection renamed away is gone under its
                            // name; one renamed onto a chosen name joins the run.
                            if let Some(from) =
                                collection.as_ref().filter(|f| followed.names.contains(*f))
                            {
                                let why = format!(
                                    "renamed to {to} in MongoDB at cluster time {}",
                                    at.time
                                );
                                followed.gone(from, why, state).await?;
                            }
                            if followed.chosen(to) {
                                adopt(
                                    mongo,
                                    &mut batches,
                                    &mut checkpoint,
                                    &mut followed,
                                    to,
                                    at,
                                    state,
                                )
                                .await?;
                            }
                            // The checkpoint passes the rename only now: a producer
                            // stopped meanwhile reads the collection again.
                            let token = stream_token(&stream)?;
                            batches.flush(&mut checkpoint, Some(token)).await?;
                            save(state, &checkpoint, shutdown).await?;
                            continue;
                        }
                    }
                    // Publish what came before it, but leave the checkpoint where it
                    // was: a rerun stops here again instead of passing it silently.
                    batches.flush(&mut checkpoint, None).await?;
                    let collection = match (collection, renamed_to) {
                        (Some(from), Some(to)) => format!("{from} (renamed to {to})"),
                        (Some(from), None) => from,
                        (None, _) => "(all)".to_string(),
                    };
                    return Err(ProducerError::StreamEnded {
                        collection,
                        operation,
                    });
                }
            }
        }
        let due = batches.events_pending > 0 && last_flush.elapsed() >= FLUSH_EVERY;
        let idle =
            batches.events_pending == 0 && last_checkpoint.elapsed() >= IDLE_CHECKPOINT_EVERY;
        if batches.is_full() || due || idle {
            let token = stream_token(&stream)?;
            batches.flush(&mut checkpoint, Some(token)).await?;
            save(state, &checkpoint, shutdown).await?;
            last_flush = Instant::now();
            last_checkpoint = Instant::now();
            if last_measure.elapsed() >= MEASURE_EVERY {
                let log = last_report.elapsed() >= REPORT_EVERY;
                report(
                    mongo,
                    metrics,
                    &checkpoint,
                    reported_events,
                    last_report.elapsed(),
                    log,
                )
                .await;
                last_measure = Instant::now();
                if log {
                    reported_events = checkpoint.events;
                    last_report = Instant::now();
                }
            }
        }
    }
    // Stopped: what was read is published and checkpointed before returning.
    let token = stream_token(&stream)?;
    batches.flush(&mut checkpoint, Some(token)).await?;
    save(state, &checkpoint, shutdown).await?;
    Ok(Followed {
        events: checkpoint.events - started_events,
        batches: checkpoint.batches - started_batches,
        skipped: batches.skipped,
    })
}

/// Saves the checkpoint, riding out NATS answering late (a JetStream cluster electing
/// a leader, a server restarting).
async fn save(
    state: &RunState,
    checkpoint: &StreamCheckpoint,
    stop: &CancellationToken,
) -> Result<(), ProducerError> {
    retry::with_retries("saving the stream checkpoint", stop, || {
        state.save_stream_checkpoint(checkpoint)
    })
    .await
}

/// The recorded token, for the driver.
fn resume_token(json: &serde_json::Value) -> Result<ResumeToken, ProducerError> {
    let bad = |detail: String| ProducerError::Follow {
        detail: format!("the recorded resume token is unreadable ({detail}); start another --run"),
    };
    let token = Bson::try_from(json.clone()).map_err(|e| bad(e.to_string()))?;
    bson::deserialize_from_bson(token).map_err(|e| bad(e.to_string()))
}

/// Where the stream stands now, as a document to record.
fn stream_token(stream: &ChangeStream<RawDocumentBuf>) -> Result<Document, ProducerError> {
    let bad = |detail: String| ProducerError::Follow { detail };
    let token = stream
        .resume_token()
        .ok_or_else(|| bad("the change stream has no resume token".to_string()))?;
    bson::serialize_to_document(&token)
        .map_err(|e| bad(format!("the change stream's resume token: {e}")))
}

/// A stream error: one that passes (a replica set electing a new primary beyond the
/// driver's own resume) is [`ProducerError::FollowInterrupted`], followed again from
/// the checkpoint; the others end following, saying so when the history is gone.
fn stream_error(err: &mongodb::error::Error) -> ProducerError {
    let detail = mongo_detail(err);
    match ReadFailure::of(err) {
        ReadFailure::Transient => ProducerError::FollowInterrupted { detail },
        ReadFailure::HistoryLost => ProducerError::Follow {
            detail: format!("{detail}: the run's position is no longer in MongoDB's oplog (changes were lost to it); see docs/guides/live-migration.md, \"History lost\", to re-snapshot"),
        },
        ReadFailure::Permanent => ProducerError::Follow { detail },
    }
}
