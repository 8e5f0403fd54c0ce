//! `mongo2pg requeue`: sending a run's dead letters back to the stream once their
//! cause is fixed (a table altered, a trigger dropped, a server's limit raised).
//!
//! Each dead letter of the run (or of one collection) is published again, byte for
//! byte, on the subject it came on, under a new message id: the original id may still
//! be in the stream's dedupe window, which would drop it silently. Once the stream has
//! acknowledged it, its row leaves the dead-letter table. A crash in between publishes
//! it twice at worst, and the ledger lands a batch once. Running consumers (or ones
//! started later) land the requeued batches; one that fails again is dead-lettered
//! again, with its new reason.
//!
//! A dead letter of a collection with transforms was kept without the transformed
//! fields: each of its documents is read again from MongoDB by `_id` (as it is now) and
//! the batch published with them; a document gone since leaves the batch (its delete
//! is on the change stream, or it was deleted before the snapshot read it again). One
//! whose message could not be read at all kept nothing to requeue and stays, counted.

use async_nats::HeaderMap;
use common::batch::{ChangeOp, Doc, Envelope};
use common::broker::Broker;
use common::compression;
use common::naming::{bookkeeping_table, DEAD_LETTERS_TABLE, WITHHELD_ALL};
use landing::ledger;
use landing::pg::{self, Doing, PgError};
use landing::schema;

use crate::config::RequeueConfig;
use crate::error::OperatorError;

/// What a requeue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Dead letters published again.
    pub messages: u64,
    /// Dead letters that kept no payload (unreadable, in a run with transforms).
    pub empty: u64,
}

impl std::fmt::Display for Requeued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requeue: {} dead letters published again; consumers of the run land them",
            self.messages
        )?;
        if self.empty > 0 {
            write!(
                f,
                "; {} kept no payload (unreadable messages of a run with transforms) and stay in {DEAD_LETTERS_TABLE}",
                self.empty
            )?;
        }
        Ok(())
    }
}

/// Publishes the run's dead letters again, one at a time (memory holds one message).
///
/// # Errors
/// [`OperatorError`] when PostgreSQL or NATS cannot be reached or a publish is not
/// acknowledged; what was requeued before stays requeued.
pub async fn requeue(config: &RequeueConfig) -> Result<Requeued, OperatorError> {
    let mut client = pg::connect(&config.postgres.database_url).await?;
    schema::ensure_bookkeeping(&mut client).await?;
    let broker = Broker::connect(&config.nats, config.nats.stream.clone()).await?;
    let run = &config.run.run;
    let table = bookkeeping_table(DEAD_LETTERS_TABLE);
    let ids: Vec<i64> = client
        .query(
            &format!(
                "SELECT id FROM {table} WHERE run = $1 AND ($2::text IS NULL OR collection = $2) ORDER BY id"
            ),
            &[&run.as_str(), &config.collection],
        )
        .await
        .doing("reading the dead letters")?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .doing("reading the dead letters")?;
    if ids.is_empty()
        && !ledger::has_run(&client, run.as_str(), config.collection.as_deref()).await?
    {
        return Err(OperatorError::LandedNothing {
            run: run.to_string(),
            collection: config.collection.clone(),
        });
    }
    let mut requeued = Requeued::default();
    // Connected only when a dead letter needs it.
    let database = tokio::sync::OnceCell::new();
    for id in ids {
        let Some(row) = client
            .query_opt(
                &format!("SELECT subject, payload, withheld FROM {table} WHERE id = $1"),
                &[&id],
            )
            .await
            .doing("reading a dead letter")?
        else {
            // Requeued by another requeue meanwhile.
            continue;
        };
        let subject: String = row.try_get(0).doing("reading a dead letter")?;
        let mut payload: Vec<u8> = row.try_get(1).doing("reading a dead letter")?;
        let withheld: Option<Vec<String>> = row.try_get(2).doing("reading a dead letter")?;
        if let Some(withheld) = withheld {
            if withheld.iter().any(|w| w == WITHHELD_ALL) {
                requeued.empty += 1;
                continue;
            }
            let database = database
                .get_or_try_init(|| source::connect(&config.mongo))
                .await?;
            payload = reread(database, &payload).await?;
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("requeue-{}-{id}", broker.names.stream()).as_str(),
        );
        let published = async {
            broker
                .jetstream
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await?
                .await
        }
        .await
        .map_err(|e| OperatorError::Requeue {
            subject: subject.clone(),
            source: e.into(),
        })?;
        tracing::debug!(
            id,
            subject,
            duplicate = published.duplicate,
            "dead letter requeued"
        );
        client
            .execute(&format!("DELETE FROM {table} WHERE id = $1"), &[&id])
            .await
            .map_err(|e| PgError::new("removing a requeued dead letter", e))?;
        requeued.messages += 1;
    }
    Ok(requeued)
}

/// A withheld batch with its documents read again from MongoDB; those gone since
/// leave it (and their change, for a batch of the change stream).
async fn reread(database: &source::Source, payload: &[u8]) -> Result<Vec<u8>, OperatorError> {
    let unreadable = |detail: String| OperatorError::Unreadable {
        what: "a withheld dead letter".to_string(),
        detail,
    };
    let plain = compression::unpack(payload).map_err(|e| unreadable(e.to_string()))?;
    let envelope = Envelope::decode(&plain).map_err(|e| unreadable(e.to_string()))?;
    let documents = database.collection::<bson::RawDocumentBuf>(&envelope.collection);
    let mut fresh = envelope.clone();
    fresh.docs.clear();
    fresh.changes.clear();
    for (i, doc) in envelope.docs.iter().enumerate() {
        let change = envelope.changes.get(i).copied();
        let Doc::Inline(raw) = doc else {
            // A document in the object store was never withheld.
            fresh.docs.push(doc.clone());
            fresh.changes.extend(change);
            continue;
        };
        if change.is_some_and(|c| c.op == ChangeOp::Delete) {
            fresh.docs.push(doc.clone());
            fresh.changes.extend(change);
            continue;
        }
        let id = bson::RawDocument::from_bytes(raw)
            .ok()
            .and_then(|d| d.get("_id").ok().flatten())
            .and_then(|id| bson::Bson::try_from(id).ok());
        let Some(id) = id else { continue };
        let found = documents
            .find_one(bson::doc! { "_id": id })
            .await
            .map_err(|e| {
                source::SourceError::read(format!("reading {}", envelope.collection), &e)
            })?;
        if let Some(found) = found {
            fresh
                .docs
                .push(Doc::Inline(std::borrow::Cow::Owned(found.into_bytes())));
            fresh.changes.extend(change);
        }
    }
    Ok(fresh.encode())
}
