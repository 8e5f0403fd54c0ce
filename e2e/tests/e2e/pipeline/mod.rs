//! The pipeline end to end: producer and consumer binaries against real MongoDB, NATS
//! JetStream and PostgreSQL, checking what lands value by value.

use std::collections::HashMap;
use std::time::Duration;

use bson::{doc, Bson, Document, RawDocumentBuf};
use e2e::{assert_one_line_error, assert_success, TestEnv};
use futures::TryStreamExt;

const CONSUMERS_LIMIT: Duration = Duration::from_secs(240);

const USERS_MAPPING: &str = r#"
[collections.users]
table = "users_typed"
columns = [
  { name = "id", path = "_id", type = "text" },
  { name = "username", path = "username", type = "text" },
  { name = "email", path = "email", type = "text" },
  { name = "age", path = "age", type = "int4" },
  { name = "login_count", path = "login_count", type = "int8" },
  { name = "rating", path = "rating", type = "float8" },
  { name = "balance", path = "balance", type = "numeric" },
  { name = "active", path = "active", type = "bool" },
  { name = "created_at", path = "created_at", type = "timestamptz" },
  { name = "external_id", path = "external_id", type = "uuid" },
  { name = "password_hash", path = "password_hash", type = "bytea" },
  { name = "city", path = "address.city", type = "text" },
  { name = "address", path = "address", type = "jsonb" },
  { name = "tags", path = "tags", type = "jsonb" },
]
"#;

fn json(value: &Bson) -> serde_json::Value {
    value.clone().into_canonical_extjson()
}

