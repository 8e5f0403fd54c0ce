//! Publishing a collection's batches with a bounded window of unacknowledged publishes.
//!
//! A publish is awaited twice: once to send, once for the stream's acknowledgement
//! (PubAck). Up to `max_in_flight` batches may wait for their PubAck at once, so the link
//! stays busy while memory stays bounded. Acknowledgements are settled in publish order,
//! and only an acknowledged batch moves the checkpoint (saved by the [`Checkpointer`]
//! without holding up the next publish), so a crash never skips a batch.
//! A batch whose PubAck fails (NATS restarting, a timeout) is sent again with the same
//! `Nats-Msg-Id`: if the first copy did land, the stream drops the second.
//!
//! [`acknowledged`] is the one place a PubAck is awaited, for snapshot and change
//! batches alike: transient failures are sent again (about two minutes in all), and a
//! stream at its `max_bytes` / `max_msgs` limit is back-pressure, waited out for as long
//! as it takes consumers to make room (until the process is stopped), never a failed
//! run.

use std::collections::VecDeque;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::HeaderMap;
use bytes::Bytes;
use common::run_state::{Checkpoint, RunState};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::checkpointer::Checkpointer;
use crate::error::ProducerError;
use crate::metrics::Metrics;
use crate::retry::{self, ATTEMPTS};

/// What the publisher counted for one collection.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Published {
    pub batches: u64,
    /// Batches the stream already had (same `Nats-Msg-Id` within its duplicate window).
    pub duplicates: u64,
}

struct InFlight {
    seq: u64,
    batch_id: String,
    payload: Bytes,
    ack: Option<PublishAckFuture>,
    /// When it was first sent.
    sent_at: Instant,
    /// Where the collection stands once this batch is acknowledged.
    checkpoint: Checkpoint,
    /// The batch's trace, closed when its PubAck is settled; `ack` spans the wait.
    _span: tracing::Span,
    _ack_span: tracing::Span,
}

pub(crate) struct Publisher {
    jetstream: jetstream::Context,
    shutdown: CancellationToken,
    checkpointer: Checkpointer,
    subject: String,
    collection: String,
    max_in_flight: usize,
    window: VecDeque<InFlight>,
    published: Published,
    metrics: Arc<Metrics>,
}

impl Publisher {
    pub(crate) fn new(
        jetstream: jetstream::Context,
        state: RunState,
        subject: String,
        collection: String,
        max_in_flight: usize,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Self {
        Publisher {
            jetstream,
            checkpointer: Checkpointer::start(state, collection.clone(), shutdown.clone()),
            shutdown,
            subject,
            collection,
            max_in_flight: max_in_flight.max(1),
            window: VecDeque::new(),
            published: Published::default(),
            metrics,
        }
    }

    /// Sends one batch; waits for the oldest PubAck first when the window is full.
    pub(crate) async fn publish(
        &mut self,
        seq: u64,
        batch_id: String,
        payload: Bytes,
        checkpoint: Checkpoint,
        span: tracing::Span,
    ) -> Result<(), ProducerError> {
        while self.window.len() >= self.max_in_flight {
            self.settle_oldest().await?;
        }
        // A failed send is retried when the batch is settled, like a failed PubAck. The
        // trace context sent in the headers is the `publish` span's.
        let publish = tracing::info_span!(parent: &span, "publish", subject = %self.subject);
        let sent_at = Instant::now();
        let ack = send(&self.jetstream, &self.subject, &batch_id, payload.clone())
            .instrument(publish)
            .await
            .ok();
        let ack_span = tracing::info_span!(parent: &span, "ack", duplicate = tracing::field::Empty);
        self.window.push_back(InFlight {
            seq,
            batch_id,
            payload,
            ack,
            sent_at,
            checkpoint,
            _span: span,
            _ack_span: ack_span,
        });
        Ok(())
    }

    /// Waits for every batch in flight to be acknowledged.
    pub(crate) async fn finish(mut self) -> Result<Published, ProducerError> {
        while !self.window.is_empty() {
            self.settle_oldest().await?;
        }
        self.checkpointer.finish().await?;
        Ok(self.published)
    }

    async fn settle_oldest(&mut self) -> Result<(), ProducerError> {
        let Some(batch) = self.window.pop_front() else {
            return Ok(());
        };
        let sent = Sent {
            subject: &self.subject,
            batch_id: &batch.batch_id,
            payload: &batch.payload,
            collection: &self.collection,
            seq: batch.seq,
            sent_at: batch.sent_at,
            metrics: &self.metrics,
        };
        let duplicate = acknowledged(&self.jetstream, sent, batch.ack, &self.shutdown).await?;
        self.published.batches += 1;
        if duplicate {
            self.published.duplicates += 1;
        }
        batch._ack_span.record("duplicate", duplicate);
        self.checkpointer.save(batch.checkpoint);
        common::crash::point("snapshot-batch");
        Ok(())
    }
}

/// Sends one batch with its `Nats-Msg-Id` and the current trace context; the returned
/// future is its PubAck.
pub(crate) async fn send(
    jetstream: &jetstream::Context,
    subject: &str,
    batch_id: &str,
    payload: Bytes,
) -> Result<PublishAckFuture, PublishError> {
    let mut headers = HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, batch_id);
    common::trace_context::inject(&mut headers);
    jetstream
        .publish_with_headers(subject.to_string(), headers, payload)
        .await
}

