//! The batch envelope: what one NATS message carries from the producer to a consumer.
//!
//! A batch is one page of a collection: its documents as raw BSON bytes, untouched, so
//! the producer does no per-field work and all mapping happens in the consumers, where
//! it scales out. The envelope is msgpack (rmp-serde) with named fields, so a consumer
//! can read `version` first and refuse formats it does not know instead of misreading
//! them.
//!
//! A document too large to fit in one NATS message (`max_payload`, 1 MiB by default,
//! while MongoDB allows 16 MiB) travels through the JetStream object store; the batch
//! then carries a [`Doc::Blob`] reference to it.
//!
//! The batch id is a hash of the run, the collection and the document bytes, so the same
//! page published twice (a retried publish, a rerun producer) has the same id, and the
//! stream's duplicate window and the consumers' ledger can drop the copy.
//!
//! A batch of the change stream (`producer run --follow`) is the same envelope with
//! one [`Change`] per document: what happened to it and its [`Version`]. Its `docs`
//! hold the full document after the change, or `{_id}` alone for a delete.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The envelope format this build writes. Bump it on any incompatible change.
///
/// Version 2 added [`Envelope::changes`]: a consumer of version 1 would have landed a
/// change batch as snapshot rows, so it must refuse it instead.
pub const FORMAT_VERSION: u16 = 2;

/// The oldest envelope format this build still reads (version 1 had no changes).
const OLDEST_READABLE: u16 = 1;

/// Bytes reserved in every message for the envelope's own fields (version, ids, names).
/// Run and collection names are added on top, see [`BatchLimits::new`].
const ENVELOPE_HEADROOM: usize = 512;

/// The msgpack framing one document costs inside the envelope: the enum tag and the
/// binary header. Overestimated on purpose; being a few bytes short would overflow.
const PER_DOC_OVERHEAD: usize = 24;

/// What one [`Change`] of a change batch costs in the envelope besides its document:
/// its msgpack with field names at the largest (the longest operation name, every
/// number at `u32::MAX`) is 59 bytes; see the test that encodes it. Left out of the
/// byte bound, a batch of a backlog of small documents ran 15% over `max_payload`.
const PER_CHANGE_OVERHEAD: usize = 64;

/// One page of a collection, ready to publish or just received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<'a> {
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u16,
    /// Deterministic id: see [`BatchId::compute`].
    #[serde(borrow)]
    pub batch_id: Cow<'a, str>,
    /// The run the batch belongs to.
    #[serde(borrow)]
    pub run: Cow<'a, str>,
    /// The collection its documents come from.
    #[serde(borrow)]
    pub collection: Cow<'a, str>,
    /// Position of this page in the collection's `_id` order, from 0.
    pub seq: u64,
    /// The documents, as raw BSON or references to the object store.
    #[serde(borrow)]
    pub docs: Vec<Doc<'a>>,
    /// For a batch of the change stream, one entry per document of `docs`, in the
    /// stream's order; empty for a snapshot batch.
    #[serde(default)]
    pub changes: Vec<Change>,
}

/// What a change event did to its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeOp {
    /// A new document.
    Insert,
    /// Fields of a document changed (the event carries the whole document after it).
    Update,
    /// A document replaced whole.
    Replace,
    /// A document deleted (the event carries `{_id}` alone).
    Delete,
}

impl ChangeOp {
    /// MongoDB's name of the operation, as the rejects table keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Replace => "replace",
            ChangeOp::Delete => "delete",
        }
    }
}

/// Where a change stands in MongoDB's history: the event's cluster time and its
/// position among the events sharing that time (the operations of one transaction
/// share one cluster time). Later is greater; the landing side lets a change win only
/// over an older version of its document, so changes may land in any order.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version {
    /// Seconds of the cluster time.
    pub time: u32,
    /// The operation's ordinal within that second.
    pub increment: u32,
    /// The event's position among the events of the same cluster time.
    pub ordinal: u32,
}

