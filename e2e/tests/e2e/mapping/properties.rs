//! Property tests on generated documents of every BSON type, nested and mixed: the
//! Extended JSON writer against `bson`'s own, and the whole pipeline against the source.

use std::collections::HashMap;
use std::time::Duration;

use bson::{doc, Bson, Document, RawDocumentBuf};
use e2e::arbitrary::document;
use e2e::{assert_success, stdout, TestEnv};
use landing::extjson::{self, JsonMode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// The canonical Extended JSON of a document, and whether PostgreSQL can store it (a
/// NUL byte anywhere cannot be).
fn expected(doc: &Document) -> (serde_json::Value, bool) {
    let json = e2e::compare::canonical_extjson(Bson::Document(doc.clone()));
    let storable = !json.to_string().contains("\\u0000");
    (json, storable)
}

proptest! {
    #![proptest_config(Config { cases: 256, failure_persistence: None, ..Config::default() })]

    #[test]
    fn extended_json_matches_bson_in_both_modes(doc in document()) {
        let raw = RawDocumentBuf::try_from(&doc).expect("encodes");
        let (canonical, storable) = expected(&doc);
        let mut text = String::new();
        match extjson::write_document(&raw, JsonMode::Canonical, &mut text) {
            Ok(()) => {
                prop_assert!(storable);
                let ours: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
                prop_assert_eq!(ours, canonical);
            }
            Err(e) => prop_assert!(!storable, "refused {:?}: {}", e.path, e.reason),
        }
        let mut text = String::new();
        // `bson` renders dates from year 10000 on as 9999-12-31T23:59:59.999999999Z,
        // losing them; the specification (and our writer) use $numberLong there.
        if extjson::write_document(&raw, JsonMode::Relaxed, &mut text).is_ok()
            && !has_date_past_9999(&Bson::Document(doc.clone()))
        {
            let ours: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
            prop_assert_eq!(ours, relaxed(Bson::Document(doc.clone()).into_relaxed_extjson()));
        }
    }
}

/// `bson`'s relaxed Extended JSON with a NaN's sign bit dropped: the specification
/// spells a NaN only `"NaN"`.
fn relaxed(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            if map.len() == 1 && map.get("$numberDouble") == Some(&"-NaN".into()) {
                return serde_json::json!({ "$numberDouble": "NaN" });
            }
            map.into_iter().map(|(k, v)| (k, relaxed(v))).collect()
        }
        serde_json::Value::Array(items) => items.into_iter().map(relaxed).collect(),
        other => other,
    }
}

/// Milliseconds from 1970 of 10000-01-01T00:00:00Z.
const YEAR_10000_MS: i64 = 253_402_300_800_000;

fn has_date_past_9999(value: &Bson) -> bool {
    match value {
        Bson::DateTime(dt) => dt.timestamp_millis() >= YEAR_10000_MS,
        Bson::Document(doc) => doc.values().any(has_date_past_9999),
        Bson::Array(items) => items.iter().any(has_date_past_9999),
        _ => false,
    }
}

#[test]
fn relaxed_dates_past_9999_keep_their_value() {
    let raw = RawDocumentBuf::try_from(&doc! { "d": bson::DateTime::from_millis(YEAR_10000_MS) })
        .expect("encodes");
    let mut text = String::new();
    extjson::write_document(&raw, JsonMode::Relaxed, &mut text).expect("writes");
    assert_eq!(text, r#"{"d":{"$date":{"$numberLong":"253402300800000"}}}"#);
}

/// Generated collections go through producer, NATS and consumer into the default
/// table: every storable document lands equal to its source, every other one is in the
/// rejects table, and `verify` agrees.
#[test]
fn generated_collections_migrate_exactly() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut runner = TestRunner::new(Config {
        cases: 4,
        failure_persistence: None,
        ..Config::default()
    });
    let collections = proptest::collection::vec(document(), 1..60);
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&collections, |docs| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            runtime.block_on(migrate_and_compare(n, docs));
            Ok(())
        })
        .expect("every generated collection migrates exactly");
}

async fn migrate_and_compare(case: usize, docs: Vec<Document>) {
    let env = TestEnv::new(&format!("prop{case}")).await.expect("env");
    let docs: Vec<Document> = docs
        .into_iter()
        .enumerate()
        .map(|(i, mut d)| {
            d.insert("_id", i as i32);
            d
        })
        .collect();
    env.db()
        .collection::<Document>("gen")
        .insert_many(&docs)
        .await
        .expect("MongoDB takes the generated documents");

    let consumer = env.spawn_consumer("r1", &[]).expect("consumer");
    let produced = env.producer("r1", &["run"]).await.expect("producer");
    assert_success(&produced, "producer run");
    let output = tokio::time::timeout(Duration::from_secs(120), consumer.wait_with_output())
        .await
        .expect("consumer finishes")
        .expect("consumer output");
    assert_success(&output, "consumer");

    let pg = env.pg().await.expect("pg");
    let landed: HashMap<String, serde_json::Value> = pg
        .query("SELECT _id, doc::text FROM gen", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| {
            let text: String = r.get(1);
            (r.get(0), serde_json::from_str(&text).expect("json"))
        })
        .collect();
    let rejected: Vec<String> = pg
        .query("SELECT doc_id FROM _migrate_rejects ORDER BY doc_id", &[])
        .await
        .expect("rejects")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected_rejects = Vec::new();
    for doc in &docs {
        let id = doc! { "_id": doc.get("_id").cloned().unwrap_or(Bson::Null) };
        let id_text =
            serde_json::to_string(&e2e::compare::canonical_extjson(Bson::Document(id))["_id"])
                .expect("id");
        let (json, storable) = expected(doc);
        if storable {
            assert!(
                landed.get(&id_text) == Some(&json),
                "document {id_text} differs: {json}"
            );
        } else {
            assert!(
                !landed.contains_key(&id_text),
                "{id_text} cannot be stored yet landed"
            );
            expected_rejects.push(id_text);
        }
    }
    expected_rejects.sort();
    assert_eq!(rejected, expected_rejects);
    assert_eq!(landed.len() + rejected.len(), docs.len());

    let verified = env
        .mongo2pg("r1", &["verify", "--range-size", "16"])
        .await
        .expect("verify");
    // No row differs; the expected rejects, if any, wait in _migrate_rejects (exit 5).
    let waiting = if rejected.is_empty() { 0 } else { 5 };
    assert_eq!(
        verified.status.code(),
        Some(waiting),
        "{}",
        stdout(&verified)
    );
}