fn uuid_text(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

async fn source_documents(env: &TestEnv, collection: &str) -> Vec<Document> {
    env.db()
        .collection::<Document>(collection)
        .find(doc! {})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("read source")
}

#[tokio::test(flavor = "multi_thread")]
async fn hundred_thousand_users_land_field_by_field_with_four_consumers() {
    let env = TestEnv::new("users100k").await.expect("env");
    let seeded = env
        .mongo2pg(
            "r1",
            &["seed", "--count", "100000", "--collection", "users"],
        )
        .await
        .expect("seed");
    assert_success(&seeded, "seed");
    // The same documents, unmapped: they land in the default _id + doc table.
    env.db()
        .collection::<Document>("users")
        .aggregate(vec![doc! { "$out": "people" }])
        .await
        .expect("copy users to people");

    let mapping = env.write_file("mapping.toml", USERS_MAPPING);
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            env.spawn_consumer("r1", &["--mapping", &mapping])
                .expect("consumer")
        })
        .collect();
    let produced = env.producer("r1", &["run"]).await.expect("producer");
    assert_success(&produced, "producer run");
    let summary = e2e::stdout(&produced);
    assert!(summary.contains("200000 documents"), "{summary}");

    let outputs = tokio::time::timeout(
        CONSUMERS_LIMIT,
        futures::future::join_all(consumers.into_iter().map(|c| c.wait_with_output())),
    )
    .await
    .expect("consumers finish");
    let mut rows_by_consumer = Vec::new();
    for output in outputs {
        let output = output.expect("consumer output");
        assert_success(&output, "consumer");
        rows_by_consumer.push(e2e::stdout(&output));
    }

    let pg = env.pg().await.expect("pg");
    let source = source_documents(&env, "users").await;
    assert_eq!(source.len(), 100_000);

    // The mapped table: every column type, compared with the source value.
    let rows = pg
        .query(
            "SELECT id, username, email, age, login_count, rating, balance::text, active,
                    (extract(epoch FROM created_at) * 1000)::int8, external_id::text, password_hash,
                    city, address::text, tags::text
             FROM users_typed",
            &[],
        )
        .await
        .expect("query users_typed");
    assert_eq!(rows.len(), 100_000, "exactly one row per document");
    let by_id: HashMap<String, &tokio_postgres::Row> =
        rows.iter().map(|r| (r.get::<_, String>(0), r)).collect();
    assert_eq!(by_id.len(), 100_000, "no _id twice");
    for src in &source {
        let id = src.get_object_id("_id").expect("oid").to_hex();
        let row = by_id.get(&id).unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(
            row.get::<_, String>(1),
            src.get_str("username").expect("username")
        );
        assert_eq!(
            row.get::<_, String>(2),
            src.get_str("email").expect("email")
        );
        assert_eq!(row.get::<_, i32>(3), src.get_i32("age").expect("age"));
        assert_eq!(
            row.get::<_, i64>(4),
            src.get_i64("login_count").expect("login_count")
        );
        assert_eq!(row.get::<_, f64>(5), src.get_f64("rating").expect("rating"));
        let Some(Bson::Decimal128(balance)) = src.get("balance") else {
            panic!("balance")
        };
        assert_eq!(row.get::<_, String>(6), balance.to_string());
        assert_eq!(
            row.get::<_, bool>(7),
            src.get_bool("active").expect("active")
        );
        assert_eq!(
            row.get::<_, i64>(8),
            src.get_datetime("created_at")
                .expect("date")
                .timestamp_millis()
        );
        let Some(Bson::Binary(uuid)) = src.get("external_id") else {
            panic!("uuid")
        };
        assert_eq!(row.get::<_, String>(9), uuid_text(&uuid.bytes));
        let Some(Bson::Binary(hash)) = src.get("password_hash") else {
            panic!("hash")
        };
        assert_eq!(row.get::<_, Vec<u8>>(10), hash.bytes);
        let address = src.get_document("address").expect("address");
        assert_eq!(
            row.get::<_, String>(11),
            address.get_str("city").expect("city")
        );
        let stored: serde_json::Value =
            serde_json::from_str(&row.get::<_, String>(12)).expect("json");
        assert_eq!(stored, json(&Bson::Document(address.clone())));
        let stored: serde_json::Value =
            serde_json::from_str(&row.get::<_, String>(13)).expect("json");
        assert_eq!(stored, json(src.get("tags").expect("tags")));
    }

    // The default table: the whole document as canonical Extended JSON.
    let rows = pg
        .query("SELECT _id, doc::text FROM people", &[])
        .await
        .expect("query people");
    assert_eq!(rows.len(), 100_000);
    let by_id: HashMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for src in &source {
        let id = src.get_object_id("_id").expect("oid").to_hex();
        let stored: serde_json::Value = serde_json::from_str(&by_id[&id]).expect("json");
        assert_eq!(stored, json(&Bson::Document(src.clone())), "document {id}");
    }

    // The work was shared, and nothing was rejected or dead-lettered.
    let busy = rows_by_consumer
        .iter()
        .filter(|out| !out.starts_with("consumer: 0 rows"))
        .count();
    assert!(
        busy >= 2,
        "the batches were not shared: {rows_by_consumer:?}"
    );
    let bad: i64 = pg
        .query_one(
            "SELECT (SELECT count(*) FROM _migrate_rejects) + (SELECT count(*) FROM _migrate_dead_letters)",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(bad, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_typed_field_is_rejected_and_the_rest_of_its_batch_lands() {
    let env = TestEnv::new("rejects").await.expect("env");
    let docs: Vec<Document> = (0..10)
        .map(|i| {
            if i == 5 {
                doc! { "_id": i, "name": format!("a{i}"), "age": "old" }
            } else {
                doc! { "_id": i, "name": format!("a{i}"), "age": i * 10 }
            }
        })
        .collect();
    env.db()
        .collection::<Document>("accounts")
        .insert_many(&docs)
        .await
        .expect("insert");
    let mapping = env.write_file(
        "mapping.toml",
        r#"
        [collections.accounts]
        columns = [
          { name = "id", path = "_id", type = "int4" },
          { name = "name", path = "name", type = "text" },
          { name = "age", path = "age", type = "int4" },
        ]
        "#,
    );
    assert_success(
        &env.producer("r", &["run", "--collection", "accounts"])
            .await
            .expect("run"),
        "producer",
    );

    // Published, not landed yet: `status` says so, and exits 3.
    let status = env.mongo2pg("r", &["status"]).await.expect("status");
    assert_eq!(status.status.code(), Some(3), "{}", e2e::stdout(&status));
    let text = e2e::stdout(&status);
    assert!(
        text.contains("producer finished") && text.contains("status: incomplete"),
        "{text}"
    );

    env.run_consumers("r", 1, &["--mapping", &mapping], CONSUMERS_LIMIT)
        .await
        .expect("consumers");

    let status = env.mongo2pg("r", &["status"]).await.expect("status");
    let text = e2e::stdout(&status);
    // One document waits in the rejects: every document is accounted for, but the
    // run is not done (exit 5), and the line says how to land it.
    assert_eq!(status.status.code(), Some(5), "{text}");
    assert!(
        text.contains("landed with rejects: 1 documents wait in _migrate_rejects")
            && text.contains("mongo2pg replay --run r"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("accounts"))
        .unwrap_or_default();
    let numbers: Vec<&str> = line.split_whitespace().skip(1).collect();
    assert_eq!(
        numbers,
        ["10", "10", "9", "1", "0"],
        "source, published, committed, rejected, dead: {text}"
    );
    assert!(
        text.contains("0 batches waiting, 0 being written"),
        "{text}"
    );

    let pg = env.pg().await.expect("pg");
    let rows = pg
        .query("SELECT id, name, age FROM accounts ORDER BY id", &[])
        .await
        .expect("rows");
    let landed: Vec<(i32, String, i32)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected: Vec<(i32, String, i32)> = (0..10)
        .filter(|i| *i != 5)
        .map(|i| (i, format!("a{i}"), i * 10))
        .collect();
    assert_eq!(landed, expected);

    let reject = pg
        .query_one(
            "SELECT doc_id, field, expected_type, found_type, error, document::text, raw_bson, batch_id FROM _migrate_rejects",
            &[],
        )
        .await
        .expect("exactly one reject");
    assert_eq!(reject.get::<_, String>(0), r#"{"$numberInt":"5"}"#);
    assert_eq!(reject.get::<_, String>(1), "age");
    assert_eq!(reject.get::<_, String>(2), "int4");
    assert_eq!(reject.get::<_, String>(3), "string");
    let error: String = reject.get(4);
    assert!(
        error.contains("\"age\"") && error.contains("int4") && error.contains("string"),
        "{error}"
    );
    let stored: serde_json::Value =
        serde_json::from_str(&reject.get::<_, String>(5)).expect("json");
    assert_eq!(stored, json(&Bson::Document(docs[5].clone())));
    let raw = RawDocumentBuf::try_from(&docs[5]).expect("raw");
    assert_eq!(reject.get::<_, Vec<u8>>(6), raw.as_bytes());

    let batch_id: String = reject.get(7);
    let ledger = pg
        .query_one(
            "SELECT rows_written, rows_rejected FROM _migrate_ledger WHERE batch_id = $1",
            &[&batch_id],
        )
        .await
        .expect("the batch is in the ledger");
    assert_eq!((ledger.get::<_, i32>(0), ledger.get::<_, i32>(1)), (9, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_larger_than_max_payload_arrives_intact() {
    let env = TestEnv::new("large").await.expect("env");
    let nats = async_nats::connect(&env.nats_url).await.expect("nats");
    let max_payload = nats.server_info().max_payload;
    // Varied text so nothing could pass by being compressed or deduplicated.
    let big: String = (0..(3 * max_payload / 16))
        .map(|i| format!("{i:015x}-"))
        .collect();
    assert!(big.len() > 2 * max_payload);
    let docs = vec![
        doc! { "_id": 1, "small": "before" },
        doc! { "_id": 2, "big": &big, "nested": { "also": &big[..1000] } },
        doc! { "_id": 3, "small": "after" },
    ];
    env.db()
        .collection::<Document>("files")
        .insert_many(&docs)
        .await
        .expect("insert");

    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    env.run_consumers("r", 2, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");

    let pg = env.pg().await.expect("pg");
    let rows = pg
        .query("SELECT doc::text FROM files ORDER BY _id", &[])
        .await
        .expect("rows");
    assert_eq!(rows.len(), 3);
    let mut stored: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).expect("json"))
        .collect();
    stored.sort_by_key(|v| {
        v["_id"]["$numberInt"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    let expected: Vec<serde_json::Value> = docs
        .iter()
        .map(|d| json(&Bson::Document(d.clone())))
        .collect();
    assert_eq!(stored, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn mixed_id_types_all_migrate_across_pages() {
    let env = TestEnv::new("mixedids").await.expect("env");
    let ids: Vec<Bson> = vec![
        Bson::ObjectId(bson::oid::ObjectId::new()),
        Bson::ObjectId(bson::oid::ObjectId::new()),
        Bson::String("alpha".into()),
        Bson::String("5".into()),
        Bson::Int32(5),
        Bson::Int64(7_000_000_000),
        Bson::Double(2.5),
        Bson::Decimal128("1.10".parse().expect("decimal")),
        Bson::Document(doc! { "a": 1 }),
        Bson::Boolean(true),
        Bson::DateTime(bson::DateTime::from_millis(0)),
        Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![1, 2],
        }),
        Bson::Null,
        Bson::MinKey,
        Bson::MaxKey,
    ];
    let docs: Vec<Document> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| doc! { "_id": id.clone(), "n": i as i32 })
        .collect();
    env.db()
        .collection::<Document>("mixed")
        .insert_many(&docs)
        .await
        .expect("insert");

    // Two documents per batch: the paging crosses every type bracket boundary.
    assert_success(
        &env.producer("r", &["run", "--batch-size", "2"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers("r", 2, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers");

    let pg = env.pg().await.expect("pg");
    let rows = pg
        .query("SELECT doc::text FROM mixed", &[])
        .await
        .expect("rows");
    let mut stored: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).expect("json"))
        .collect();
    stored.sort_by_key(|v| {
        v["n"]["$numberInt"]
            .as_str()
            .unwrap_or_default()
            .parse::<i32>()
            .unwrap_or(-1)
    });
    let expected: Vec<serde_json::Value> = docs
        .iter()
        .map(|d| json(&Bson::Document(d.clone())))
        .collect();
    assert_eq!(stored, expected);
    let batches: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_ledger", &[])
        .await
        .expect("ledger")
        .get(0);
    assert_eq!(batches, ids.len().div_ceil(2) as i64);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_and_unreachable_servers_give_one_clear_line() {
    let env = TestEnv::new("errors").await.expect("env");
    env.db()
        .collection::<Document>("present")
        .insert_one(doc! { "x": 1 })
        .await
        .expect("insert");

    let out = env
        .producer("r", &["run", "--nats-url", "nats://127.0.0.1:1"])
        .await
        .expect("run");
    assert_one_line_error(&out, "cannot reach NATS at nats://127.0.0.1:1");

    let out = env
        .producer("r", &["run", "--collection", "absent"])
        .await
        .expect("run");
    assert_one_line_error(&out, "collection \"absent\" does not exist");

    let out = env
        .producer(
            "r",
            &[
                "run",
                "--mongodb-uri",
                "mongodb://user:hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=500",
            ],
        )
        .await
        .expect("run");
    assert_one_line_error(&out, "cannot reach MongoDB");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("hunter2"),
        "password leaked"
    );

    let out = env
        .producer("r", &["run", "--batch-size", "zero"])
        .await
        .expect("run");
    assert_one_line_error(&out, "--batch-size");

    let out = env
        .producer("r", &["run", "--run", "no spaces"])
        .await
        .expect("run");
    assert_one_line_error(&out, "run name");

    let out = env
        .command("consumer", "r")
        .args([
            "run",
            "--database-url",
            "postgres://app:hunter2@127.0.0.1:1/x",
        ])
        .output()
        .await
        .expect("consumer");
    assert_one_line_error(
        &out,
        "cannot reach PostgreSQL at postgres://app:***@127.0.0.1:1/x",
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("hunter2"),
        "password leaked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_postgres_refuses_are_isolated_into_rejects_and_the_rest_lands() {
    let env = TestEnv::new("refused").await.expect("env");
    let docs: Vec<Document> = (0..100).map(|i| doc! { "_id": i, "age": i }).collect();
    env.db()
        .collection::<Document>("people")
        .insert_many(&docs)
        .await
        .expect("insert");
    // The target exists already, with a rule the data breaks for ages 90 and over.
    let pg = env.pg().await.expect("pg");
    pg.batch_execute("CREATE TABLE people (id int4 PRIMARY KEY, age int4 CHECK (age < 90))")
        .await
        .expect("create");
    let mapping = env.write_file(
        "mapping.toml",
        r#"
        [collections.people]
        columns = [
          { name = "id", path = "_id", type = "int4" },
          { name = "age", path = "age", type = "int4" },
        ]
        "#,
    );
    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    env.run_consumers("r", 2, &["--mapping", &mapping], CONSUMERS_LIMIT)
        .await
        .expect("consumers");

    let landed: Vec<i32> = pg
        .query("SELECT id FROM people ORDER BY id", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(landed, (0..90).collect::<Vec<i32>>());
    let rejects = pg
        .query(
            "SELECT doc_id, error, document::text FROM _migrate_rejects ORDER BY doc_id",
            &[],
        )
        .await
        .expect("rejects");
    assert_eq!(rejects.len(), 10);
    for (row, i) in rejects.iter().zip(90..100) {
        assert_eq!(
            row.get::<_, String>(0),
            format!(r#"{{"$numberInt":"{i}"}}"#)
        );
        let error: String = row.get(1);
        assert!(
            error.contains("check constraint") && error.contains("23514"),
            "{error}"
        );
        let stored: serde_json::Value =
            serde_json::from_str(&row.get::<_, String>(2)).expect("json");
        assert_eq!(stored, json(&Bson::Document(docs[i as usize].clone())));
    }
    let counts = pg
        .query_one(
            "SELECT sum(rows_written)::int8, sum(rows_rejected)::int8 FROM _migrate_ledger",
            &[],
        )
        .await
        .expect("ledger");
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1)), (90, 10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_refused_on_every_delivery_is_dead_lettered_and_the_run_goes_on() {
    let env = TestEnv::new("deadbatch").await.expect("env");
    let docs: Vec<Document> = (0..30)
        .map(|i| doc! { "_id": i, "kind": if i < 10 { "bad" } else { "good" } })
        .collect();
    env.db()
        .collection::<Document>("events")
        .insert_many(&docs)
        .await
        .expect("insert");
    // A statement trigger refuses the whole first batch, the same way on every delivery:
    // not a row (SQLSTATE P0001 after the rows), so the batch is retried, then
    // dead-lettered.
    let pg = env.pg().await.expect("pg");
    e2e::refuse_bad_events(&pg).await.expect("trigger");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "10"])
            .await
            .expect("run"),
        "producer",
    );
    env.run_consumers("r", 1, &["--max-deliver", "2"], CONSUMERS_LIMIT)
        .await
        .expect("consumers exit: the dead-lettered batch is accounted for");

    let good: i64 = pg
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(good, 20, "the other batches landed");
    let dead = pg
        .query_one(
            "SELECT reason, deliveries, collection, payload FROM _migrate_dead_letters",
            &[],
        )
        .await
        .expect("one dead letter");
    let reason: String = dead.get(0);
    assert!(
        reason.contains("failed on 2 deliveries") && reason.contains("refused by trigger"),
        "{reason}"
    );
    assert_eq!(dead.get::<_, i64>(1), 2);
    assert_eq!(dead.get::<_, String>(2), "events");
    let envelope_bytes: Vec<u8> = dead.get(3);
    let plain = common::compression::unpack(&envelope_bytes).expect("the batch is kept whole");
    let envelope = common::batch::Envelope::decode(&plain).expect("the batch is kept whole");
    assert_eq!(envelope.docs.len(), 10);

    // status: incomplete, with the dead batch shown.
    let status = env.mongo2pg("r", &["status"]).await.expect("status");
    assert_eq!(status.status.code(), Some(3), "{}", e2e::stdout(&status));
    let text = e2e::stdout(&status);
    let line = text
        .lines()
        .find(|l| l.starts_with("events"))
        .unwrap_or_default();
    let numbers: Vec<&str> = line.split_whitespace().skip(1).collect();
    assert_eq!(numbers, ["30", "30", "20", "0", "1"], "{text}");
}

mod edges;
mod key_after_load;
mod selection;