impl Version {
    /// Big-endian bytes: compared as bytes (PostgreSQL's `bytea` order), they order as
    /// the versions do.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut out = [0; 12];
        out[..4].copy_from_slice(&self.time.to_be_bytes());
        out[4..8].copy_from_slice(&self.increment.to_be_bytes());
        out[8..].copy_from_slice(&self.ordinal.to_be_bytes());
        out
    }
}

/// One change event of a change batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What happened.
    pub op: ChangeOp,
    /// When, in the order of the change stream.
    pub version: Version,
}

/// One document of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Doc<'a> {
    /// The document's raw BSON bytes.
    Inline(#[serde(borrow, with = "serde_bytes")] Cow<'a, [u8]>),
    /// A document stored in the object store under `name` (its content hash, or for a
    /// change its event's version), because it is larger than a NATS message may be.
    Blob {
        /// The object's name.
        name: String,
        /// The document's size in bytes.
        len: u64,
    },
}

/// Why an envelope could not be read. Every variant is a poison message: the same bytes
/// fail the same way on every delivery.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not an envelope.
    #[error("not a batch envelope: {0}")]
    Malformed(#[from] rmp_serde::decode::Error),
    /// An envelope of a format this build does not read.
    #[error("envelope format version {found} is not supported (this build reads versions {OLDEST_READABLE} to {FORMAT_VERSION}); upgrade the consumers")]
    UnknownVersion {
        /// The format version found.
        found: u16,
    },
}

#[derive(Deserialize)]
struct VersionProbe {
    version: u16,
}

impl<'a> Envelope<'a> {
    /// Builds an envelope for `docs`, computing its batch id.
    pub fn new(run: &'a str, collection: &'a str, seq: u64, docs: Vec<Doc<'a>>) -> Self {
        let batch_id = BatchId::compute(run, collection, &docs);
        Envelope {
            version: FORMAT_VERSION,
            batch_id: Cow::Owned(batch_id.0),
            run: Cow::Borrowed(run),
            collection: Cow::Borrowed(collection),
            seq,
            docs,
            changes: Vec::new(),
        }
    }

    /// Builds an envelope of change events: `docs[i]` is the document after
    /// `changes[i]`.
    pub fn changes(
        run: &'a str,
        collection: &'a str,
        seq: u64,
        docs: Vec<Doc<'a>>,
        changes: Vec<Change>,
    ) -> Self {
        let mut envelope = Envelope::new(run, collection, seq, docs);
        let mut hasher = blake3::Hasher::new();
        hasher.update(envelope.batch_id.as_bytes());
        for change in &changes {
            hasher.update(change.op.as_str().as_bytes());
            hasher.update(&change.version.to_bytes());
        }
        envelope.batch_id = Cow::Owned(hasher.finalize().to_hex()[..32].to_string());
        envelope.changes = changes;
        envelope
    }

