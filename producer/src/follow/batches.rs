//! The change batches being filled while the stream is read, one per collection:
//! cut by count and by bytes (each change record counted), published together and
//! acknowledged before the checkpoint moves (see [`super::stream`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::jetstream::context::PublishAckFuture;
use bson::{doc, Bson, Document, RawDocumentBuf};
use bytes::Bytes;
use common::batch::{BatchBuilder, BatchLimits, Change, ChangeOp, Doc, Envelope, Version};
use common::blob;
use common::broker::Broker;
use common::compression;
use common::run_state::{ClusterTime, StreamCheckpoint};
use futures::TryStreamExt;
use source::Source;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::RunConfig;
use crate::context::RunContext;
use crate::error::ProducerError;
use crate::metrics::Metrics;
use crate::publisher::{self, Sent};

use super::parts;
use source::change::{self as event, Event};
use source::mongo_detail;

/// The change batches being filled, one per collection.
pub(super) struct ChangeBatches<'a> {
    broker: &'a Broker,
    /// Ends a wait on a full stream.
    shutdown: &'a CancellationToken,
    config: &'a RunConfig,
    source: &'a Source,
    /// Per collection, the mapping's filter: a change to a document outside it
    /// becomes its delete.
    filters: &'a BTreeMap<String, Document>,
    metrics: &'a Metrics,
    pending: BTreeMap<String, Pending>,
    pub(super) events_pending: usize,
    /// The version of the last event read: the next one of the same cluster time
    /// comes after it.
    last: Option<Version>,
    pub(super) skipped: u64,
    /// Changes of collections the run does not take (a run of the whole database
    /// reads them all).
    pub(super) skipped_other: u64,
}

/// A change batch sent, waiting for its acknowledgement.
struct SentChanges {
    collection: String,
    seq: u64,
    subject: String,
    batch_id: String,
    payload: Bytes,
    ack: Option<PublishAckFuture>,
    sent_at: std::time::Instant,
}

struct Pending {
    /// Batches closed at the byte limit, waiting for the next flush.
    closed: Vec<Closed>,
    builder: BatchBuilder,
    changes: Vec<Change>,
    /// Per change, where it goes among the flush's parts ([`parts::spread_of`]).
    spreads: Vec<u64>,
}

