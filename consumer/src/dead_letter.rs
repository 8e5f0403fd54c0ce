//! Keeping what cannot land: a row in the dead-letter table (the reason, and the
//! message bytes as they arrived) and a copy on the dead-letter stream, before the
//! message is terminated. Recording twice (a crash between the record and the term) is
//! harmless: the row is keyed by the message's stream sequence.

use async_nats::jetstream::Message;
use async_nats::HeaderMap;
use common::batch::Envelope;
use common::broker::Broker;
use common::naming::{bookkeeping_table, RunName, DEAD_LETTERS_TABLE};
use landing::pg::{Doing, PgError};
use tokio_postgres::Client;

/// Why a dead letter could not be kept yet; the message is retried, not dropped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeadLetterError {
    #[error("the message has no JetStream metadata: {0}")]
    Metadata(#[source] async_nats::Error),
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error("publishing the dead letter: {0}")]
    Publish(#[source] async_nats::Error),
}

/// Keeps `message` as a dead letter of `run`: a row, then a copy on the dead-letter
/// stream.
///
/// # Errors
/// [`DeadLetterError`] when either could not be written; recording again is harmless.
pub(crate) async fn record(
    client: &mut Client,
    broker: &Broker,
    run: &RunName,
    message: &Message,
    delivered: i64,
    reason: &str,
) -> Result<(), DeadLetterError> {
    let info = message.info().map_err(DeadLetterError::Metadata)?;
    let (stream, stream_seq) = (info.stream.to_string(), info.stream_sequence as i64);
    let envelope = Envelope::decode(&message.payload).ok();
    // Text columns cannot hold a NUL byte: a hostile envelope's names are kept with it
    // shown as `\0` (the payload keeps the exact bytes).
    let text = |s: &str| s.replace('\0', "\\0");
    let collection = envelope.as_ref().map(|e| text(&e.collection));
    let batch_id = envelope.as_ref().map(|e| text(&e.batch_id));
    let reason = text(reason);
    client
        .execute(
            &format!(
                "INSERT INTO {} (stream, stream_seq, subject, run, collection, batch_id, deliveries, reason, payload)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (stream, stream_seq) DO NOTHING",
                bookkeeping_table(DEAD_LETTERS_TABLE)
            ),
            &[
                &stream,
                &stream_seq,
                &message.subject.as_str(),
                &run.as_str(),
                &collection,
                &batch_id,
                &delivered,
                &reason,
                &message.payload.as_ref(),
            ],
        )
        .await
        .doing("recording the dead letter")?;

    let mut headers = HeaderMap::new();
    headers.insert(
        "Mongo2pg-Reason",
        reason.replace(['\r', '\n'], " ").as_str(),
    );
    headers.insert("Mongo2pg-Subject", message.subject.as_str());
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("{stream}-{stream_seq}").as_str(),
    );
    let ack = broker
        .jetstream
        .publish_with_headers(
            broker.names.dead_letter_subject(run),
            headers,
            message.payload.clone(),
        )
        .await
        .map_err(|e| DeadLetterError::Publish(e.into()))?;
    ack.await.map_err(|e| DeadLetterError::Publish(e.into()))?;
    Ok(())
}
