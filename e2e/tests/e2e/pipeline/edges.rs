//! The snapshot path at its edges: batch boundaries, duplicates, empty collections,
//! odd names, restarts.

use std::time::Duration;

use bson::{doc, Document};
use e2e::{assert_success, TestEnv};

const CONSUMERS_LIMIT: Duration = Duration::from_secs(120);

/// Bug 8 (in part): a batch published again within the stream's dedupe window was
/// dropped by the stream while the producer said "published". Now it says how many
/// the stream discarded.
#[tokio::test(flavor = "multi_thread")]
async fn the_producer_says_when_the_stream_discards_a_batch_as_a_duplicate() {
    let env = TestEnv::new("hard_discarded").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..25).map(|i| doc! { "_id": i }))
        .await
        .expect("insert");
    let first = env
        .producer("r", &["run", "--batch-size", "10"])
        .await
        .expect("run");
    assert_success(&first, "producer");
    assert!(
        !e2e::stdout(&first).contains("discarded"),
        "{}",
        e2e::stdout(&first)
    );
    let again = env
        .producer("r", &["run", "--batch-size", "10", "--restart"])
        .await
        .expect("run again");
    assert_success(&again, "producer --restart");
    let text = e2e::stdout(&again);
    assert!(
        text.contains(
            "users: 25 documents, 3 batches; 3 of them discarded by the stream as duplicates"
        ),
        "{text}"
    );
}

/// Bug 5 (when is a run done): `--exit-when-done` counted ledger rows, so after a
/// `--restart` with another batch size the earlier publication's batches made a
/// consumer stop at once while this publication's were still in the stream. Now the
/// stream must be drained too.
#[tokio::test(flavor = "multi_thread")]
async fn exit_when_done_waits_for_this_publications_batches_after_a_restart() {
    let env = TestEnv::new("hard_done_restart").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..2000).map(|i| doc! { "_id": i }))
        .await
        .expect("insert");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "500"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("first publication consumed");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "700", "--restart"])
            .await
            .expect("run again"),
        "producer --restart --batch-size 700",
    );
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("second publication consumed");
    let js = async_nats::jetstream::new(async_nats::connect(&env.nats_url).await.expect("nats"));
    let info = js
        .get_stream(&env.stream)
        .await
        .expect("stream")
        .consumer_info("writers-r")
        .await
        .expect("consumer info");
    assert_eq!(
        (info.num_pending, info.num_ack_pending),
        (0, 0),
        "the consumer said done with batches still in the stream"
    );
    let ledger: i64 = env
        .pg()
        .await
        .expect("pg")
        .query_one("SELECT count(*) FROM _migrate_ledger WHERE run = 'r'", &[])
        .await
        .expect("ledger")
        .get(0);
    assert_eq!(
        ledger,
        4 + 3,
        "both publications' batches are in the ledger"
    );
}

/// Bugs 5 and 6: exactly-once depended on batch boundaries. Publishing a run again cut
/// into other batches (another `--batch-size`, a `--restart`, a document inserted
/// before the others meanwhile) landed every document twice where the mapping had no
/// `_id` column, and otherwise rejected all of them as duplicate keys, leaving `status`
/// INCONSISTENT. Now every table has a key from `_id`, and documents whose key is in
/// the table already are skipped and counted as such, never written twice or rejected.
#[tokio::test(flavor = "multi_thread")]
async fn every_document_lands_once_whatever_the_batch_boundaries() {
    let env = TestEnv::new("hard_boundaries").await.expect("env");
    for name in ["keyed", "unkeyed"] {
        env.db()
            .collection::<Document>(name)
            .insert_many((0..2000).map(|i| doc! { "_id": i, "name": format!("n{i}") }))
            .await
            .expect("insert");
    }
    let mapping_arg = env.write_file(
        "m.toml",
        "[collections.unkeyed]\ncolumns = [ { path = \"name\", type = \"text\" } ]\n",
    );
    assert_success(
        &env.producer("r", &["run", "--batch-size", "500"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers("r", 2, &["--mapping", &mapping_arg], CONSUMERS_LIMIT)
        .await
        .expect("first publication");
    // A document before all others shifts every batch's contents.
    for name in ["keyed", "unkeyed"] {
        env.db()
            .collection::<Document>(name)
            .insert_one(doc! { "_id": -1, "name": "first" })
            .await
            .expect("insert");
    }
    assert_success(
        &env.producer("r", &["run", "--batch-size", "700", "--restart"])
            .await
            .expect("run again"),
        "producer --restart --batch-size 700",
    );
    env.run_consumers("r", 2, &["--mapping", &mapping_arg], CONSUMERS_LIMIT)
        .await
        .expect("second publication");

    let pg = env.pg().await.expect("pg");
    for (table, name) in [("keyed", "doc->>'name'"), ("unkeyed", "name")] {
        let row = pg
            .query_one(
                &format!("SELECT count(*), count(DISTINCT {name}) FROM {table}"),
                &[],
            )
            .await
            .expect("count");
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, i64>(1)),
            (2001, 2001),
            "{table}: every document once"
        );
    }
    let ledger = pg
        .query(
            "SELECT collection, sum(rows_written)::int8, sum(rows_rejected)::int8, sum(rows_already)::int8 FROM _migrate_ledger GROUP BY collection ORDER BY collection",
            &[],
        )
        .await
        .expect("ledger");
    let ledger: Vec<(String, i64, i64, i64)> = ledger
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        ledger,
        [
            ("keyed".to_string(), 2001, 0, 2000),
            ("unkeyed".to_string(), 2001, 0, 2000)
        ]
    );
    // Status says what the ledger skipped.
    env.assert_complete_and_verified(
        "r",
        "skipped as already landed: 4000 documents",
        &["--mapping", &mapping_arg],
    )
    .await
    .expect("complete and verified");
}