/// A batch's documents, their changes and spreads.
type Closed = (Vec<Doc<'static>>, Vec<Change>, Vec<u64>);

impl<'a> ChangeBatches<'a> {
    /// The batches of the run of `ctx`, its follower stopped by `shutdown`, the last
    /// version read `last`.
    pub(super) fn new(
        ctx: &'a RunContext,
        shutdown: &'a CancellationToken,
        last: Option<Version>,
    ) -> Self {
        ChangeBatches {
            broker: &ctx.broker,
            shutdown,
            config: &ctx.config,
            source: &ctx.source,
            filters: &ctx.filters,
            metrics: &ctx.metrics,
            pending: BTreeMap::new(),
            events_pending: 0,
            last,
            skipped: 0,
            skipped_other: 0,
        }
    }

    /// Whether to publish now: a batch is full, or the events held reach a batch's
    /// worth (memory stays bounded whatever the write rate).
    pub(super) fn is_full(&self) -> bool {
        self.events_pending >= self.config.batch_size.get()
            || self
                .pending
                .values()
                .any(|p| p.builder.is_full() || !p.closed.is_empty())
    }

    pub(super) async fn add(&mut self, read: Event) -> Result<(), ProducerError> {
        let Event::Change {
            collection,
            op,
            document,
            reread,
            cluster_time,
        } = read
        else {
            return Ok(());
        };
        let version = self.version(cluster_time);
        let document = match reread {
            Some(id) => self.reread(&collection, id, cluster_time).await?,
            None => document,
        };
        let Some(document) = document else {
            self.skipped += 1;
            return Ok(());
        };
        let run = self.config.run.run.as_str();
        let limits = BatchLimits::for_changes(
            self.config.batch_size.get(),
            self.broker.max_payload(),
            run,
            &collection,
        );
        let fits = limits.fits_inline(document.as_bytes().len());
        // A document kept inline is checked against the collection's filter with its
        // batch, when it is published (one query for the batch); a large one now.
        let (op, document) = if fits {
            (op, document)
        } else {
            self.filtered(&collection, op, document, cluster_time)
                .await?
        };
        let spread = parts::spread_of(&document);
        let bytes = document.into_bytes();
        let doc = if fits {
            Doc::Inline(Cow::Owned(bytes))
        } else {
            let name = blob::change_name(run, version);
            blob::store(&self.broker.blobs, name, &bytes)
                .await
                .map_err(|err| ProducerError::Blob {
                    collection: collection.clone(),
                    source: err,
                })?
        };
        let pending = self.pending.entry(collection).or_insert_with(|| Pending {
            closed: Vec::new(),
            builder: BatchBuilder::new(limits),
            changes: Vec::new(),
            spreads: Vec::new(),
        });
        if pending.builder.would_overflow(&doc) {
            let changes = std::mem::take(&mut pending.changes);
            let spreads = std::mem::take(&mut pending.spreads);
            pending
                .closed
                .push((pending.builder.take(), changes, spreads));
        }
        pending.builder.push(doc);
        pending.changes.push(Change { op, version });
        pending.spreads.push(spread);
        self.events_pending += 1;
        Ok(())
    }

    fn version(&mut self, cluster_time: ClusterTime) -> Version {
        let ordinal = match self.last {
            Some(last)
                if last.time == cluster_time.time && last.increment == cluster_time.increment =>
            {
                last.ordinal + 1
            }
            _ => 0,
        };
        let version = Version {
            time: cluster_time.time,
            increment: cluster_time.increment,
            ordinal,
        };
        self.last = Some(version);
        version
    }

    /// A change of a filtered collection as it lands: a document the filter does not
    /// match (now: the event's document is read as of now too) is deleted from the
    /// tables, whatever the event did, so that a document leaving the filter leaves
    /// them. The change that follows a later one is checked again, so the last change
    /// of each document leaves the tables as the filter sees it now.
    async fn filtered(
        &self,
        collection: &str,
        op: ChangeOp,
        document: RawDocumentBuf,
        at: ClusterTime,
    ) -> Result<(ChangeOp, RawDocumentBuf), ProducerError> {
        let Some(filter) = self.filters.get(collection) else {
            return Ok((op, document));
        };
        if op == ChangeOp::Delete {
            return Ok((op, document));
        }
        let id = document
            .get("_id")
            .ok()
            .flatten()
            .and_then(|id| Bson::try_from(id).ok())
            .ok_or_else(|| ProducerError::Follow {
                detail: format!("a change of {collection:?} without a readable _id"),
            })?;
        let failed = |e: mongodb::error::Error| ProducerError::Follow {
            detail: format!(
                "checking a change of {collection:?} against its filter: {}",
                mongo_detail(&e)
            ),
        };
        let mut session = source::clock::session_as_of(self.source.client(), Some(at))
            .await
            .map_err(failed)?;
        let matching = self
            .source
            .collection::<Document>(collection)
            .find_one(doc! { "$and": [{ "_id": id.clone() }, filter.clone()] })
            .projection(doc! { "_id": 1 })
            .session(&mut session)
            .await
            .map_err(failed)?;
        if matching.is_some() {
            return Ok((op, document));
        }
        let mut key = RawDocumentBuf::new();
        key.append(
            bson::cstr!("_id"),
            bson::RawBson::try_from(id).map_err(|e| ProducerError::Follow {
                detail: format!("a change of {collection:?}: {e}"),
            })?,
        );
        Ok((ChangeOp::Delete, key))
    }

    /// A batch of a filtered collection as it lands: each inline document the filter
    /// does not match now (one query for the whole batch) becomes the delete of its
    /// rows, whatever its event did, so that a document leaving the filter leaves the
    /// tables (see [`ChangeBatches::filtered`] for the reasoning).
    async fn keep_filtered(
        &self,
        collection: &str,
        docs: &mut [Doc<'static>],
        changes: &mut [Change],
    ) -> Result<(), ProducerError> {
        let Some(filter) = self.filters.get(collection) else {
            return Ok(());
        };
        let id_of = |doc: &Doc<'_>| match doc {
            Doc::Inline(raw) => bson::RawDocument::from_bytes(raw)
                .ok()
                .and_then(|d| d.get("_id").ok().flatten())
                .map(bson::RawBson::from),
            Doc::Blob { .. } => None,
        };
        let checked: Vec<(usize, bson::RawBson)> = docs
            .iter()
            .zip(changes.iter())
            .enumerate()
            .filter(|(_, (_, change))| change.op != ChangeOp::Delete)
            .filter_map(|(i, (doc, _))| Some((i, id_of(doc)?)))
            .collect();
        if checked.is_empty() {
            return Ok(());
        }
        let ids: Vec<Bson> = checked
            .iter()
            .filter_map(|(_, id)| Bson::try_from(id.clone()).ok())
            .collect();
        let failed = |e: mongodb::error::Error| ProducerError::Follow {
            detail: format!(
                "checking changes of {collection:?} against its filter: {}",
                mongo_detail(&e)
            ),
        };
        // As of the batch's newest change at least, whichever member answers.
        let newest = changes
            .iter()
            .map(|c| c.version)
            .max()
            .map(|v| ClusterTime {
                time: v.time,
                increment: v.increment,
            });
        let mut session = source::clock::session_as_of(self.source.client(), newest)
            .await
            .map_err(failed)?;
        let matching: Vec<Document> = self
            .source
            .collection::<Document>(collection)
            .find(doc! { "$and": [{ "_id": { "$in": ids } }, filter.clone()] })
            .projection(doc! { "_id": 1 })
            .session(&mut session)
            .await
            .map_err(failed)?
            .stream(&mut session)
            .try_collect()
            .await
            .map_err(failed)?;
        // `_id`s compared as their BSON bytes: what MongoDB compares them by.
        let key = |id: &Bson| {
            let mut d = Document::new();
            d.insert("_id", id.clone());
            d.to_vec().unwrap_or_default()
        };
        let inside: std::collections::HashSet<Vec<u8>> = matching
            .iter()
            .filter_map(|d| d.get("_id").map(key))
            .collect();
        for (i, id) in checked {
            let Ok(id) = Bson::try_from(id) else { continue };
            if inside.contains(&key(&id)) {
                continue;
            }
            let mut only_key = RawDocumentBuf::new();
            let raw = bson::RawBson::try_from(id).map_err(|e| ProducerError::Follow {
                detail: format!("a change of {collection:?}: {e}"),
            })?;
            only_key.append(bson::cstr!("_id"), raw);
            docs[i] = Doc::Inline(Cow::Owned(only_key.into_bytes()));
            changes[i].op = ChangeOp::Delete;
        }
        Ok(())
    }

    /// A document left out of its event for its size, read again by `_id`: it is at
    /// least as new as the event.
    async fn reread(
        &self,
        collection: &str,
        id: Bson,
        at: ClusterTime,
    ) -> Result<Option<RawDocumentBuf>, ProducerError> {
        let failed = |e: mongodb::error::Error| ProducerError::Follow {
            detail: format!(
                "reading a large document of {collection:?} again: {}",
                mongo_detail(&e)
            ),
        };
        let mut session = source::clock::session_as_of(self.source.client(), Some(at))
            .await
            .map_err(failed)?;
        self.source
            .collection::<RawDocumentBuf>(collection)
            .find_one(doc! { "_id": id })
            .session(&mut session)
            .await
            .map_err(failed)
    }

    /// Publishes every pending batch, waits for the stream to acknowledge them all,
    /// and moves the checkpoint to `token`. With `None` the checkpoint must not be
    /// saved: its token would lag behind its last version.
    pub(super) async fn flush(
        &mut self,
        checkpoint: &mut StreamCheckpoint,
        token: Option<Document>,
    ) -> Result<(), ProducerError> {
        let run = self.config.run.run.as_str();
        let mut sent: Vec<SentChanges> = Vec::new();
        let pending = std::mem::take(&mut self.pending);
        let events = self.events_pending as u64;
        let partitions = self.config.change_partitions.get();
        let batches = pending.into_iter().flat_map(|(collection, mut pending)| {
            let open = (pending.builder.take(), pending.changes, pending.spreads);
            pending
                .closed
                .into_iter()
                .chain(std::iter::once(open))
                .flat_map(move |(docs, changes, spreads)| {
                    let count = parts::parts_for(docs.len(), partitions);
                    parts::cut(docs, changes, &spreads, count)
                })
                .map(move |batch| (collection.clone(), batch))
        });
        for (collection, (mut docs, mut changes)) in batches {
            if docs.is_empty() {
                continue;
            }
            self.keep_filtered(&collection, &mut docs, &mut changes)
                .await?;
            let seq = checkpoint.batches;
            let envelope = Envelope::changes(run, &collection, seq, docs, changes);
            let payload = Bytes::from(compression::pack(
                envelope.encode(),
                self.config.compression,
            ));
            // Each change batch is the root of its trace, continued by its consumer.
            let span = tracing::info_span!(
                parent: None,
                "change_batch",
                run,
                collection = %collection,
                seq,
                batch_id = %envelope.batch_id,
                changes = envelope.changes.len(),
            );
            let subject = self
                .broker
                .names
                .change_subject(&self.config.run.run, &collection);
            let batch_id = envelope.batch_id.to_string();
            let sent_at = std::time::Instant::now();
            // A failed send is sent again while its acknowledgement is awaited.
            let ack = publisher::send(&self.broker.jetstream, &subject, &batch_id, payload.clone())
                .instrument(span)
                .await
                .ok();
            common::crash::point("change-published");
            sent.push(SentChanges {
                collection,
                seq,
                subject,
                batch_id,
                payload,
                ack,
                sent_at,
            });
            checkpoint.batches += 1;
        }
        let published = sent.len() as u64;
        for batch in sent {
            let again = Sent {
                subject: &batch.subject,
                batch_id: &batch.batch_id,
                payload: &batch.payload,
                collection: &batch.collection,
                seq: batch.seq,
                sent_at: batch.sent_at,
                metrics: self.metrics,
            };
            publisher::acknowledged(&self.broker.jetstream, again, batch.ack, self.shutdown)
                .await?;
        }
        self.events_pending = 0;
        self.metrics.changes(events, published);
        checkpoint.events += events;
        checkpoint.last = self.last;
        if let Some(token) = token {
            if let Some(time) = event::token_time(&token) {
                checkpoint.read_until = checkpoint.read_until.max(time);
            }
            checkpoint.resume_token = Bson::Document(token).into_canonical_extjson();
        }
        checkpoint.saved_at_ms = now_ms();
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, for when a checkpoint was saved.
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
