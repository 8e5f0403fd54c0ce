//! The snapshot batch being filled from one part's documents: cut by count and bytes,
//! large documents sent through the object store, each closed batch published with the
//! checkpoint it moves the part to once acknowledged.

use std::borrow::Cow;
use std::collections::HashMap;

use bson::{Bson, RawDocument};
use common::batch::{BatchBuilder, BatchLimits, Doc, Envelope};
use common::blob;
use common::broker::Broker;
use common::compression::{self, Compression};
use common::run_state::Checkpoint;

use crate::error::ProducerError;
use crate::publisher::Publisher;
use source::ranges;

/// The batch being filled and where the collection will stand once it is acknowledged.
pub(super) struct Batches<'a> {
    broker: &'a Broker,
    name: &'a str,
    run: &'a str,
    limits: BatchLimits,
    /// How each batch is packed for NATS.
    compression: Compression,
    builder: BatchBuilder,
    pub(super) publisher: Publisher,
    pub(super) progress: Checkpoint,
    /// `_id` of the last document published: where the checkpoint stands.
    last_published: Option<Bson>,
    /// `_id`s of the batch's documents sent through the object store, by object name:
    /// the only ones whose `_id` the batch does not hold.
    blob_ids: HashMap<String, Bson>,
    /// The trace of the batch being filled, and its `page` child (reading from MongoDB).
    batch_span: Option<(tracing::Span, tracing::Span)>,
    pub(super) progress_bar: Option<indicatif::ProgressBar>,
    metrics: &'a crate::metrics::Metrics,
}

/// A document's `_id`, read when a batch closes (not for every document).
fn id_of(document: &RawDocument) -> Option<Bson> {
    document
        .get("_id")
        .ok()
        .flatten()
        .and_then(|id| Bson::try_from(id).ok())
}

impl<'a> Batches<'a> {
    /// An empty batch of collection `name` of `run`, the part standing at `progress`.
    pub(super) fn new(
        broker: &'a Broker,
        (run, name): (&'a str, &'a str),
        (limits, compression): (BatchLimits, Compression),
        publisher: Publisher,
        progress: Checkpoint,
        metrics: &'a crate::metrics::Metrics,
    ) -> Self {
        Batches {
            broker,
            name,
            run,
            limits,
            compression,
            builder: BatchBuilder::new(limits),
            publisher,
            progress,
            last_published: None,
            blob_ids: HashMap::new(),
            batch_span: None,
            progress_bar: None,
            metrics,
        }
    }

    pub(super) async fn add(&mut self, document: &RawDocument) -> Result<(), ProducerError> {
        let bytes = document.as_bytes();
        let doc = if self.limits.fits_inline(bytes.len()) {
            Doc::Inline(Cow::Owned(bytes.to_vec()))
        } else {
            let blob = self.store_blob(bytes.to_vec()).await?;
            if let (Doc::Blob { name, .. }, Some(id)) = (&blob, id_of(document)) {
                self.blob_ids.insert(name.clone(), id);
            }
            blob
        };
        if self.builder.would_overflow(&doc) {
            self.flush().await?;
        }
        if self.batch_span.is_none() {
            self.batch_span = Some(self.start_batch_span());
        }
        self.builder.push(doc);
        if self.builder.is_full() {
            self.flush().await?;
        }
        Ok(())
    }

    /// `_id` of the last document in `docs`.
    fn last_id(&self, docs: &[Doc<'_>]) -> Option<Bson> {
        match docs.last()? {
            Doc::Inline(bytes) => id_of(RawDocument::from_bytes(bytes).ok()?),
            Doc::Blob { name, .. } => self.blob_ids.get(name).cloned(),
        }
    }

    /// `_id` of the last document read: in the batch being filled, or published.
    pub(super) fn last_read(&self) -> Option<Bson> {
        if self.builder.is_empty() {
            self.last_published.clone()
        } else {
            self.last_id(self.builder.docs())
        }
    }

    /// A document larger than a message goes to the object store, named by its hash.
    async fn store_blob(&self, bytes: Vec<u8>) -> Result<Doc<'static>, ProducerError> {
        let name = blob::snapshot_name(self.run, &bytes);
        blob::store(&self.broker.blobs, name, &bytes)
            .await
            .map_err(|err| ProducerError::Blob {
                collection: self.name.to_string(),
                source: err,
            })
    }

