//! One COPY writer: its own PostgreSQL connection and its own pull stream on one of the
//! run's shared durable consumers (snapshot batches, or change batches once the
//! snapshot has landed).
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
use common::blob;
use common::compression;
use futures::StreamExt;
use landing::changes::ChangeDoc;
use landing::landing::{land, land_changes, Claim, Landed};
use landing::mapped::Mapped;
use landing::pg::{self, ConnectError};
use landing::plans::Plans;
use landing::reject::Origin;
use landing::session::Session;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::dead_letter;
use crate::outcome::{retry_delay, Outcome};
use crate::shared::Shared;

/// Pause before reconnecting to PostgreSQL or re-opening the pull stream after a failure.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// How long a batch in flight may take to finish once a stop is requested. A batch
/// still running then (a PostgreSQL that stopped answering) is abandoned: its
/// transaction is never committed and the stream delivers it again, so the process
/// stops instead of waiting on a server forever.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub(crate) struct Writer {
    id: usize,
    shared: Arc<Shared>,
    client: Option<Session>,
    /// The plans of the collections this writer has met, their tables made sure of.
    plans: Plans,
}

impl Writer {
    /// A writer of snapshot batches: a table it creates waits for its primary key with
    /// `--key-after-load`.
    pub(crate) fn new(id: usize, shared: Arc<Shared>) -> Self {
        let plans = Plans::new(shared.key_after_load);
        Writer {
            id,
            shared,
            client: None,
            plans,
        }
    }

    /// A writer of change batches: they land once the snapshot's keys are built, so a
    /// table it creates (a collection that appeared while followed) gets its key at
    /// once; nothing would build it later.
    pub(crate) fn for_changes(id: usize, shared: Arc<Shared>) -> Self {
        Writer {
            id,
            shared,
            client: None,
            plans: Plans::new(false),
        }
    }

