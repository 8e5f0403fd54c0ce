//! One COPY writer: its own PostgreSQL connection and its own pull stream on the run's
//! shared durable consumer.
//!
//! The loop takes a message, decodes the envelope (borrowing the payload), maps each
//! document to a row or a reject, lands the batch in one transaction with its ledger
//! row, and only then acknowledges. While it works, it tells the stream it is still busy
//! (progress acks) so a long batch is not redelivered. The shutdown token is checked
//! only between batches: a batch is finished and acknowledged, or left unacknowledged
//! for redelivery, never half-written.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use common::batch::{Doc, Envelope};
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::dead_letter;
use crate::drift::DriftError;
use crate::error::{is_retriable, pg_detail};
use crate::ledger::{self, Landed, MappedBatch};
use crate::outcome::{retry_delay, Outcome};
use crate::plans::Plans;
use crate::pool::Shared;
use crate::reject::Reject;

/// Pause before reconnecting to PostgreSQL or re-opening the pull stream after a failure.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

pub struct Writer {
    id: usize,
    shared: Arc<Shared>,
    client: Option<Client>,
    /// The plans of the collections this writer has met, their tables made sure of.
    plans: Plans,
}

impl Writer {
    pub fn new(id: usize, shared: Arc<Shared>) -> Self {
        Writer {
            id,
            shared,
            client: None,
            plans: Plans::default(),
        }
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(mut self, consumer: PullConsumer, shutdown: CancellationToken) {
        'stream: while !shutdown.is_cancelled() {
            let mut messages = match consumer
                .stream()
                .max_messages_per_batch(self.shared.prefetch)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
            {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(writer = self.id, error = %err, "cannot pull from NATS; retrying");
                    pause(&shutdown).await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break 'stream,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => self.handle(message).await,
                    Some(Err(err)) => {
                        tracing::warn!(writer = self.id, error = %err, "pull stream interrupted; reopening");
                        pause(&shutdown).await;
                        continue 'stream;
                    }
                    None => continue 'stream,
                }
            }
        }
        tracing::debug!(writer = self.id, "writer stopped");
    }

    async fn handle(&mut self, message: Message) {
        let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
        // The batch's trace continues here, whichever consumer took it.
        let span = tracing::info_span!(
            parent: None,
            "consume",
            run = %self.shared.run,
            writer = self.id,
            delivered,
            bytes = message.payload.len(),
            collection = tracing::field::Empty,
            batch_id = tracing::field::Empty,
            seq = tracing::field::Empty,
            documents = tracing::field::Empty,
            rows = tracing::field::Empty,
            rejects = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        common::trace_context::adopt(&span, message.headers.as_ref());
        let keep_alive = self.shared.ack_wait / 3;
        let outcome = async {
            let work = self.process(&message, delivered);
            tokio::pin!(work);
            loop {
                tokio::select! {
                    outcome = &mut work => break outcome,
                    _ = tokio::time::sleep(keep_alive) => {
                        // Still working: ask the stream not to redeliver yet.
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                }
            }
        }
        .instrument(span.clone())
        .await;
        match &outcome {
            Outcome::Committed { rows, rejects } => {
                span.record("rows", rows);
                span.record("rejects", rejects);
                span.record("outcome", "committed");
            }
            Outcome::Duplicate => {
                span.record("outcome", "duplicate");
            }
            Outcome::Retry(_) => {
                span.record("outcome", "retry");
            }
            Outcome::Poison(_) => {
                span.record("outcome", "dead_letter");
            }
        }
        let ack_span = tracing::info_span!(parent: &span, "ack");
        self.settle(&message, delivered, outcome)
            .instrument(ack_span)
            .await;
    }

    async fn process(&mut self, message: &Message, delivered: i64) -> Outcome {
        let decoded = tracing::info_span!("decode").in_scope(|| Envelope::decode(&message.payload));
        let envelope = match decoded {
            Ok(envelope) => envelope,
            Err(err) => return Outcome::Poison(err.to_string()),
        };
        let span = tracing::Span::current();
        span.record("collection", envelope.collection.as_ref());
        span.record("batch_id", envelope.batch_id.as_ref());
        span.record("seq", envelope.seq);
        span.record("documents", envelope.docs.len());

        let mut docs: Vec<Cow<'_, [u8]>> = Vec::with_capacity(envelope.docs.len());
        for doc in &envelope.docs {
            docs.push(match doc {
                Doc::Inline(bytes) => Cow::Borrowed(bytes.as_ref()),
                Doc::Blob { name, .. } => match self.fetch_blob(name).await {
                    Ok(bytes) => Cow::Owned(bytes),
                    Err(err) => {
                        return self
                            .failed(delivered, format!("fetching large document {name}: {err}"))
                    }
                },
            });
        }
        let client = match ensure_client(&mut self.client, &self.shared.database_url).await {
            Ok(client) => client,
            Err(detail) => return Outcome::Retry(detail),
        };
        let planned = self
            .plans
            .for_documents(
                client,
                &self.shared.mapping,
                &envelope.collection,
                docs.iter().map(AsRef::as_ref),
            )
            // Long only when a column is added: the ALTER waits for COPYs in flight.
            .instrument(tracing::info_span!("plan"))
            .await;
        let plan = match planned {
            Ok(plan) => plan,
            Err(DriftError::Postgres(err)) => {
                return self.pg_failed(delivered, "preparing the target table", &err)
            }
            Err(other) => return self.failed(delivered, other.to_string()),
        };

        let map_span = tracing::info_span!("map", table = %plan.table);
        let mut rows = Vec::with_capacity(docs.len());
        let mut sources: Vec<Cow<'_, [u8]>> = Vec::with_capacity(docs.len());
        let mut rejects = Vec::new();
        for bytes in docs {
            match plan.row_from_bytes(&bytes) {
                Ok(row) => {
                    rows.push(row);
                    sources.push(bytes);
                }
                Err(error) => rejects.push(Reject::new(&bytes, error)),
            }
        }
        drop(map_span);
        let batch = MappedBatch {
            batch_id: &envelope.batch_id,
            run: &envelope.run,
            collection: &envelope.collection,
            seq: envelope.seq,
            rows,
            sources,
            rejects,
        };

        let client = match self.client.as_mut() {
            Some(client) => client,
            None => return Outcome::Retry("no PostgreSQL connection".to_string()),
        };
        let started = std::time::Instant::now();
        let landed = ledger::land(client, plan, &batch).await;
        self.shared.stats.write_latency(started.elapsed());
        match landed {
            Ok(Landed::Committed { rows, rejects }) => Outcome::Committed { rows, rejects },
            Ok(Landed::Duplicate) => Outcome::Duplicate,
            Err(err) => self.pg_failed(delivered, "writing the batch", &err),
        }
    }

    /// A failure that may pass: retried, until it has failed on every allowed delivery.
    fn failed(&self, delivered: i64, detail: String) -> Outcome {
        if delivered >= self.shared.max_deliver as i64 {
            Outcome::Poison(format!("failed on {delivered} deliveries: {detail}"))
        } else {
            Outcome::Retry(detail)
        }
    }

    fn pg_failed(&mut self, delivered: i64, doing: &str, err: &tokio_postgres::Error) -> Outcome {
        let detail = format!("{doing}: {}", pg_detail(err));
        if is_retriable(err) {
            // The connection may be gone: make a new one for the next batch.
            if self.client.as_ref().is_none_or(Client::is_closed) {
                self.client = None;
            }
            Outcome::Retry(detail)
        } else {
            self.failed(delivered, detail)
        }
    }

    async fn fetch_blob(&self, name: &str) -> Result<Vec<u8>, String> {
        let mut object = self
            .shared
            .broker
            .blobs
            .get(name)
            .await
            .map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    async fn settle(&mut self, message: &Message, delivered: i64, outcome: Outcome) {
        let shared = self.shared.clone();
        let stats = &shared.stats;
        match outcome {
            Outcome::Committed { rows, rejects } => {
                stats.committed(rows, rejects);
                ack(message, AckKind::Ack).await;
            }
            Outcome::Duplicate => {
                stats.duplicate();
                tracing::debug!(writer = self.id, "batch already in the ledger; skipped");
                ack(message, AckKind::Ack).await;
            }
            Outcome::Retry(reason) => {
                let delay = retry_delay(delivered);
                tracing::warn!(writer = self.id, delivered, retry_in = ?delay, %reason, "batch not landed; it will be retried");
                ack(message, AckKind::Nak(Some(delay))).await;
                if self.client.is_none() {
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
            Outcome::Poison(reason) => {
                tracing::error!(writer = self.id, delivered, %reason, "batch cannot land; dead-lettering it");
                let kept = match ensure_client(&mut self.client, &shared.database_url).await {
                    Ok(client) => {
                        dead_letter::record(client, &shared, message, delivered, &reason).await
                    }
                    Err(detail) => Err(detail),
                };
                match kept {
                    Ok(()) => {
                        stats.dead_letter();
                        ack(message, AckKind::Term).await;
                    }
                    Err(detail) => {
                        tracing::warn!(writer = self.id, %detail, "cannot record the dead letter yet; will retry");
                        ack(message, AckKind::Nak(Some(retry_delay(delivered)))).await;
                    }
                }
            }
        }
    }
}

/// Acknowledges and waits for the server to confirm: what follows (the done check,
/// shutdown) depends on the acknowledgement having landed.
async fn ack(message: &Message, kind: AckKind) {
    if let Err(err) = message.double_ack_with(kind).await {
        // The batch will be redelivered; the ledger makes that harmless.
        tracing::warn!(error = %err, "acknowledgement not confirmed; the batch may be redelivered");
    }
}

/// The writer's connection, made anew when there is none or it was closed.
async fn ensure_client<'a>(
    slot: &'a mut Option<Client>,
    url: &str,
) -> Result<&'a mut Client, String> {
    if slot.as_ref().is_none_or(Client::is_closed) {
        *slot = None;
        let client = connect(url)
            .await
            .map_err(|e| format!("connecting to PostgreSQL: {}", pg_detail(&e)))?;
        *slot = Some(client);
    }
    slot.as_mut()
        .ok_or_else(|| "no PostgreSQL connection".to_string())
}

/// Connects to PostgreSQL; the connection task ends when the client is dropped.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
    }
}