    /// Each batch is the root of its own trace, so that trace sampling picks whole
    /// batches, from MongoDB page to PostgreSQL commit.
    fn start_batch_span(&self) -> (tracing::Span, tracing::Span) {
        let batch = tracing::info_span!(
            parent: None,
            "batch",
            run = self.run,
            collection = self.name,
            seq = self.progress.batches,
            batch_id = tracing::field::Empty,
            documents = tracing::field::Empty,
            bytes = tracing::field::Empty,
        );
        let page = tracing::info_span!(parent: &batch, "page", source = "mongodb");
        (batch, page)
    }

    pub(super) async fn flush(&mut self) -> Result<(), ProducerError> {
        let docs = self.builder.take();
        if docs.is_empty() {
            return Ok(());
        }
        self.publish(docs).await
    }

    /// Publishes a batch of no documents: what makes an empty collection's table.
    pub(super) async fn flush_empty(&mut self) -> Result<(), ProducerError> {
        self.publish(Vec::new()).await
    }

    /// Publishes `docs` as one batch, or, when packed it would still not fit a message
    /// (a batch stretched by how much the last one shrank, of documents that shrink
    /// less), as two halves, each cut again until it fits; one document always fits.
    async fn publish(&mut self, docs: Vec<Doc<'static>>) -> Result<(), ProducerError> {
        // What is left to publish, the next batch on top.
        let mut left = vec![docs];
        while let Some(docs) = left.pop() {
            let envelope = Envelope::new(self.run, self.name, self.progress.batches, docs);
            let plain = envelope.encode();
            let plain_len = plain.len();
            let payload = compression::pack(plain, self.compression);
            if payload.len() > self.limits.max_doc_bytes && envelope.docs.len() > 1 {
                let mut first = envelope.docs;
                let second = first.split_off(first.len() / 2);
                tracing::debug!(
                    collection = self.name,
                    documents = first.len() + second.len(),
                    packed = payload.len(),
                    "a packed batch over max_payload is cut in two"
                );
                left.push(second);
                left.push(first);
                continue;
            }
            if self.compression != Compression::None {
                // The next batch aims at four fifths of a message once packed.
                self.builder
                    .stretch(0.8 * plain_len as f64 / payload.len() as f64);
            }
            self.send(envelope, plain_len, payload).await?;
        }
        Ok(())
    }

    /// Sends one batch whose envelope was `plain_len` bytes, packed as `payload`.
    async fn send(
        &mut self,
        envelope: Envelope<'_>,
        plain_len: usize,
        payload: Vec<u8>,
    ) -> Result<(), ProducerError> {
        let (batch_span, page_span) = self
            .batch_span
            .take()
            .unwrap_or_else(|| self.start_batch_span());
        page_span.record("documents", envelope.docs.len());
        drop(page_span);
        let count = envelope.docs.len() as u64;
        if let Some(id) = self.last_id(&envelope.docs) {
            self.last_published = Some(id);
        }
        for doc in &envelope.docs {
            if let Doc::Blob { name, .. } = doc {
                self.blob_ids.remove(name);
            }
        }
        let seq = envelope.seq;
        // The checkpoint counts the documents' bytes, the metric what NATS carried.
        self.progress.bytes += plain_len as u64;
        self.progress.batches += 1;
        self.progress.documents += count;
        self.metrics
            .published(self.name, count, payload.len() as u64);
        self.progress.last_id = self
            .last_published
            .clone()
            .map(Bson::into_canonical_extjson);
        self.progress.last_id_bson = self.last_published.clone().map(ranges::encode);
        let batch_id = envelope.batch_id.into_owned();
        batch_span.record("batch_id", batch_id.as_str());
        batch_span.record("documents", count);
        batch_span.record("bytes", payload.len());
        if let Some(bar) = &self.progress_bar {
            bar.set_position(self.progress.documents);
        }
        self.publisher
            .publish(
                seq,
                batch_id,
                payload.into(),
                self.progress.clone(),
                batch_span,
            )
            .await
    }
}
