//! Keeping what cannot land: a row in the dead-letter table (the reason, and the
//! message bytes as they arrived) and a copy on the dead-letter stream, before the
//! message is terminated. Recording twice (a crash between the record and the term) is
//! harmless: the row is keyed by the message's stream sequence.
//!
//! A batch of a collection with transformed columns is kept without those fields (see
//! [`landing::transform::withhold`]), named in `withheld`: its documents' private
//! values never reach PostgreSQL in clear, and `mongo2pg requeue` reads them again
//! from MongoDB. A message that cannot be read, in a run with transforms, keeps no
//! payload at all: what it holds cannot be told.

use async_nats::jetstream::Message;
use async_nats::HeaderMap;
use std::borrow::Cow;

use common::batch::{Doc, Envelope};
use common::broker::Broker;
use common::compression;
use common::naming::WITHHELD_ALL;
use common::naming::{bookkeeping_table, RunName, DEAD_LETTERS_TABLE};
use landing::mapping::MappingFile;
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
    mapping: &MappingFile,
    message: &Message,
    delivered: i64,
    reason: &str,
) -> Result<(), DeadLetterError> {
    let info = message.info().map_err(DeadLetterError::Metadata)?;
    let (stream, stream_seq) = (info.stream.to_string(), info.stream_sequence as i64);
    let plain = compression::unpack(&message.payload).ok();
    let envelope = plain
        .as_deref()
        .and_then(|plain| Envelope::decode(plain).ok());
    let (payload, withheld) = kept(mapping, envelope.as_ref(), &message.payload);
    // Text columns cannot hold a NUL byte: a hostile envelope's names are kept with it
    // shown as `\0` (the payload keeps the exact bytes).
    let text = |s: &str| s.replace('\0', "\\0");
    let collection = envelope.as_ref().map(|e| text(&e.collection));
    let batch_id = envelope.as_ref().map(|e| text(&e.batch_id));
    let reason = text(reason);
    client
        .execute(
            &format!(
                "INSERT INTO {} (stream, stream_seq, subject, run, collection, batch_id, deliveries, reason, payload, withheld)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (stream, stream_seq) DO NOTHING",
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
                &payload.as_ref(),
                &withheld,
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
        .publish_with_headers(broker.names.dead_letter_subject(run), headers, payload)
        .await
        .map_err(|e| DeadLetterError::Publish(e.into()))?;
    ack.await.map_err(|e| DeadLetterError::Publish(e.into()))?;
    Ok(())
}

/// The payload to keep, and the fields left out of it (`None`: it is whole).
fn kept(
    mapping: &MappingFile,
    envelope: Option<&Envelope<'_>>,
    payload: &bytes::Bytes,
) -> (bytes::Bytes, Option<Vec<String>>) {
    let Some(envelope) = envelope else {
        return if mapping.transforms() {
            (bytes::Bytes::new(), Some(vec![WITHHELD_ALL.to_string()]))
        } else {
            (payload.clone(), None)
        };
    };
    let paths = mapping.plan(&envelope.collection).withheld;
    if paths.is_empty() {
        return (payload.clone(), None);
    }
    let mut scrubbed = envelope.clone();
    for doc in &mut scrubbed.docs {
        if let Doc::Inline(raw) = doc {
            *raw = Cow::Owned(landing::transform::withhold(raw, &paths));
        }
    }
    (scrubbed.encode().into(), Some(paths))
}
