//! Reads a collection in `_id` order, as raw BSON, resumably.
//!
//! MongoDB's `$gt` compares only within one BSON type bracket (`{_id: {$gt: 5}}` never
//! returns a string `_id`), so keyset paging on `_id > last` alone would silently stop at
//! the end of the first bracket of a collection whose `_id`s mix types. The pager
//! therefore reads:
//! - from the start: one cursor over the whole collection sorted by `_id`, which the
//!   server walks bracket after bracket in its canonical type order;
//! - after a checkpoint: `{_id: {$gt: last}}` for the rest of `last`'s own bracket, then
//!   `{_id: {$type: [every later bracket's types]}}` for everything after it. Both are
//!   ranges of the `_id` index, never skip/limit.

use bson::{doc, Bson, Document, RawDocumentBuf};
use common::run_state::ClusterTime;
use mongodb::raw_batch_cursor::SessionRawBatchCursor;
use mongodb::{ClientSession, Collection};

use crate::reply::{self, Reply};

/// MongoDB's canonical sort order of BSON types (`canonicalizeBSONType` in the server):
/// types of equal rank compare with each other, and ranks sort in this order. Arrays
/// are left out: an `_id` cannot be one.
const BRACKETS: &[(i32, &[&str])] = &[
    (-1, &["minKey"]),
    (0, &["undefined"]),
    (5, &["null"]),
    (10, &["int", "long", "double", "decimal"]),
    (15, &["string", "symbol"]),
    (20, &["object"]),
    (30, &["binData"]),
    (35, &["objectId"]),
    (40, &["bool"]),
    (45, &["date"]),
    (47, &["timestamp"]),
    (50, &["regex"]),
    (55, &["dbPointer"]),
    (60, &["javascript"]),
    (65, &["javascriptWithScope"]),
    (127, &["maxKey"]),
];

fn rank(id: &Bson) -> i32 {
    match id {
        Bson::MinKey => -1,
        Bson::Undefined => 0,
        Bson::Null => 5,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 10,
        Bson::String(_) | Bson::Symbol(_) => 15,
        Bson::Document(_) => 20,
        Bson::Array(_) => 25,
        Bson::Binary(_) => 30,
        Bson::ObjectId(_) => 35,
        Bson::Boolean(_) => 40,
        Bson::DateTime(_) => 45,
        Bson::Timestamp(_) => 47,
        Bson::RegularExpression(_) => 50,
        Bson::DbPointer(_) => 55,
        Bson::JavaScriptCode(_) => 60,
        Bson::JavaScriptCodeWithScope(_) => 65,
        Bson::MaxKey => 127,
    }
}

/// The queries that read everything after `last` (everything when `None`), in order.
pub fn queries_after(last: Option<&Bson>) -> Vec<Document> {
    let Some(last) = last else {
        return vec![doc! {}];
    };
    let r = rank(last);
    let mut queries = Vec::new();
    // MinKey, MaxKey, undefined and null each hold one value: nothing follows `last` in
    // its own bracket (and `$gt: MinKey` would match every document).
    if !matches!(
        last,
        Bson::MinKey | Bson::MaxKey | Bson::Null | Bson::Undefined
    ) {
        queries.push(doc! { "_id": { "$gt": last.clone() } });
    }
    let later: Vec<&str> = BRACKETS
        .iter()
        .filter(|(bracket, _)| *bracket > r)
        .flat_map(|(_, types)| types.iter().copied())
        .collect();
    if !later.is_empty() {
        queries.push(doc! { "_id": { "$type": later } });
    }
    queries
}

/// Streams a collection's documents after `last` in `_id` order, `cursor_batch`
/// documents per round trip. Left to itself the server fills each reply up to 16 MiB,
/// which the driver holds whole: the producer's memory would then depend on the
/// documents' size and on the collection's (a small collection never fills a reply).
pub struct Pager {
    collection: Collection<RawDocumentBuf>,
    queries: std::vec::IntoIter<Document>,
    /// Only the documents it matches are read (the mapping's `filter`).
    filter: Option<Document>,
    /// Read as of this cluster time at least (see [`crate::clock::session_as_of`]).
    as_of: Option<ClusterTime>,
    session: Option<ClientSession>,
    cursor: Option<SessionRawBatchCursor>,
    cursor_batch: u32,
    /// The reply [`Pager::next`] takes documents from.
    current: Option<Reply>,
}

impl Pager {
    /// A pager over the collection's documents `filter` matches (all without one),
    /// after `last` when given, reading `cursor_batch` documents per round trip.
    pub fn new(
        collection: Collection<RawDocumentBuf>,
        last: Option<&Bson>,
        filter: Option<Document>,
        cursor_batch: u32,
    ) -> Self {
        Pager {
            collection,
            queries: queries_after(last).into_iter(),
            filter,
            as_of: None,
            session: None,
            cursor: None,
            cursor_batch,
            current: None,
        }
    }

    /// Reads as of `time` at least, on whichever member serves the reads: a followed
    /// run's start position.
    pub fn as_of(mut self, time: Option<ClusterTime>) -> Self {
        self.as_of = time;
        self
    }

    /// The next document, or `None` at the end of the collection.
    pub async fn next(&mut self) -> mongodb::error::Result<Option<RawDocumentBuf>> {
        loop {
            if let Some(document) = self.current.as_mut().and_then(Reply::next_document) {
                return Ok(Some(document.to_owned()));
            }
            match self.next_reply().await? {
                Some(reply) => self.current = Some(reply),
                None => return Ok(None),
            }
        }
    }

    /// The next reply's documents, or `None` at the end of the collection: what a
    /// reader that copies each document once anyway takes, without the driver's copy.
    pub async fn next_reply(&mut self) -> mongodb::error::Result<Option<Reply>> {
        loop {
            if let (Some(cursor), Some(session)) = (self.cursor.as_mut(), self.session.as_mut()) {
                if let Some(reply) = reply::next_reply(cursor, session).await? {
                    return Ok(Some(reply));
                }
                self.cursor = None;
            }
            let Some(after) = self.queries.next() else {
                return Ok(None);
            };
            let filter = match &self.filter {
                Some(filter) => doc! { "$and": [after, filter.clone()] },
                None => after,
            };
            let session = match &mut self.session {
                Some(session) => session,
                None => self.session.insert(
                    crate::clock::session_as_of(self.collection.client(), self.as_of).await?,
                ),
            };
            let cursor = self
                .collection
                .find(filter)
                .sort(doc! { "_id": 1 })
                .batch_size(self.cursor_batch)
                .session(&mut *session)
                .batch()
                .await?;
            self.cursor = Some(cursor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_reads_everything_in_one_query() {
        assert_eq!(queries_after(None), vec![doc! {}]);
    }

    #[test]
    fn resume_reads_rest_of_bracket_then_later_brackets() {
        let q = queries_after(Some(&Bson::Int32(5)));
        assert_eq!(q[0], doc! { "_id": { "$gt": 5 } });
        let later = q[1]
            .get_document("_id")
            .expect("doc")
            .get_array("$type")
            .expect("array");
        assert!(later.contains(&Bson::String("string".into())));
        assert!(later.contains(&Bson::String("objectId".into())));
        assert!(!later.contains(&Bson::String("int".into())));
        assert!(!later.contains(&Bson::String("null".into())));
    }

    #[test]
    fn resume_after_max_key_reads_nothing() {
        assert!(queries_after(Some(&Bson::MaxKey)).is_empty());
        assert_eq!(queries_after(Some(&Bson::MinKey)).len(), 1);
    }
}