    /// Serializes to msgpack with field names (see the module doc for why).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain structs of strings, integers and bytes into a Vec cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Reads an envelope, borrowing strings and document bytes from `bytes`.
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are not an envelope or are of another version.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let probe: VersionProbe = rmp_serde::from_slice(bytes)?;
        if !(OLDEST_READABLE..=FORMAT_VERSION).contains(&probe.version) {
            return Err(DecodeError::UnknownVersion {
                found: probe.version,
            });
        }
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// The deterministic id of a batch: the same run, collection and documents give the
/// same id, whoever publishes them and however often.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchId(pub String);

impl BatchId {
    /// The id of a batch: a hash of its run, collection and documents, so the same
    /// batch published again has the same id and is dropped by the stream's dedupe
    /// window or skipped by the ledger.
    ///
    /// The hashed bytes are the run, the collection and each document, each behind its
    /// length. They are laid out in one buffer and hashed in one call: BLAKE3 hashes a
    /// long input many 1 KiB chunks at a time with SIMD, where one small call per
    /// document went 64 bytes at a time (12% of the producer's CPU on small documents).
    /// The hash is that of the same bytes either way, so ids do not change.
    pub fn compute(run: &str, collection: &str, docs: &[Doc<'_>]) -> Self {
        let framed = |doc: &Doc<'_>| match doc {
            Doc::Inline(bytes) => 9 + bytes.len(),
            Doc::Blob { name, .. } => 9 + name.len(),
        };
        let mut input = Vec::with_capacity(
            16 + run.len() + collection.len() + docs.iter().map(framed).sum::<usize>(),
        );
        for part in [run.as_bytes(), collection.as_bytes()] {
            input.extend_from_slice(&(part.len() as u64).to_le_bytes());
            input.extend_from_slice(part);
        }
        for doc in docs {
            match doc {
                Doc::Inline(bytes) => {
                    input.push(b'i');
                    input.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    input.extend_from_slice(bytes);
                }
                Doc::Blob { name, len } => {
                    input.push(b'b');
                    input.extend_from_slice(&len.to_le_bytes());
                    input.extend_from_slice(name.as_bytes());
                }
            }
        }
        // 128 bits: collisions are out of reach for any number of batches.
        let hash = blake3::hash(&input);
        BatchId(hash.to_hex()[..32].to_string())
    }
}

/// How large a batch may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most documents in one batch (`--batch-size`).
    pub max_docs: usize,
    /// Most bytes of documents in one batch, so the encoded envelope stays within the
    /// NATS server's `max_payload`.
    pub max_doc_bytes: usize,
    /// What each document costs in the envelope besides its bytes: its framing, and
    /// for a change batch its [`Change`].
    pub per_doc: usize,
}

impl BatchLimits {
    /// Limits for a server with `max_payload`, leaving room for the envelope's fields.
    pub fn new(max_docs: usize, max_payload: usize, run: &str, collection: &str) -> Self {
        let headroom = ENVELOPE_HEADROOM + run.len() + collection.len();
        BatchLimits {
            max_docs: max_docs.max(1),
            max_doc_bytes: max_payload
                .saturating_sub(headroom)
                .max(PER_DOC_OVERHEAD + PER_CHANGE_OVERHEAD + 1),
            per_doc: PER_DOC_OVERHEAD,
        }
    }

    /// Limits for a change batch: each document comes with its [`Change`].
    pub fn for_changes(max_docs: usize, max_payload: usize, run: &str, collection: &str) -> Self {
        BatchLimits {
            per_doc: PER_DOC_OVERHEAD + PER_CHANGE_OVERHEAD,
            ..BatchLimits::new(max_docs, max_payload, run, collection)
        }
    }

    /// Whether a document of `len` bytes can travel inline, or needs the object store.
    pub fn fits_inline(&self, len: usize) -> bool {
        len + self.per_doc <= self.max_doc_bytes
    }
}

/// How far a packed batch may outgrow a plain one: the documents of a batch packed
/// with LZ4 may take up to this many times [`BatchLimits::max_doc_bytes`] (see
/// [`BatchBuilder::stretch`]). Twice holds a batch of 5,000 typed users (1.9 MB, 0.7 MB
/// packed) where one message cut it at 2,600; more would only grow what each process
/// holds per batch.
pub const MAX_STRETCH: f64 = 2.0;

/// Collects documents into batches bounded by count and bytes.
#[derive(Debug)]
pub struct BatchBuilder {
    limits: BatchLimits,
    docs: Vec<Doc<'static>>,
    bytes: usize,
    /// The byte bound of the batch being filled: `max_doc_bytes`, or more for batches
    /// that are packed (see [`BatchBuilder::stretch`]).
    max_bytes: usize,
}

impl BatchBuilder {
    /// An empty batch that will hold at most what `limits` allow.
    pub fn new(limits: BatchLimits) -> Self {
        BatchBuilder {
            limits,
            docs: Vec::new(),
            bytes: 0,
            max_bytes: limits.max_doc_bytes,
        }
    }