    /// Runs until `shutdown` is cancelled.
    pub(crate) async fn run(mut self, consumer: PullConsumer, shutdown: CancellationToken) {
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
                    Some(Ok(message)) => self.handle(message, &shutdown).await,
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

    async fn handle(&mut self, message: Message, shutdown: &CancellationToken) {
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
        let timeout = self.shared.batch_timeout;
        let finished = async {
            let work = self.process(&message, delivered);
            tokio::pin!(work);
            let stopping = async {
                shutdown.cancelled().await;
                tokio::time::sleep(STOP_GRACE).await;
            };
            tokio::pin!(stopping);
            let too_long = tokio::time::sleep(timeout);
            tokio::pin!(too_long);
            loop {
                tokio::select! {
                    outcome = &mut work => break Some(outcome),
                    () = &mut stopping => break Some(Outcome::Abandoned),
                    () = &mut too_long => break None,
                    _ = tokio::time::sleep(keep_alive) => {
                        // Still working: ask the stream not to redeliver yet.
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                }
            }
        }
        .instrument(span.clone())
        .await;
        let gave_up = finished.is_none();
        let outcome = finished.unwrap_or_else(|| {
            self.failed(
                delivered,
                format!(
                    "not landed within --batch-timeout ({timeout:?}): PostgreSQL stopped answering"
                ),
            )
        });
        if outcome == Outcome::Abandoned || gave_up {
            // Its connection is in the middle of a statement that never ended.
            self.client = None;
        }
        match &outcome {
            Outcome::Committed { rows, rejects } => {
                span.record("rows", rows);
                span.record("rejects", rejects.total());
                span.record("outcome", "committed");
            }
            Outcome::Duplicate => {
                span.record("outcome", "duplicate");
            }
            Outcome::Retry(_) => {
                span.record("outcome", "retry");
            }
            Outcome::Abandoned => {
                span.record("outcome", "abandoned");
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
        let decode = tracing::info_span!("decode");
        let plain = match decode.in_scope(|| compression::unpack(&message.payload)) {
            Ok(plain) => plain,
            Err(err) => return Outcome::Poison(err.to_string()),
        };
        let envelope = match decode.in_scope(|| Envelope::decode(&plain)) {
            Ok(envelope) => envelope,
            Err(err) => return Outcome::Poison(err.to_string()),
        };
        // The subject, which the stream and this run's consumer filter on, decides the
        // run and the collection; an envelope that claims others is not trusted.
        let names = &self.shared.broker.names;
        let expected = if envelope.changes.is_empty() {
            names.batch_subject(&self.shared.run, &envelope.collection)
        } else {
            names.change_subject(&self.shared.run, &envelope.collection)
        };
        if envelope.run != self.shared.run.as_str() || message.subject.as_str() != expected {
            return Outcome::Poison(format!(
                "the envelope names run {:?} and collection {:?}, but the message came on subject {:?} of run {}",
                envelope.run.as_ref(),
                envelope.collection.as_ref(),
                message.subject.as_str(),
                self.shared.run
            ));
        }
        if !envelope.changes.is_empty() && envelope.changes.len() != envelope.docs.len() {
            return Outcome::Poison(format!(
                "the change batch holds {} documents for {} changes",
                envelope.docs.len(),
                envelope.changes.len()
            ));
        }
        let span = tracing::Span::current();
        span.record("collection", envelope.collection.as_ref());
        span.record("batch_id", envelope.batch_id.as_ref());
        span.record("seq", envelope.seq);
        span.record("documents", envelope.docs.len());

        let mut docs: Vec<Cow<'_, [u8]>> = Vec::with_capacity(envelope.docs.len());
        for doc in &envelope.docs {
            docs.push(match doc {
                Doc::Inline(bytes) => Cow::Borrowed(bytes.as_ref()),
                Doc::Blob { name, .. } => {
                    match blob::fetch(&self.shared.broker.blobs, name).await {
                        Ok(bytes) => Cow::Owned(bytes),
                        // A change batch committed before a crash (its ack lost) has had
                        // its large documents deleted already.
                        Err(_) if self.in_ledger(&envelope.batch_id).await => {
                            self.forget_change_blobs(&envelope).await;
                            return Outcome::Duplicate;
                        }
                        Err(err) => return self.failed(delivered, err.to_string()),
                    }
                }
            });
        }
        let client = match ensure_client(&mut self.client, &self.shared.database_url).await {
            Ok(client) => client,
            Err(err) => return self.classified(delivered, err.is_transient(), err.to_string()),
        };
        let planned = self
            .plans
            .for_documents(
                client,
                &self.shared.mapping,
                &envelope.run,
                &envelope.collection,
                docs.iter().map(AsRef::as_ref),
            )
            // Long only when a column is added: the ALTER waits for COPYs in flight.
            .instrument(tracing::info_span!("plan"))
            .await;
        let plan = match planned {
            Ok(plan) => plan,
            Err(err) if err.is_permanent() => {
                return Outcome::Poison(format!("preparing the target table: {err}"));
            }
            Err(err) => {
                // The connection may be gone, or out of step after a failed statement.
                self.client = None;
                return self.classified(
                    delivered,
                    err.is_transient(),
                    format!("preparing the target table: {err}"),
                );
            }
        };

        let origin = Origin {
            run: &envelope.run,
            collection: &envelope.collection,
            batch_id: &envelope.batch_id,
        };
        let Some(client) = self.client.as_mut() else {
            return Outcome::Retry("no PostgreSQL connection".to_string());
        };
        let started = std::time::Instant::now();
        let landed = if envelope.changes.is_empty() {
            let batch = tracing::info_span!("map", table = %plan.table)
                .in_scope(|| Mapped::map(plan, docs));
            let claim = Claim::Batch { seq: envelope.seq };
            land(client, plan, &origin, claim, &batch).await
        } else {
            let changes: Vec<ChangeDoc<'_>> = envelope
                .changes
                .iter()
                .zip(docs)
                .map(|(change, bytes)| ChangeDoc {
                    change: *change,
                    bytes,
                })
                .collect();
            common::crash::pause("change-landing").await;
            land_changes(client, plan, &origin, envelope.seq, &changes).await
        };
        self.shared.stats.write_latency.observe(started.elapsed());
        match landed {
            Ok(Landed::Committed { rows, rejects, .. }) => {
                if !envelope.changes.is_empty() {
                    let newest = envelope.changes.iter().map(|c| c.version.time).max();
                    self.shared
                        .stats
                        .changes(envelope.changes.len() as u64, newest.unwrap_or(0));
                }
                common::crash::point(if envelope.changes.is_empty() {
                    "snapshot-committed"
                } else {
                    "change-committed"
                });
                self.forget_change_blobs(&envelope).await;
                Outcome::Committed { rows, rejects }
            }
            Ok(Landed::AlreadyClaimed) => {
                self.forget_change_blobs(&envelope).await;
                Outcome::Duplicate
            }
            Err(err) => {
                // After a failed COPY the protocol may be out of step (the server still
                // answering the copy): the next batch gets a new connection, and its
                // table is made sure of again (it may have been dropped).
                self.client = None;
                self.plans.forget(&envelope.collection);
                self.classified(
                    delivered,
                    err.is_transient(),
                    format!("writing the batch: {err}"),
                )
            }
        }
    }

    /// Whether the batch is in the ledger already (false when that cannot be read: the
    /// batch is then tried as usual).
    async fn in_ledger(&mut self, batch_id: &str) -> bool {
        match ensure_client(&mut self.client, &self.shared.database_url).await {
            Ok(client) => landing::ledger::has_batch(client, batch_id)
                .await
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Deletes the object-store copies of a landed change batch's large documents.
    async fn forget_change_blobs(&self, envelope: &Envelope<'_>) {
        blob::forget_changes(&self.shared.broker.blobs, &envelope.docs).await;
    }

    /// A failure that may pass: retried, until it has failed on every allowed delivery.
    fn failed(&self, delivered: i64, detail: String) -> Outcome {
        if delivered >= self.shared.max_deliver as i64 {
            Outcome::Poison(format!("failed on {delivered} deliveries: {detail}"))
        } else {
            Outcome::Retry(detail)
        }
    }

    fn classified(&self, delivered: i64, transient: bool, detail: String) -> Outcome {
        if transient {
            Outcome::Retry(detail)
        } else {
            self.failed(delivered, detail)
        }
    }

    async fn settle(&mut self, message: &Message, delivered: i64, outcome: Outcome) {
        let shared = self.shared.clone();
        let stats = &shared.stats;
        match outcome {
            Outcome::Committed { rows, rejects } => {
                stats.committed(rows, rejects);
                ack(message, AckKind::Ack).await;
                shared.batch_settled();
            }
            Outcome::Duplicate => {
                stats.duplicate();
                tracing::debug!(writer = self.id, "batch already in the ledger; skipped");
                ack(message, AckKind::Ack).await;
                shared.batch_settled();
            }
            Outcome::Abandoned => {
                tracing::warn!(
                    writer = self.id,
                    grace = ?STOP_GRACE,
                    "stopping: the batch in flight did not finish in time; it is left to be delivered again"
                );
                ack(message, AckKind::Nak(None)).await;
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
                        let record = dead_letter::record(
                            client,
                            &shared.broker,
                            &shared.run,
                            &shared.mapping,
                            message,
                            delivered,
                            &reason,
                        );
                        match tokio::time::timeout(shared.batch_timeout, record).await {
                            Ok(recorded) => recorded.map_err(|e| e.to_string()),
                            Err(_) => {
                                self.client = None;
                                Err("PostgreSQL did not answer within --batch-timeout".to_string())
                            }
                        }
                    }
                    Err(err) => Err(err.to_string()),
                };
                match kept {
                    Ok(()) => {
                        stats.dead_letter();
                        ack(message, AckKind::Term).await;
                        shared.batch_settled();
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
    slot: &'a mut Option<Session>,
    url: &str,
) -> Result<&'a mut Session, ConnectError> {
    if slot.as_ref().is_none_or(|session| session.is_closed()) {
        *slot = None;
    }
    match slot {
        Some(session) => Ok(session),
        None => Ok(slot.insert(Session::new(pg::connect(url).await?))),
    }
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
    }
}
