//! The change stream's pipeline, and one raw change event read into what a change
//! batch carries.

use bson::{doc, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use common::batch::ChangeOp;
use common::run_state::ClusterTime;

/// A full document larger than this is left out of its event and read again by `_id`:
/// an event carrying it would pass MongoDB's 16 MiB limit and wedge the stream.
pub const LARGE_DOCUMENT: i64 = 15 * 1024 * 1024;

/// Set on an event whose full document was left out for its size.
const REREAD_FIELD: &str = "m2pReread";

/// The pipeline the run streams with: the collections' data changes (every
/// collection's of the database with `None`: a run of the whole database follows the
/// collections created after it started too) and the events that end them (drop,
/// rename, invalidate), with only the fields the landing needs; a full document too
/// large for an event is replaced by a flag to read it again.
pub fn pipeline(database: &str, collections: Option<&[String]>) -> Vec<Document> {
    let matched = match collections {
        Some(collections) => doc! {
            "$or": [
                { "ns.db": database, "ns.coll": { "$in": collections } },
                // Another collection renamed over a followed one replaces its documents.
                { "to.db": database, "to.coll": { "$in": collections } },
                { "operationType": { "$in": ["dropDatabase", "invalidate"] } },
            ]
        },
        None => doc! {
            "$or": [
                { "ns.db": database },
                { "to.db": database },
                { "operationType": { "$in": ["dropDatabase", "invalidate"] } },
            ]
        },
    };
    vec![
        doc! { "$match": matched },
        doc! { "$project": {
            "operationType": 1,
            "ns": 1,
            "to": 1,
            "documentKey": 1,
            "clusterTime": 1,
            "fullDocument": { "$cond": [
                { "$gt": [ { "$bsonSize": "$fullDocument" }, LARGE_DOCUMENT ] },
                Bson::Null,
                "$fullDocument",
            ] },
            REREAD_FIELD: { "$gt": [ { "$bsonSize": "$fullDocument" }, LARGE_DOCUMENT ] },
        } },
    ]
}

/// One change event, read.
#[derive(Debug)]
pub enum Event {
    /// A change to a document of a followed collection.
    Change {
        /// The collection changed.
        collection: String,
        /// What happened to the document.
        op: ChangeOp,
        /// The document after the change (`{_id}` alone for a delete); `None` when
        /// MongoDB found it gone or replaced when it looked it up: a later event of
        /// the stream carries what became of it.
        document: Option<RawDocumentBuf>,
        /// The full document was left out for its size: read it again by `_id`.
        reread: Option<Bson>,
        /// When, in MongoDB's cluster time.
        cluster_time: ClusterTime,
    },
    /// An event after which the collection's changes cannot be followed: it was
    /// dropped or renamed, or the whole stream was invalidated.
    End {
        /// The collection whose changes end (`None`: all of them).
        collection: Option<String>,
        /// For a rename, the collection's new name.
        renamed_to: Option<String>,
        /// What ended them (`drop`, `rename`, `dropDatabase`, `invalidate`).
        operation: String,
    },
}

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
#[error("an unreadable change event: {0}")]
pub struct BadEvent(pub String);

/// Reads an event as it came from the server.
pub fn read(raw: &RawDocument) -> Result<Event, BadEvent> {
    let bad = |what: &str| BadEvent(what.to_string());
    let field = |name: &str| raw.get(name).map_err(|e| BadEvent(e.to_string()));
    let operation = match field("operationType")? {
        Some(RawBsonRef::String(op)) => op.to_string(),
        _ => return Err(bad("no operationType")),
    };
    let collection = match field("ns")? {
        Some(RawBsonRef::Document(ns)) => match ns.get("coll") {
            Ok(Some(RawBsonRef::String(coll))) => Some(coll.to_string()),
            _ => None,
        },
        _ => None,
    };
    let op = match operation.as_str() {
        "insert" => ChangeOp::Insert,
        "update" => ChangeOp::Update,
        "replace" => ChangeOp::Replace,
        "delete" => ChangeOp::Delete,
        _ => {
            let renamed_to = match field("to")? {
                Some(RawBsonRef::Document(to)) => match to.get("coll") {
                    Ok(Some(RawBsonRef::String(coll))) => Some(coll.to_string()),
                    _ => None,
                },
                _ => None,
            };
            return Ok(Event::End {
                collection,
                renamed_to,
                operation,
            });
        }
    };
    let collection = collection.ok_or_else(|| bad("no ns.coll"))?;
    let cluster_time = match field("clusterTime")? {
        Some(RawBsonRef::Timestamp(ts)) => ClusterTime {
            time: ts.time,
            increment: ts.increment,
        },
        _ => return Err(bad("no clusterTime")),
    };
    let id = match field("documentKey")? {
        Some(RawBsonRef::Document(key)) => key
            .get("_id")
            .map_err(|e| BadEvent(e.to_string()))?
            .ok_or_else(|| bad("no documentKey._id"))?,
        _ => return Err(bad("no documentKey")),
    };
    let reread = matches!(field(REREAD_FIELD)?, Some(RawBsonRef::Boolean(true)));
    let document = if op == ChangeOp::Delete {
        let mut key = RawDocumentBuf::new();
        key.append(bson::cstr!("_id"), id);
        Some(key)
    } else {
        match field("fullDocument")? {
            Some(RawBsonRef::Document(doc)) => Some(doc.to_owned()),
            _ => None,
        }
    };
    let reread = if reread {
        Some(Bson::try_from(id).map_err(|e| BadEvent(e.to_string()))?)
    } else {
        None
    };
    Ok(Event::Change {
        collection,
        op,
        document,
        reread,
        cluster_time,
    })
}

/// The cluster time a resume token stands at: the token's `_data` is MongoDB's
/// KeyString encoding, which starts with the type byte of a timestamp (130) and the
/// timestamp's seconds and increment, big-endian.
pub fn token_time(token: &Document) -> Option<ClusterTime> {
    let data = token.get_str("_data").ok()?;
    let bytes = hex::decode(data.get(..18)?).ok()?;
    if bytes[0] != 130 {
        return None;
    }
    Some(ClusterTime {
        time: u32::from_be_bytes(bytes[1..5].try_into().ok()?),
        increment: u32::from_be_bytes(bytes[5..9].try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_tokens_give_their_cluster_time() {
        let token = doc! { "_data": "8265A1B2C3000000042B022C0100296E5A1004" };
        assert_eq!(
            token_time(&token),
            Some(ClusterTime {
                time: 0x65A1_B2C3,
                increment: 4
            })
        );
        assert_eq!(token_time(&doc! { "_data": "00" }), None);
        assert_eq!(token_time(&doc! {}), None);
    }

    #[test]
    fn events_are_read_into_changes_and_ends() {
        let ts = bson::Timestamp {
            time: 100,
            increment: 3,
        };
        let update = bson::serialize_to_raw_document_buf(&doc! {
            "_id": { "_data": "82" }, "operationType": "update",
            "ns": { "db": "app", "coll": "users" }, "clusterTime": ts,
            "documentKey": { "_id": 7 }, "fullDocument": { "_id": 7, "a": 1 },
            REREAD_FIELD: false,
        })
        .expect("serializes");
        match read(&update).expect("reads") {
            Event::Change {
                collection,
                op,
                document: Some(document),
                reread: None,
                cluster_time,
            } => {
                assert_eq!(collection, "users");
                assert_eq!(op, ChangeOp::Update);
                assert_eq!(
                    cluster_time,
                    ClusterTime {
                        time: 100,
                        increment: 3
                    }
                );
                assert_eq!(document.get_i32("a").ok(), Some(1));
            }
            other => panic!("not a change: {other:?}"),
        }
        let delete = bson::serialize_to_raw_document_buf(&doc! {
            "_id": { "_data": "82" }, "operationType": "delete",
            "ns": { "db": "app", "coll": "users" }, "clusterTime": ts,
            "documentKey": { "_id": "x" },
        })
        .expect("serializes");
        match read(&delete).expect("reads") {
            Event::Change {
                document: Some(document),
                op: ChangeOp::Delete,
                ..
            } => assert_eq!(document.get_str("_id").ok(), Some("x")),
            other => panic!("not a delete: {other:?}"),
        }
        let gone = bson::serialize_to_raw_document_buf(&doc! {
            "_id": { "_data": "82" }, "operationType": "update",
            "ns": { "db": "app", "coll": "users" }, "clusterTime": ts,
            "documentKey": { "_id": 7 }, "fullDocument": Bson::Null,
        })
        .expect("serializes");
        assert!(matches!(
            read(&gone),
            Ok(Event::Change { document: None, .. })
        ));
        let drop = bson::serialize_to_raw_document_buf(&doc! {
            "_id": { "_data": "82" }, "operationType": "drop",
            "ns": { "db": "app", "coll": "users" }, "clusterTime": ts,
        })
        .expect("serializes");
        assert!(matches!(
            read(&drop),
            Ok(Event::End { collection: Some(c), operation, .. }) if c == "users" && operation == "drop"
        ));
    }
}