    /// Lets the next batches hold `factor` times the bytes one message holds (between 1
    /// and [`MAX_STRETCH`]), for batches that shrink by more than that when packed:
    /// the caller packs each batch, stretches by what the last one shrank, and cuts a
    /// packed batch that still does not fit one message.
    pub fn stretch(&mut self, factor: f64) {
        let factor = if factor.is_finite() {
            factor.clamp(1.0, MAX_STRETCH)
        } else {
            1.0
        };
        // At most twice `max_doc_bytes`, which is below NATS' 64 MiB limit.
        self.max_bytes = (self.limits.max_doc_bytes as f64 * factor) as usize;
    }

    /// Whether adding `doc` would take the batch past its byte limit: the caller then
    /// closes the batch first. An empty batch takes any document that fits inline.
    pub fn would_overflow(&self, doc: &Doc<'_>) -> bool {
        !self.docs.is_empty() && self.bytes + self.size(doc) > self.max_bytes
    }

    /// Adds a document. The caller sends a document that does not
    /// [`BatchLimits::fits_inline`] through the object store and pushes its
    /// [`Doc::Blob`] reference instead.
    pub fn push(&mut self, doc: Doc<'static>) {
        self.bytes += self.size(&doc);
        self.docs.push(doc);
    }

    /// Whether the batch holds `max_docs` documents.
    pub fn is_full(&self) -> bool {
        self.docs.len() >= self.limits.max_docs
    }

