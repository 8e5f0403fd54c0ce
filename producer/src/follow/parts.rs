//! Cutting a flush's changes of one collection into parts by their document's `_id`,
//! so that change batches landing at once seldom touch the same document.
//!
//! Why: a consumer lands a change batch in one transaction that locks, in the
//! versions table, the row of each document it changes until it commits (the rule
//! that a change lands only over an older version, `landing::changes`). Two batches
//! cut from the same stretch of the stream share documents as soon as the writes go
//! to the same ones: 5,000 random updates over 100,000 documents share about 250 with
//! the next 5,000. The second batch's transaction then waits for the first's commit,
//! and so do the others: eight writers landed one batch at a time, with a core idle
//! (PostgreSQL's sessions were seen waiting on a row lock in nine samples out of ten).
//! Cut by a hash of the `_id`, a flush's batches share no document, and batches
//! published one after the other are taken by different writers; every change of
//! one document in a flush stays in one batch, in its order, so a batch keeps only the
//! newest of them as before. Nothing of the landing's rule changes: parts only make
//! the waits rare.

use std::hash::{DefaultHasher, Hash, Hasher};

use bson::RawDocument;
use common::batch::{Change, Doc};

/// Fewer changes than this per part are not worth a transaction of their own: a flush
/// is cut into at most `events / MIN_PART_EVENTS` parts (and one at least).
pub(super) const MIN_PART_EVENTS: usize = 250;

/// Where a document's changes go among the parts: a hash of its `_id` as the bytes of
/// `{_id: …}`, the key the landing arbitrates by. Every event of a document carries the
/// `_id` it was stored with, so its changes agree.
pub(super) fn spread_of(document: &RawDocument) -> u64 {
    let mut hasher = DefaultHasher::new();
    if let Ok(Some(id)) = document.get("_id") {
        let mut key = bson::RawDocumentBuf::new();
        key.append(bson::cstr!("_id"), id);
        key.as_bytes().hash(&mut hasher);
    }
    hasher.finish()
}

/// How many parts a batch of `events` changes is cut into, at most `partitions`.
pub(super) fn parts_for(events: usize, partitions: usize) -> usize {
    (events / MIN_PART_EVENTS).clamp(1, partitions.max(1))
}

/// One batch's changes cut into `parts` batches by their spread, each keeping the
/// order of its changes; empty parts are left out.
pub(super) fn cut(
    docs: Vec<Doc<'static>>,
    changes: Vec<Change>,
    spreads: &[u64],
    parts: usize,
) -> Vec<(Vec<Doc<'static>>, Vec<Change>)> {
    if parts <= 1 {
        return vec![(docs, changes)];
    }
    let mut cut: Vec<(Vec<Doc<'static>>, Vec<Change>)> =
        (0..parts).map(|_| (Vec::new(), Vec::new())).collect();
    for ((doc, change), spread) in docs.into_iter().zip(changes).zip(spreads) {
        let part = &mut cut[(spread % parts as u64) as usize];
        part.0.push(doc);
        part.1.push(change);
    }
    cut.retain(|(docs, _)| !docs.is_empty());
    cut
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use bson::rawdoc;
    use common::batch::{ChangeOp, Version};

    use super::*;

    fn change(ordinal: u32) -> Change {
        Change {
            op: ChangeOp::Update,
            version: Version {
                time: 1,
                increment: 1,
                ordinal,
            },
        }
    }

    fn id_of(doc: &Doc<'_>) -> i32 {
        match doc {
            Doc::Inline(bytes) => RawDocument::from_bytes(bytes)
                .ok()
                .and_then(|d| d.get_i32("_id").ok())
                .expect("a test document with an int _id"),
            Doc::Blob { .. } => panic!("no blob in this test"),
        }
    }

    #[test]
    fn every_change_of_a_document_goes_to_one_part_in_its_order() {
        let ids = [1, 2, 3, 1, 4, 2, 1, 5, 6, 7, 3, 8];
        let documents: Vec<_> = ids.iter().map(|id| rawdoc! { "_id": *id }).collect();
        let spreads: Vec<u64> = documents.iter().map(|d| spread_of(d)).collect();
        let docs: Vec<Doc<'static>> = documents
            .iter()
            .map(|d| Doc::Inline(Cow::Owned(d.as_bytes().to_vec())))
            .collect();
        let changes: Vec<Change> = (0..ids.len() as u32).map(change).collect();
        let parts = cut(docs, changes, &spreads, 4);
        assert!(
            parts.len() > 1,
            "twelve changes of eight documents in one part"
        );
        let mut part_of = std::collections::HashMap::new();
        let mut seen = Vec::new();
        for (n, (docs, changes)) in parts.iter().enumerate() {
            // Within a part, the stream's order.
            assert!(changes.windows(2).all(|w| w[0].version < w[1].version));
            for (doc, change) in docs.iter().zip(changes) {
                let id = id_of(doc);
                // The change is the one made to this document.
                assert_eq!(ids[change.version.ordinal as usize], id);
                let first = *part_of.entry(id).or_insert(n);
                assert_eq!(first, n, "document {id} in two parts");
                seen.push(change.version.ordinal);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..ids.len() as u32).collect::<Vec<_>>());
    }

    #[test]
    fn a_small_flush_is_one_part() {
        assert_eq!(parts_for(10, 8), 1);
        assert_eq!(parts_for(MIN_PART_EVENTS * 3, 8), 3);
        assert_eq!(parts_for(100_000, 8), 8);
        assert_eq!(parts_for(100_000, 1), 1);
    }
}