/// An empty collection gets its table, as an application reading it expects; it got
/// none (no batch, so no consumer ever met it).
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_collection_gets_its_table() {
    let env = TestEnv::new("hard_empty").await.expect("env");
    env.db()
        .create_collection("nothing_yet")
        .await
        .expect("create");
    env.db()
        .collection::<Document>("something")
        .insert_one(doc! { "_id": 1 })
        .await
        .expect("insert");
    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");
    let pg = env.pg().await.expect("pg");
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM nothing_yet", &[])
        .await
        .expect("the empty collection's table")
        .get(0);
    assert_eq!(rows, 0);
    let (code, text) = env.mongo2pg_report("r", &["status"]).await.expect("status");
    assert_eq!(code, Some(0), "{text}");
    e2e::compare::assert_exact_copy(&env, "something")
        .await
        .expect("the other collection");
}

/// A collection whose name holds a comma can be chosen (`--collection 'a\,b'`); it
/// was split into two names that did not exist.
#[tokio::test(flavor = "multi_thread")]
async fn a_collection_named_with_a_comma_can_be_chosen() {
    let env = TestEnv::new("hard_comma").await.expect("env");
    for name in ["a,b", "a", "b"] {
        env.db()
            .collection::<Document>(name)
            .insert_one(doc! { "_id": 1, "from": name })
            .await
            .expect("insert");
    }
    assert_success(
        &env.producer("r", &["run", "--collection", r"a\,b"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");
    let pg = env.pg().await.expect("pg");
    let landed: Vec<String> = pg
        .query("SELECT DISTINCT collection FROM _migrate_ledger", &[])
        .await
        .expect("ledger")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(landed, ["a,b"]);
    e2e::compare::assert_exact_copy(&env, "a,b")
        .await
        .expect("the collection with a comma");
}

/// A batch message's unpacked envelope length and its documents (all inline).
fn unpacked(payload: &[u8]) -> (usize, Vec<Document>) {
    let plain = common::compression::unpack(payload).expect("unpacks");
    let envelope = common::batch::Envelope::decode(&plain).expect("an envelope");
    let documents = envelope
        .docs
        .iter()
        .map(|doc| {
            let common::batch::Doc::Inline(bytes) = doc else {
                panic!("a small document in the object store");
            };
            let doc = bson::RawDocument::from_bytes(bytes).expect("bson");
            Document::try_from(doc).expect("document")
        })
        .collect();
    (plain.len(), documents)
}

/// Batches travel through NATS packed with LZ4 (`--compression`, on by default), and a
/// consumer reads plain batches as well, as producers before the packed format wrote
/// them: a producer can be upgraded after its consumers.
#[tokio::test(flavor = "multi_thread")]
async fn batches_travel_packed_and_plain_batches_still_land() {
    let env = TestEnv::new("packed").await.expect("env");
    let source: Vec<Document> = (0..3_000)
        .map(|i: i32| {
            let city = ["Montréal", "Lisboa", "Ōsaka"][i.unsigned_abs() as usize % 3];
            doc! {
                "_id": i,
                "username": format!("user{i:07}"),
                "city": city,
                "score": f64::from(i) / 7.0,
            }
        })
        .collect();
    env.db()
        .collection::<Document>("users")
        .insert_many(&source)
        .await
        .expect("insert");
    assert_success(
        &env.producer(
            "r",
            &["run", "--batch-size", "1000", "--compression", "none"],
        )
        .await
        .expect("run"),
        "producer --compression none",
    );
    // Published again, cut otherwise (so that the stream does not drop the batches as
    // duplicates of the first publication's), packed this time.
    assert_success(
        &env.producer("r", &["run", "--batch-size", "750", "--restart"])
            .await
            .expect("run again"),
        "producer --restart",
    );

    // The stream as it stands, before any consumer takes from it.
    let js = async_nats::jetstream::new(async_nats::connect(&env.nats_url).await.expect("nats"));
    let stream = js.get_stream(&env.stream).await.expect("stream");
    let mut publications: [Vec<Document>; 2] = Default::default();
    let (mut packed_bytes, mut plain_bytes) = (0, 0);
    for seq in 1..=7 {
        let message = stream.get_raw_message(seq).await.expect("message");
        let packed = message.payload.first() == Some(&common::compression::MARK);
        assert_eq!(packed, seq > 3, "message {seq}: packed {packed}");
        let (plain_len, documents) = unpacked(&message.payload);
        if packed {
            packed_bytes += message.payload.len();
            plain_bytes += plain_len;
        }
        publications[usize::from(packed)].extend(documents);
    }
    for (i, published) in publications.iter().enumerate() {
        assert_eq!(published, &source, "publication {i}: the documents as read");
    }
    assert!(
        packed_bytes * 2 < plain_bytes,
        "packed {packed_bytes} bytes for {plain_bytes}"
    );

    env.run_consumers("r", 2, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");
    e2e::compare::assert_exact_copy(&env, "users")
        .await
        .expect("each document once, as in MongoDB");
}

/// Documents that shrink when packed travel more to a message (a batch may hold up to
/// twice what one message holds, by how much the last batch shrank), and a packed batch
/// that does not fit after all (its documents stopped shrinking) is cut until each
/// part fits: every message within `max_payload`, every document published once.
#[tokio::test(flavor = "multi_thread")]
async fn packed_batches_stretch_and_are_cut_when_their_documents_stop_shrinking() {
    let env = TestEnv::new("stretch").await.expect("env");
    let max_payload = async_nats::connect(&env.nats_url)
        .await
        .expect("nats")
        .server_info()
        .max_payload;
    // 600 bytes each: 5,000 that repeat, then 3,000 of bytes LZ4 cannot shrink.
    let source: Vec<Document> = (0..8_000)
        .map(|i: i32| {
            if i < 5_000 {
                doc! { "_id": i, "text": format!("{}{i}", "a".repeat(600)) }
            } else {
                let noise: Vec<u8> = (0..600).map(|_| rand::random::<u8>()).collect();
                doc! { "_id": i, "noise": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: noise } }
            }
        })
        .collect();
    env.db()
        .collection::<Document>("blobs")
        .insert_many(&source)
        .await
        .expect("insert");
    let produced = env
        .command("producer", "r")
        .args(["run", "--batch-size", "5000"])
        .env("RUST_LOG", "warn,producer::part::batches=debug")
        .output()
        .await
        .expect("producer");
    assert_success(&produced, "producer");
    let log = String::from_utf8_lossy(&produced.stderr);
    assert!(
        log.contains("a packed batch over max_payload is cut in two"),
        "{log}"
    );

    let js = async_nats::jetstream::new(async_nats::connect(&env.nats_url).await.expect("nats"));
    let mut stream = js.get_stream(&env.stream).await.expect("stream");
    let messages = stream.info().await.expect("info").state.messages;
    let (mut published, mut stretched) = (Vec::new(), 0);
    for seq in 1..=messages {
        let message = stream.get_raw_message(seq).await.expect("message");
        assert!(
            message.payload.len() <= max_payload,
            "message {seq}: {} bytes",
            message.payload.len()
        );
        let (plain_len, documents) = unpacked(&message.payload);
        if plain_len > max_payload {
            stretched += 1;
        }
        published.extend(documents);
    }
    assert!(
        stretched >= 1,
        "no batch held more than a message's worth of documents"
    );
    assert_eq!(published, source, "each document once, in _id order");

    env.run_consumers("r", 2, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");
    e2e::compare::assert_exact_copy(&env, "blobs")
        .await
        .expect("an exact copy");
}