    /// Takes what has been collected, possibly nothing.
    pub fn take(&mut self) -> Vec<Doc<'static>> {
        self.bytes = 0;
        std::mem::take(&mut self.docs)
    }

    /// Whether no document has been pushed since the last take.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// The documents pushed since the last take.
    pub fn docs(&self) -> &[Doc<'static>] {
        &self.docs
    }

    /// What `doc` adds to the encoded envelope, at most.
    fn size(&self, doc: &Doc<'_>) -> usize {
        self.limits.per_doc
            + match doc {
                Doc::Inline(bytes) => bytes.len(),
                Doc::Blob { name, .. } => name.len() + 16,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(len: usize, fill: u8) -> Doc<'static> {
        Doc::Inline(Cow::Owned(vec![fill; len]))
    }

    #[test]
    fn envelope_round_trips_and_borrows() {
        let docs = vec![
            inline(10, 1),
            Doc::Blob {
                name: crate::blob::snapshot_name("run-1", b"big"),
                len: 3,
            },
            inline(0, 0),
        ];
        let envelope = Envelope::new("run-1", "users", 7, docs);
        let bytes = envelope.encode();
        let decoded = Envelope::decode(&bytes).expect("decodes");
        assert_eq!(decoded, envelope);
        assert!(matches!(decoded.docs[0], Doc::Inline(Cow::Borrowed(_))));
        assert!(matches!(decoded.collection, Cow::Borrowed(_)));
    }

    /// Batch ids are compared across builds (a producer of a newer build resuming a
    /// run, the stream's duplicate window, the ledger): this pins the bytes hashed.
    #[test]
    fn batch_id_is_the_hash_of_the_framed_run_collection_and_documents() {
        let docs = vec![
            inline(3000, 7),
            Doc::Blob {
                name: "blob-name".to_string(),
                len: 9,
            },
            inline(0, 0),
        ];
        let mut hasher = blake3::Hasher::new();
        for part in [&b"run-1"[..], b"users"] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        hasher.update(b"i");
        hasher.update(&3000u64.to_le_bytes());
        hasher.update(&[7; 3000]);
        hasher.update(b"b");
        hasher.update(&9u64.to_le_bytes());
        hasher.update(b"blob-name");
        hasher.update(b"i");
        hasher.update(&0u64.to_le_bytes());
        let expected = hasher.finalize().to_hex()[..32].to_string();
        assert_eq!(BatchId::compute("run-1", "users", &docs).0, expected);
    }

    #[test]
    fn batch_id_depends_on_content_only() {
        let a = Envelope::new("r", "c", 0, vec![inline(5, 1)]);
        let b = Envelope::new("r", "c", 9, vec![inline(5, 1)]);
        let c = Envelope::new("r", "c", 0, vec![inline(5, 2)]);
        let d = Envelope::new("r", "other", 0, vec![inline(5, 1)]);
        assert_eq!(a.batch_id, b.batch_id);
        assert_ne!(a.batch_id, c.batch_id);
        assert_ne!(a.batch_id, d.batch_id);
        assert_eq!(a.batch_id.len(), 32);
    }

    #[test]
    fn change_batches_round_trip_and_their_ids_depend_on_versions() {
        let version = |time, ordinal| Version {
            time,
            increment: 1,
            ordinal,
        };
        let change = |op, v| Change { op, version: v };
        let a = Envelope::changes(
            "r",
            "c",
            0,
            vec![inline(5, 1)],
            vec![change(ChangeOp::Update, version(10, 0))],
        );
        let bytes = a.encode();
        assert_eq!(Envelope::decode(&bytes).expect("decodes"), a);
        let b = Envelope::changes(
            "r",
            "c",
            0,
            vec![inline(5, 1)],
            vec![change(ChangeOp::Update, version(10, 1))],
        );
        assert_ne!(a.batch_id, b.batch_id);
        assert_ne!(
            a.batch_id,
            Envelope::new("r", "c", 0, vec![inline(5, 1)]).batch_id
        );
        assert!(version(10, 1) > version(10, 0));
        assert!(version(11, 0) > version(10, 7));
        assert!(version(11, 0).to_bytes() > version(10, 7).to_bytes());
        let late = Version {
            time: u32::MAX,
            increment: 0,
            ordinal: 0,
        };
        assert!(
            late.to_bytes() > version(10, 7).to_bytes(),
            "no 2038 problem"
        );
    }

    #[test]
    fn garbage_and_other_versions_are_refused() {
        assert!(matches!(
            Envelope::decode(b"\xff\x00garbage"),
            Err(DecodeError::Malformed(_))
        ));
        let mut envelope = Envelope::new("r", "c", 0, vec![inline(1, 1)]);
        envelope.version = FORMAT_VERSION + 1;
        let bytes = envelope.encode();
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(DecodeError::UnknownVersion { found }) if found == FORMAT_VERSION + 1
        ));
    }

    /// Drives a builder the way the producer does.
    fn split(limits: BatchLimits, docs: Vec<Doc<'static>>) -> Vec<Vec<Doc<'static>>> {
        let mut builder = BatchBuilder::new(limits);
        let mut batches = Vec::new();
        for doc in docs {
            if builder.would_overflow(&doc) {
                batches.push(builder.take());
            }
            builder.push(doc);
            if builder.is_full() {
                batches.push(builder.take());
            }
        }
        if !builder.is_empty() {
            batches.push(builder.take());
        }
        batches
    }

    /// How many documents of 100 bytes the builder takes before it would overflow.
    fn documents_held(builder: &mut BatchBuilder) -> usize {
        let mut held = 0;
        while !builder.would_overflow(&inline(100, 0)) {
            builder.push(inline(100, 0));
            held += 1;
        }
        builder.take();
        held
    }

    #[test]
    fn a_stretched_builder_holds_up_to_twice_the_bytes_of_a_message() {
        let limits = BatchLimits::new(1_000_000, 64 * 1024, "run", "collection");
        let mut builder = BatchBuilder::new(limits);
        let one = documents_held(&mut builder);
        assert_eq!(one, limits.max_doc_bytes / (100 + PER_DOC_OVERHEAD));
        builder.stretch(1.5);
        assert_eq!(
            documents_held(&mut builder),
            limits.max_doc_bytes * 3 / 2 / 124
        );
        for (factor, expected) in [(7.0, 2 * one), (0.3, one), (f64::NAN, one), (2.0, 2 * one)] {
            builder.stretch(factor);
            let held = documents_held(&mut builder);
            assert!(
                held.abs_diff(expected) <= 1,
                "x{factor}: {held} for {expected}"
            );
        }
    }

    #[test]
    fn builder_splits_by_count() {
        let limits = BatchLimits::new(3, 1 << 20, "r", "c");
        let batches = split(limits, (0..7).map(|i| inline(10, i)).collect());
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 1]);
    }

    #[test]
    fn builder_splits_by_bytes_and_every_batch_fits_the_payload() {
        let max_payload = 4096;
        let limits = BatchLimits::new(1000, max_payload, "run", "collection");
        let lens = [1000, 1500, 900, 3000, 10, 10, 2500, 700];
        assert!(lens.iter().all(|len| limits.fits_inline(*len)));
        let docs = lens
            .iter()
            .enumerate()
            .map(|(i, len)| inline(*len, i as u8))
            .collect();
        let batches = split(limits, docs);
        let all: Vec<u8> = batches
            .iter()
            .flatten()
            .map(|d| match d {
                Doc::Inline(b) => b[0],
                Doc::Blob { .. } => unreachable!(),
            })
            .collect();
        assert_eq!(all, (0..lens.len() as u8).collect::<Vec<_>>(), "order kept");
        assert!(batches.len() > 2);
        for (seq, docs) in batches.into_iter().enumerate() {
            let encoded = Envelope::new("run", "collection", seq as u64, docs).encode();
            assert!(
                encoded.len() <= max_payload,
                "{} > {max_payload}",
                encoded.len()
            );
        }
    }

    #[test]
    fn a_change_costs_at_most_its_overhead() {
        let worst = Change {
            op: ChangeOp::Replace,
            version: Version {
                time: u32::MAX,
                increment: u32::MAX,
                ordinal: u32::MAX,
            },
        };
        let encoded = rmp_serde::to_vec_named(&worst).expect("encodes");
        assert!(encoded.len() <= PER_CHANGE_OVERHEAD, "{}", encoded.len());
    }

    /// A backlog of small documents fills change batches to the byte limit: the
    /// envelope with its changes must still fit (it ran 15% over when only the
    /// documents were counted).
    #[test]
    fn change_batches_of_small_documents_fit_the_payload() {
        let max_payload = 1 << 20;
        let limits = BatchLimits::for_changes(1_000_000, max_payload, "run", "users");
        let docs: Vec<Doc<'static>> = (0..100_000u32).map(|i| inline(20, i as u8)).collect();
        let batches = split(limits, docs);
        assert!(batches.len() > 2, "the byte limit cut the batches");
        let worst = Version {
            time: u32::MAX,
            increment: u32::MAX,
            ordinal: u32::MAX,
        };
        for (seq, docs) in batches.into_iter().enumerate() {
            let changes = docs
                .iter()
                .map(|_| Change {
                    op: ChangeOp::Replace,
                    version: worst,
                })
                .collect();
            let encoded = Envelope::changes("run", "users", seq as u64, docs, changes).encode();
            assert!(
                encoded.len() <= max_payload,
                "{} > {max_payload}",
                encoded.len()
            );
        }
        // Counting only the documents, the same batches overflow: the test can fail.
        let plain = BatchLimits::new(1_000_000, max_payload, "run", "users");
        let docs: Vec<Doc<'static>> = (0..100_000u32).map(|i| inline(20, i as u8)).collect();
        let first = split(plain, docs).swap_remove(0);
        let changes = first
            .iter()
            .map(|_| Change {
                op: ChangeOp::Replace,
                version: worst,
            })
            .collect();
        assert!(
            Envelope::changes("run", "users", 0, first, changes)
                .encode()
                .len()
                > max_payload
        );
    }

    #[test]
    fn documents_over_the_payload_do_not_fit_inline() {
        let limits = BatchLimits::new(10, 1 << 20, "r", "c");
        assert!(limits.fits_inline(1 << 19));
        assert!(!limits.fits_inline(1 << 20));
    }
}