/// A batch sent (or whose send failed), to be sent again under the same id if need be.
pub(crate) struct Sent<'a> {
    pub subject: &'a str,
    pub batch_id: &'a str,
    pub payload: &'a Bytes,
    /// For the error line and the logs.
    pub collection: &'a str,
    pub seq: u64,
    /// When it was first sent: its acknowledgement's latency is counted from there.
    pub sent_at: Instant,
    /// Where the latency and the retries are counted.
    pub metrics: &'a Metrics,
}

/// How long a full stream is waited on between tries.
const FULL_STREAM_PAUSE: Duration = Duration::from_secs(1);

/// Waits for a sent batch's PubAck (`None`: its send failed), sending it again while
/// the failure may pass; returns whether the stream already had it.
///
/// A stream at its limits (`max_bytes`, `max_msgs` with `discard: new`) is waited on
/// without a bound, a warning logged every 30 s, until consumers make room or
/// `shutdown` (then [`ProducerError::Interrupted`]: nothing past the last acknowledged
/// batch was checkpointed, so running again resumes).
///
/// # Errors
/// [`ProducerError::Publish`] for a failure that cannot pass (a message over
/// `max_payload`) or after about two minutes of transient ones;
/// [`ProducerError::Interrupted`] for transient ones past [`retry::STOP_GRACE`] once
/// `shutdown` is cancelled (a stop while NATS is down ends without two minutes of
/// tries).
pub(crate) async fn acknowledged(
    jetstream: &jetstream::Context,
    sent: Sent<'_>,
    mut ack: Option<PublishAckFuture>,
    shutdown: &CancellationToken,
) -> Result<bool, ProducerError> {
    let mut attempt = 1;
    let mut stopping = None;
    let mut full_since: Option<std::time::Instant> = None;
    let mut warned_full: Option<std::time::Instant> = None;
    loop {
        let outcome = match ack.take() {
            Some(ack) => ack.await,
            None => Err(PublishError::new(PublishErrorKind::BrokenPipe)),
        };
        let err = match outcome {
            Ok(ack) => {
                if let Some(since) = full_since {
                    tracing::info!(collection = %sent.collection, waited_seconds = since.elapsed().as_secs(),
                        "the stream has room again; publishing resumes");
                }
                sent.metrics.acknowledged(sent.sent_at.elapsed());
                return Ok(ack.duplicate);
            }
            Err(err) => err,
        };
        if is_stream_full(&err) {
            let since = *full_since.get_or_insert_with(std::time::Instant::now);
            if warned_full.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                warned_full = Some(std::time::Instant::now());
                tracing::warn!(collection = %sent.collection, seq = sent.seq, waited_seconds = since.elapsed().as_secs(), error = %err,
                    "the stream is full: waiting for consumers to make room (start or scale up consumers, or raise the stream's limits)");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Err(ProducerError::Interrupted),
                _ = tokio::time::sleep(FULL_STREAM_PAUSE) => {}
            }
        } else if attempt >= ATTEMPTS || !is_transient(&err) {
            return Err(ProducerError::Publish {
                collection: sent.collection.to_string(),
                seq: sent.seq,
                detail: err.to_string(),
            });
        } else {
            tracing::warn!(
                collection = %sent.collection,
                seq = sent.seq,
                attempt,
                error = %err,
                "publish not acknowledged; sending the batch again"
            );
            // Stopping: sent again within the grace only (running again sends it
            // under the same id).
            if !retry::pause_to_retry(shutdown, attempt, &mut stopping).await {
                return Err(ProducerError::Interrupted);
            }
            attempt += 1;
            sent.metrics.retried();
        }
        ack = send(jetstream, sent.subject, sent.batch_id, sent.payload.clone())
            .await
            .ok();
    }
}

/// Whether the stream refused the message for being at its limits: JetStream's "store
/// failed" (10077: "maximum bytes exceeded", "maximum messages exceeded") or "storage
/// resources exceeded" (10047). Consumers acking batches make room on a work queue.
fn is_stream_full(err: &PublishError) -> bool {
    use std::error::Error as _;
    err.source()
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .is_some_and(|js| {
            js.error_code() == ErrorCode::STREAM_STORE_FAILED
                || js.error_code() == ErrorCode::STORAGE_RESOURCES_EXCEEDED
        })
}

/// Whether a publish may succeed if sent again: a timeout, a lost connection, or no
/// stream answering while NATS restarts. A message over the server's size limit or a
/// failed expectation fails the same way every time.
fn is_transient(err: &PublishError) -> bool {
    !matches!(
        err.kind(),
        PublishErrorKind::MaxPayloadExceeded
            | PublishErrorKind::WrongLastMessageId
            | PublishErrorKind::WrongLastSequence
    )
}
