//! Publishing a collection's batches with a bounded window of unacknowledged publishes.
//!
//! A publish is awaited twice: once to send, once for the stream's acknowledgement
//! (PubAck). Up to `max_in_flight` batches may wait for their PubAck at once, so the link
//! stays busy while memory stays bounded. Acknowledgements are settled in publish order,
//! and only an acknowledged batch moves the checkpoint (saved by the [`Checkpointer`]
//! without holding up the next publish), so a crash never skips a batch.
//! A batch whose PubAck fails (NATS restarting, a timeout) is sent again with the same
//! `Nats-Msg-Id`: if the first copy did land, the stream drops the second.

use std::collections::VecDeque;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::HeaderMap;
use bytes::Bytes;
use common::run_state::{Checkpoint, RunState};
use tracing::Instrument;

use crate::checkpointer::Checkpointer;
use crate::error::ProducerError;
use crate::retry::{pause, ATTEMPTS};

/// What the publisher counted for one collection.
#[derive(Debug, Default, Clone, Copy)]
pub struct Published {
    pub batches: u64,
    /// Batches the stream already had (same `Nats-Msg-Id` within its duplicate window).
    pub duplicates: u64,
}

struct InFlight {
    seq: u64,
    batch_id: String,
    payload: Bytes,
    ack: Option<PublishAckFuture>,
    /// Where the collection stands once this batch is acknowledged.
    checkpoint: Checkpoint,
    /// The batch's trace, closed when its PubAck is settled; `ack` spans the wait.
    _span: tracing::Span,
    _ack_span: tracing::Span,
}

pub struct Publisher {
    jetstream: async_nats::jetstream::Context,
    checkpointer: Checkpointer,
    subject: String,
    collection: String,
    max_in_flight: usize,
    window: VecDeque<InFlight>,
    published: Published,
}

impl Publisher {
    pub fn new(
        jetstream: async_nats::jetstream::Context,
        state: RunState,
        subject: String,
        collection: String,
        max_in_flight: usize,
    ) -> Self {
        Publisher {
            jetstream,
            checkpointer: Checkpointer::start(state, collection.clone()),
            subject,
            collection,
            max_in_flight: max_in_flight.max(1),
            window: VecDeque::new(),
            published: Published::default(),
        }
    }

    /// Sends one batch; waits for the oldest PubAck first when the window is full.
    pub async fn publish(
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
        let ack = self
            .send(&batch_id, payload.clone())
            .instrument(publish)
            .await
            .ok();
        let ack_span = tracing::info_span!(parent: &span, "ack", duplicate = tracing::field::Empty);
        self.window.push_back(InFlight {
            seq,
            batch_id,
            payload,
            ack,
            checkpoint,
            _span: span,
            _ack_span: ack_span,
        });
        Ok(())
    }

    /// Waits for every batch in flight to be acknowledged.
    pub async fn finish(mut self) -> Result<Published, ProducerError> {
        while !self.window.is_empty() {
            self.settle_oldest().await?;
        }
        self.checkpointer.finish().await?;
        Ok(self.published)
    }

    async fn send(&self, batch_id: &str, payload: Bytes) -> Result<PublishAckFuture, PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, batch_id);
        common::trace_context::inject(&mut headers);
        self.jetstream
            .publish_with_headers(self.subject.clone(), headers, payload)
            .await
    }

    async fn settle_oldest(&mut self) -> Result<(), ProducerError> {
        let Some(mut batch) = self.window.pop_front() else {
            return Ok(());
        };
        let mut attempt = 1;
        let duplicate = loop {
            let outcome = match batch.ack.take() {
                Some(ack) => ack.await,
                None => Err(PublishError::new(PublishErrorKind::BrokenPipe)),
            };
            match outcome {
                Ok(ack) => break ack.duplicate,
                Err(err) if attempt >= ATTEMPTS || !is_transient(&err) => {
                    return Err(ProducerError::Publish {
                        collection: self.collection.clone(),
                        seq: batch.seq,
                        detail: err.to_string(),
                    })
                }
                Err(detail) => {
                    tracing::warn!(
                        collection = %self.collection,
                        seq = batch.seq,
                        attempt,
                        error = %detail,
                        "publish not acknowledged; sending the batch again"
                    );
                    tokio::time::sleep(pause(attempt)).await;
                    attempt += 1;
                    batch.ack = self.send(&batch.batch_id, batch.payload.clone()).await.ok();
                }
            }
        };
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
