//! The change stream's pipeline, and one raw change event read into what a change
//! batch carries.

use bson::{doc, Bson, Document, RawBsonRef, RawDocument, RawDocumentBuf};
use common::batch::ChangeOp;
use common::run_state::ClusterTime;

use crate::namespace::Databases;

/// A full document larger than this is left out of its event and read again by `_id`:
/// an event carrying it would pass MongoDB's 16 MiB limit and wedge the stream.
pub const LARGE_DOCUMENT: i64 = 15 * 1024 * 1024;

/// Set on an event whose full document was left out for its size.
const REREAD_FIELD: &str = "m2pReread";

/// The pipeline the run streams with: the collections' data changes (every
/// collection's of the databases with `None`: a run of whole databases follows the
/// collections created after it started too) and the events that end them (drop,
/// rename, invalidate), with only the fields the landing needs; a full document too
/// large for an event is replaced by a flag to read it again. `collections` are named
/// as the run names them (`database.collection` in a run of several databases).
pub fn pipeline(databases: &Databases, collections: Option<&[String]>) -> Vec<Document> {
    let matched = match (databases, collections) {
        (Databases::One(database), Some(collections)) => doc! {
            "$or": [
                { "ns.db": database, "ns.coll": { "$in": collections } },
                // Another collection renamed over a followed one replaces its documents.
                { "to.db": database, "to.coll": { "$in": collections } },
                { "operationType": { "$in": ["dropDatabase", "invalidate"] } },
            ]
        },
        (Databases::One(database), None) => doc! {
            "$or": [
                { "ns.db": database },
                { "to.db": database },
                { "operationType": { "$in": ["dropDatabase", "invalidate"] } },
            ]
        },
        (_, Some(collections)) => {
            // Per database, its collections: a stream over the whole deployment.
            let mut by_database: std::collections::BTreeMap<&str, Vec<&str>> =
                std::collections::BTreeMap::new();
            for name in collections {
                let (database, collection) = name.split_once('.').unwrap_or(("", name));
                by_database.entry(database).or_default().push(collection);
            }
            let mut any: Vec<Document> = Vec::new();
            for field in ["ns", "to"] {
                for (database, collections) in &by_database {
                    any.push(doc! {
                        format!("{field}.db"): *database,
                        format!("{field}.coll"): { "$in": collections },
                    });
                }
            }
            let databases: Vec<&str> = by_database.keys().copied().collect();
            any.push(doc! { "operationType": "dropDatabase", "ns.db": { "$in": databases } });
            any.push(doc! { "operationType": "invalidate" });
            doc! { "$or": any }
        }
        (databases, None) => {
            let read = match databases {
                Databases::Named(names) => doc! { "$in": names },
                _ => doc! { "$nin": crate::namespace::SYSTEM_DATABASES.to_vec() },
            };
            doc! {
                "$or": [
                    { "ns.db": read.clone() },
                    { "to.db": read },
                    { "operationType": "invalidate" },
                ]
            }
        }
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
        /// When, in MongoDB's cluster time (when the event says).
        cluster_time: Option<ClusterTime>,
    },
}

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
#[error("an unreadable change event: {0}")]
pub struct BadEvent(pub String);

/// Reads an event as it came from the server; its collections are named
/// `database.collection` when `several` databases are read.
pub fn read(raw: &RawDocument, several: bool) -> Result<Event, BadEvent> {
    let bad = |what: &str| BadEvent(what.to_string());
    let field = |name: &str| raw.get(name).map_err(|e| BadEvent(e.to_string()));
    let operation = match field("operationType")? {
        Some(RawBsonRef::String(op)) => op.to_string(),
        _ => return Err(bad("no operationType")),
    };
    // A namespace (`ns`, or a rename's `to`) as the run names its collection.
    let name = |namespace: &str| -> Result<Option<String>, BadEvent> {
        let Some(RawBsonRef::Document(ns)) = field(namespace)? else {
            return Ok(None);
        };
        let Ok(Some(RawBsonRef::String(coll))) = ns.get("coll") else {
            return Ok(None);
        };
        Ok(Some(match ns.get("db") {
            Ok(Some(RawBsonRef::String(db))) if several => format!("{db}.{coll}"),
            _ => coll.to_string(),
        }))
    };
    let collection = name("ns")?;
    let cluster_time = match field("clusterTime")? {
        Some(RawBsonRef::Timestamp(ts)) => Some(ClusterTime {
            time: ts.time,
            increment: ts.increment,
        }),
        _ => None,
    };
    let op = match operation.as_str() {
        "insert" => ChangeOp::Insert,
        "update" => ChangeOp::Update,
        "replace" => ChangeOp::Replace,
        "delete" => ChangeOp::Delete,
        _ => {
            let renamed_to = name("to")?;
            return Ok(Event::End {
                collection,
                renamed_to,
                operation,
                cluster_time,
            });
        }
    };
    let collection = collection.ok_or_else(|| bad("no ns.coll"))?;
    let cluster_time = cluster_time.ok_or_else(|| bad("no clusterTime"))?;
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
        match read(&update, false).expect("reads") {
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
        match read(&delete, false).expect("reads") {
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
            read(&gone, false),
            Ok(Event::Change { document: None, .. })
        ));
        let drop = bson::serialize_to_raw_document_buf(&doc! {
            "_id": { "_data": "82" }, "operationType": "drop",
            "ns": { "db": "app", "coll": "users" }, "clusterTime": ts,
        })
        .expect("serializes");
        assert!(matches!(
            read(&drop, false),
            Ok(Event::End { collection: Some(c), operation, .. }) if c == "users" && operation == "drop"
        ));
        // A run of several databases names collections with their database.
        assert!(matches!(
            read(&update, true),
            Ok(Event::Change { collection, .. }) if collection == "app.users"
        ));
        let rename = bson::serialize_to_raw_document_buf(&doc! {
            "_id": { "_data": "82" }, "operationType": "rename",
            "ns": { "db": "app", "coll": "users" }, "to": { "db": "crm", "coll": "people" },
            "clusterTime": ts,
        })
        .expect("serializes");
        assert!(matches!(
            read(&rename, true),
            Ok(Event::End { collection: Some(c), renamed_to: Some(to), .. })
                if c == "app.users" && to == "crm.people"
        ));
    }

    #[test]
    fn a_run_of_several_databases_streams_only_theirs() {
        let named = Databases::Named(vec!["shop".to_string(), "crm".to_string()]);
        let chosen = ["shop.orders".to_string(), "crm.people".to_string()];
        let pipeline = pipeline(&named, Some(&chosen));
        let matched = pipeline[0].get_document("$match").expect("matches");
        let any = matched.get_array("$or").expect("or");
        assert!(any.contains(&Bson::Document(
            doc! { "ns.db": "crm", "ns.coll": { "$in": ["people"] } }
        )));
        assert!(any.contains(&Bson::Document(
            doc! { "to.db": "shop", "to.coll": { "$in": ["orders"] } }
        )));
        let whole = pipeline_of(&Databases::All);
        assert_eq!(
            whole.get_array("$or").expect("or")[0],
            Bson::Document(doc! { "ns.db": { "$nin": ["admin", "config", "local"] } })
        );
    }

    fn pipeline_of(databases: &Databases) -> Document {
        pipeline(databases, None)[0]
            .get_document("$match")
            .expect("matches")
            .clone()
    }
}
