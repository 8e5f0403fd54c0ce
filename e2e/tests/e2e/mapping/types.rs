//! Faithful types end to end: hard documents, typed mappings with rejects and their
//! replay, arrays and child tables, `_extra`, `infer`, and `verify` agreeing with all
//! of it, against real MongoDB, NATS JetStream and PostgreSQL.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bson::{doc, Bson, Document};
use e2e::fixture::{hard_documents, REJECTED_BY_DEFAULT};
use e2e::{assert_success, stdout, TestEnv};

const LIMIT: Duration = Duration::from_secs(240);

/// Publishes the collections and lands them with one consumer.
async fn migrate(env: &TestEnv, run: &str, mapping: Option<&str>) {
    migrate_with(env, run, mapping, &["run"]).await;
}

/// [`migrate`] with the producer's arguments.
async fn migrate_with(env: &TestEnv, run: &str, mapping: Option<&str>, producer: &[&str]) {
    let extra: Vec<&str> = mapping.map(|m| vec!["--mapping", m]).unwrap_or_default();
    let consumer = env.spawn_consumer(run, &extra).expect("consumer");
    let produced = env.producer(run, producer).await.expect("producer");
    assert_success(&produced, "producer run");
    let output = tokio::time::timeout(LIMIT, consumer.wait_with_output())
        .await
        .expect("consumer finishes")
        .expect("consumer output");
    assert_success(&output, "consumer");
}

async fn verify(env: &TestEnv, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["verify", "--range-size", "7"];
    all.extend_from_slice(args);
    env.mongo2pg_report("r1", &all).await.expect("verify")
}

/// Rejects by document id: (field, expected type, found type, error, excerpt).
async fn rejects(
    env: &TestEnv,
) -> BTreeMap<
    String,
    (
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    ),
> {
    let pg = env.pg().await.expect("pg");
    pg.query(
        "SELECT doc_id, field, expected_type, found_type, error, excerpt FROM _migrate_rejects",
        &[],
    )
    .await
    .expect("rejects")
    .iter()
    .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))))
    .collect()
}

async fn insert(env: &TestEnv, collection: &str, docs: &[Document]) {
    // One at a time: the 16 MiB document fills an insert on its own.
    for doc in docs {
        env.db()
            .collection::<Document>(collection)
            .insert_one(doc)
            .await
            .expect("insert");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hard_documents_land_whole_or_are_rejected_with_their_reason() {
    let env = TestEnv::new("hard").await.expect("env");
    let docs = hard_documents();
    insert(&env, "hard", &docs).await;
    migrate(&env, "r1", None).await;

    let rejected = rejects(&env).await;
    let ids: Vec<&str> = rejected.keys().map(String::as_str).collect();
    assert_eq!(ids, REJECTED_BY_DEFAULT);
    let (field, _, _, error, excerpt) = &rejected["nul"];
    assert_eq!(field, "");
    assert!(
        error.contains("\"text\"") && error.contains("NUL"),
        "{error}"
    );
    assert!(excerpt.is_none() || !excerpt.as_deref().unwrap_or("").is_empty());

    // Every other document is in the table, equal to its canonical Extended JSON.
    let pg = env.pg().await.expect("pg");
    let rows = pg
        .query("SELECT _id, doc::text FROM hard", &[])
        .await
        .expect("rows");
    let landed: HashMap<String, serde_json::Value> = rows
        .iter()
        .map(|r| {
            let text: String = r.get(1);
            (r.get(0), serde_json::from_str(&text).expect("json"))
        })
        .collect();
    assert_eq!(landed.len(), docs.len() - REJECTED_BY_DEFAULT.len());
    for doc in &docs {
        let id = doc.get_str("_id").expect("id");
        if REJECTED_BY_DEFAULT.contains(&id) {
            continue;
        }
        let expected = Bson::Document(doc.clone()).into_canonical_extjson();
        assert!(
            landed.get(id) == Some(&expected),
            "document {id} differs from its source"
        );
    }
    let (code, text) = verify(&env, &[]).await;
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.contains(&format!(
            "{} rows equal, 1 in _migrate_rejects",
            docs.len() - 1
        )),
        "{text}"
    );
}

const TYPED: &str = r#"
[collections.hard]
table = "hard_typed"
columns = [
  { name = "id", path = "_id", type = "text" },
  { path = "v", type = "int8" },
  { path = "d", type = "timestamptz" },
  { path = "dec", type = "numeric" },
  { path = "uuid", type = "uuid" },
  { path = "ts", type = "int8" },
  { path = "nan", type = "float8" },
]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn typed_rejects_name_the_field_and_replay_lands_them_after_the_fix() {
    let env = TestEnv::new("typed").await.expect("env");
    let docs: Vec<Document> = hard_documents()
        .into_iter()
        .filter(|d| d.get_str("_id").ok() != Some("big"))
        .collect();
    insert(&env, "hard", &docs).await;
    let mapping = env.write_file("typed.toml", TYPED);
    migrate(&env, "r1", Some(&mapping)).await;

    let rejected = rejects(&env).await;
    let expected_ids = [
        "date-too-early",
        "date-too-late",
        "five-array",
        "five-date",
        "five-object",
        "five-string",
        "nul",
    ];
    assert_eq!(
        rejected.keys().map(String::as_str).collect::<Vec<_>>(),
        expected_ids
    );
    let (field, expected, found, _, excerpt) = &rejected["five-string"];
    assert_eq!(
        (field.as_str(), expected.as_deref(), found.as_deref()),
        ("v", Some("int8"), Some("string"))
    );
    assert_eq!(excerpt.as_deref(), Some("\"five\""));
    let (field, expected, _, error, _) = &rejected["date-too-early"];
    assert_eq!(
        (field.as_str(), expected.as_deref()),
        ("d", Some("timestamptz"))
    );
    assert!(error.contains("range"), "{error}");
    let (field, _, _, error, _) = &rejected["nul"];
    assert_eq!(field, "text", "the unmapped field is named");
    assert!(error.contains("_extra") && error.contains("NUL"), "{error}");

    // Values that landed, exactly; fields no column reads are in _extra by path.
    let pg = env.pg().await.expect("pg");
    let row = |id: &'static str| {
        let pg = &pg;
        async move {
            pg.query_one(
                "SELECT v, d::text, dec::text, uuid::text, ts, nan::text, _extra::text FROM hard_typed WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"))
        }
    };
    assert_eq!(row("five-long").await.get::<_, Option<i64>>(0), Some(5));
    assert_eq!(
        row("dec-scale")
            .await
            .get::<_, Option<String>>(2)
            .as_deref(),
        Some("1.500")
    );
    assert_eq!(
        row("dec-nan").await.get::<_, Option<String>>(2).as_deref(),
        Some("NaN")
    );
    assert_eq!(
        row("dec-inf").await.get::<_, Option<String>>(2).as_deref(),
        Some("-Infinity")
    );
    let max: String = row("dec-max").await.get(2);
    assert_eq!(max, format!("{}{}", "9".repeat(34), "0".repeat(6144 - 33)));
    let tiny: String = row("dec-tiny").await.get(2);
    assert_eq!(tiny, format!("0.{}1", "0".repeat(6175)));
    assert_eq!(
        row("date-min").await.get::<_, Option<String>>(1).as_deref(),
        Some("4714-11-24 00:00:00+00 BC")
    );
    let types = row("types").await;
    assert_eq!(
        types.get::<_, Option<String>>(3).as_deref(),
        Some("00010203-0405-0607-0809-0a0b0c0d0e0f")
    );
    assert_eq!(types.get::<_, Option<i64>>(4), Some((1 << 32) | 2));
    let extra: serde_json::Value = serde_json::from_str(&types.get::<_, String>(6)).expect("json");
    assert_eq!(extra["bin"]["$binary"]["base64"], "AP8B");
    assert_eq!(extra["inf"]["$numberDouble"], "-Infinity");
    assert!(
        extra.get("uuid").is_none() && extra.get("ts").is_none(),
        "{extra}"
    );
    let keys: serde_json::Value =
        serde_json::from_str(&row("keys").await.get::<_, String>(6)).expect("json");
    assert_eq!(keys["a.b"]["$numberInt"], "1");
    assert_eq!(keys["x"]["$in"]["$numberInt"], "8");

    let (code, text) = verify(&env, &["--mapping", &mapping]).await;
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("7 in _migrate_rejects"), "{text}");

    // Fix the mapping (v as jsonb), change the column to match, and replay.
    let fixed = env.write_file(
        "fixed.toml",
        &TYPED.replace(
            r#"path = "v", type = "int8""#,
            r#"path = "v", type = "jsonb""#,
        ),
    );
    pg.batch_execute(
        r#"ALTER TABLE hard_typed ALTER COLUMN v TYPE jsonb USING CASE WHEN v IS NULL THEN NULL ELSE jsonb_build_object('$numberLong', v::text) END"#,
    )
    .await
    .expect("alter");
    let replayed = env
        .command("mongo2pg", "r1")
        .args(["replay", "--mapping", &fixed])
        .output()
        .await
        .expect("replay");
    assert_eq!(
        replayed.status.code(),
        Some(3),
        "some still rejected: {}",
        stdout(&replayed)
    );
    assert!(
        stdout(&replayed).contains("4 rejects landed, 3 still rejected"),
        "{}",
        stdout(&replayed)
    );
    let left: Vec<String> = rejects(&env).await.into_keys().collect();
    assert_eq!(left, ["date-too-early", "date-too-late", "nul"]);
    let array: String = pg
        .query_one(
            "SELECT v::text FROM hard_typed WHERE id = 'five-array'",
            &[],
        )
        .await
        .expect("landed")
        .get(0);
    assert_eq!(array, r#"[{"$numberInt": "5"}, "five"]"#);
    // The ledger moved the landed documents from rejected to written.
    let (written, rejected): (i64, i64) = {
        let r = pg
            .query_one(
                "SELECT sum(rows_written)::int8, sum(rows_rejected)::int8 FROM _migrate_ledger",
                &[],
            )
            .await
            .expect("ledger");
        (r.get(0), r.get(1))
    };
    assert_eq!((written, rejected), (docs.len() as i64 - 3, 3));
    let (code, text) = verify(&env, &["--mapping", &fixed]).await;
    assert_eq!(code, Some(5), "{text}");
    // Replaying again finds nothing new to land.
    let again = env
        .command("mongo2pg", "r1")
        .args(["replay", "--mapping", &fixed])
        .output()
        .await
        .expect("replay");
    assert!(
        stdout(&again).contains("0 rejects landed, 3 still rejected"),
        "{}",
        stdout(&again)
    );
}

const ORDERS: &str = r#"
[collections.orders]
missing = "distinct"
columns = [
  { name = "id", path = "_id", type = "int8" },
  { path = "tags", type = "text[]" },
  { path = "scores", type = "float8[]" },
  { path = "customer.name", type = "text" },
]
children = [ { path = "items", type = "jsonb" } ]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn arrays_child_tables_and_new_fields_land_and_verify_repairs_what_changed() {
    let env = TestEnv::new("orders").await.expect("env");
    let docs: Vec<Document> = (0..50_i64)
        .map(|i| {
            let mut d = doc! {
                "_id": i,
                "tags": (0..i % 4).map(|t| format!("t{t}")).collect::<Vec<_>>(),
                "scores": [i as f64 / 2.0, f64::INFINITY],
                "customer": { "name": format!("c{i}"), "since": 2020 },
                "items": (0..i % 3).map(|n| doc! { "sku": format!("s{n}"), "qty": n }).collect::<Vec<_>>(),
            };
            if i % 10 == 0 {
                d.insert("added_later", doc! { "note": "a field the mapping does not know" });
            }
            if i == 7 {
                d.remove("tags");
            }
            d
        })
        .collect();
    insert(&env, "orders", &docs).await;
    let mapping = env.write_file("orders.toml", ORDERS);
    migrate(&env, "r1", Some(&mapping)).await;
    assert!(rejects(&env).await.is_empty());

    let pg = env.pg().await.expect("pg");
    let r = pg
        .query_one(
            "SELECT tags, scores::text, customer_name, _extra::text, _missing FROM orders WHERE id = 10",
            &[],
        )
        .await
        .expect("row");
    assert_eq!(r.get::<_, Vec<String>>(0), ["t0", "t1"]);
    assert_eq!(r.get::<_, String>(1), "{5,Infinity}");
    assert_eq!(r.get::<_, String>(2), "c10");
    let extra: serde_json::Value = serde_json::from_str(&r.get::<_, String>(3)).expect("json");
    assert_eq!(
        extra,
        serde_json::json!({ "customer": { "since": { "$numberInt": "2020" } },
                            "added_later": { "note": "a field the mapping does not know" } })
    );
    assert!(r.get::<_, Vec<String>>(4).is_empty());
    let missing: Vec<String> = pg
        .query_one("SELECT _missing FROM orders WHERE id = 7", &[])
        .await
        .expect("row")
        .get(0);
    assert_eq!(missing, ["tags"]);
    let items = pg
        .query("SELECT _parent, _position, value->>'sku' FROM orders_items WHERE _parent = 5 ORDER BY _position", &[])
        .await
        .expect("items");
    let items: Vec<(i64, i32, String)> = items
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(items, [(5, 0, "s0".to_string()), (5, 1, "s1".to_string())]);
    let total: i64 = pg
        .query_one("SELECT count(*) FROM orders_items", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(total, (0..50).map(|i| i % 3).sum::<i64>());

    let (code, text) = verify(&env, &["--mapping", &mapping]).await;
    assert_eq!(code, Some(0), "{text}");

    // Damage the target three ways; verify names each, --repair restores them.
    pg.batch_execute(
        "UPDATE orders SET tags = '{changed}' WHERE id = 3;
         DELETE FROM orders_items WHERE _parent = 8 AND _position = 1;
         DELETE FROM orders WHERE id = 49;",
    )
    .await
    .expect("damage");
    let (code, text) = verify(&env, &["--mapping", &mapping]).await;
    assert_eq!(code, Some(4), "{text}");
    assert!(text.contains("differs  _id {\"$numberLong\":\"3\"}: column \"tags\": source {t0,t1,t2}, target {changed}"), "{text}");
    assert!(
        text.contains("its rows in orders_items differ (source 2, target 1)"),
        "{text}"
    );
    assert!(
        text.contains("missing  _id {\"$numberLong\":\"49\"}"),
        "{text}"
    );
    assert!(text.contains("3 differences"), "{text}");
    let (code, text) = verify(&env, &["--mapping", &mapping, "--repair"]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("3 documents landed again"), "{text}");
    let (code, text) = verify(&env, &["--mapping", &mapping]).await;
    assert_eq!(code, Some(0), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn inferred_mappings_migrate_and_verify() {
    let env = TestEnv::new("infer").await.expect("env");
    let docs: Vec<Document> = hard_documents()
        .into_iter()
        .filter(|d| !["big", "nul"].contains(&d.get_str("_id").unwrap_or("")))
        .collect();
    insert(&env, "hard", &docs).await;
    let out = std::env::temp_dir().join(format!("{}-inferred.toml", env.name));
    let sql = std::env::temp_dir().join(format!("{}-inferred.sql", env.name));
    let inferred = env
        .mongo2pg(
            "r1",
            &[
                "infer",
                "--multi-type",
                "jsonb",
                "--out",
                &out.display().to_string(),
                "--sql",
                &sql.display().to_string(),
            ],
        )
        .await
        .expect("infer");
    assert_success(&inferred, "infer");
    let printed = stdout(&inferred);
    assert!(
        printed.contains("v ") && printed.contains("[several types]"),
        "{printed}"
    );
    let mapping = std::fs::read_to_string(&out).expect("mapping written");
    assert!(
        mapping.contains("path = \"v\"\ntype = \"jsonb\""),
        "{mapping}"
    );
    assert!(
        mapping.contains("path = \"dec\"\ntype = \"numeric\""),
        "{mapping}"
    );
    let ddl = std::fs::read_to_string(&sql).expect("sql written");
    // In a schema named after the database, created first.
    let schema = env.db().name().to_string();
    assert!(
        ddl.starts_with(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\";"))
            && ddl.contains(&format!("CREATE TABLE IF NOT EXISTS \"{schema}\".\"hard\"")),
        "{ddl}"
    );
    // The 200-character key got a name PostgreSQL keeps whole.
    let long_column = format!("{}_", "k".repeat(54));
    assert!(ddl.contains(&long_column), "{ddl}");
    env.pg()
        .await
        .expect("pg")
        .batch_execute(&ddl)
        .await
        .expect("the DDL runs");

    let mapping_path = out.display().to_string();
    migrate(&env, "r1", Some(&mapping_path)).await;
    let left: Vec<String> = rejects(&env).await.into_keys().collect();
    assert_eq!(
        left,
        ["date-too-early", "date-too-late"],
        "only what timestamptz cannot hold"
    );
    let (code, text) = verify(&env, &["--mapping", &mapping_path]).await;
    assert_eq!(code, Some(5), "{text}");
}

/// `_id`s that print alike (an ObjectId and its hex string, 5 and the string of its
/// Extended JSON, null and "null", subdocuments differing in key order) are distinct
/// documents in MongoDB and land as distinct rows, in one batch and across batches.
/// They shared one text key: in one batch the second became a reject, across batches
/// it was skipped as "already landed", silently missing.
#[tokio::test(flavor = "multi_thread")]
async fn ids_that_print_alike_land_as_distinct_rows() {
    let env = TestEnv::new("ids_alike").await.expect("env");
    let oid = bson::oid::ObjectId::new();
    let ids = [
        Bson::ObjectId(oid),
        Bson::String(oid.to_hex()),
        Bson::Int32(5),
        Bson::String(r#"{"$numberInt":"5"}"#.into()),
        Bson::Null,
        Bson::String("null".into()),
        Bson::Document(doc! { "a": 1, "b": 2 }),
        Bson::Document(doc! { "b": 2, "a": 1 }),
        Bson::String("plain".into()),
    ];
    let docs: Vec<Document> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| doc! { "_id": id.clone(), "i": i as i32 })
        .collect();
    for collection in ["one_batch", "many_batches"] {
        env.db()
            .collection::<Document>(collection)
            .insert_many(&docs)
            .await
            .expect("insert");
    }
    let consumer = env.spawn_consumer("r1", &[]).expect("consumer");
    for (collection, size) in [("one_batch", "100"), ("many_batches", "1")] {
        let produced = env
            .producer(
                "r1",
                &["run", "--collection", collection, "--batch-size", size],
            )
            .await
            .expect("producer");
        assert_success(&produced, "producer run");
    }
    let output = tokio::time::timeout(LIMIT, consumer.wait_with_output())
        .await
        .expect("consumer finishes")
        .expect("consumer output");
    assert_success(&output, "consumer");
    let pg = env.pg().await.expect("pg");
    for collection in ["one_batch", "many_batches"] {
        let rows: Vec<(String, i32)> = pg
            .query(
                &format!("SELECT _id, (doc->'i'->>'$numberInt')::int FROM {collection} ORDER BY 2"),
                &[],
            )
            .await
            .expect("rows")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let landed: Vec<i32> = rows.iter().map(|(_, i)| *i).collect();
        assert_eq!(
            landed,
            (0..ids.len() as i32).collect::<Vec<_>>(),
            "{collection}: every document its own row: {rows:?}"
        );
        assert_eq!(rows[0].0, oid.to_hex(), "an ObjectId key stays plain hex");
        assert_eq!(rows[8].0, "plain", "a plain string key stays as it is");
        e2e::compare::assert_exact_copy(&env, collection)
            .await
            .expect("exact copy");
    }
    let rejects: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_rejects", &[])
        .await
        .expect("rejects")
        .get(0);
    assert_eq!(rejects, 0);
}

const TYPED_KEYS: &str = r#"
[collections.by_number]
columns = [ { name = "id", path = "_id", type = "int8" } ]
[collections.by_bytes]
columns = [ { name = "id", path = "_id", type = "bytea" } ]
"#;

/// Distinct `_id`s that a typed key would give one cell (a timestamp and the int64
/// t·2³²+i; an ObjectId and a binary of its 12 bytes) are never one row with the
/// second skipped as "landed already": the one the key cannot tell apart is a reject
/// naming the reason, in one batch or in two.
#[tokio::test(flavor = "multi_thread")]
async fn a_typed_key_never_skips_a_different_document_as_landed() {
    let env = TestEnv::new("typed_keys").await.expect("env");
    let oid = bson::oid::ObjectId::new();
    let binary = Bson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: oid.bytes().to_vec(),
    });
    insert(
        &env,
        "by_number",
        &[
            doc! { "_id": (1_i64 << 32) | 2, "v": "number" },
            doc! { "_id": bson::Timestamp { time: 1, increment: 2 }, "v": "timestamp" },
        ],
    )
    .await;
    insert(
        &env,
        "by_bytes",
        &[
            doc! { "_id": oid, "v": "object id" },
            doc! { "_id": binary, "v": "binary" },
        ],
    )
    .await;
    let mapping = env.write_file("keys.toml", TYPED_KEYS);
    migrate_with(&env, "r1", Some(&mapping), &["run", "--batch-size", "1"]).await;

    let pg = env.pg().await.expect("pg");
    let number: Vec<(i64, String)> = pg
        .query("SELECT id, _extra->>'v' FROM by_number", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(number, [((1_i64 << 32) | 2, "number".to_string())]);
    let bytes: Vec<(Vec<u8>, String)> = pg
        .query("SELECT id, _extra->>'v' FROM by_bytes", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(bytes, [(oid.bytes().to_vec(), "object id".to_string())]);
    let rejected: Vec<(String, String, String)> = pg
        .query(
            "SELECT collection, field, error FROM _migrate_rejects ORDER BY collection",
            &[],
        )
        .await
        .expect("rejects")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!((&*rejected[0].0, &*rejected[0].1), ("by_bytes", "_id"));
    assert!(rejected[0].2.contains("12-byte binary"), "{rejected:?}");
    assert_eq!((&*rejected[1].0, &*rejected[1].1), ("by_number", "_id"));
    assert!(rejected[1].2.contains("timestamp"), "{rejected:?}");
    let (code, report) = env
        .mongo2pg_report("r1", &["status"])
        .await
        .expect("status");
    assert_eq!(code, Some(5), "rejects are not a complete run: {report}");
    assert!(
        report.contains("landed with rejects: 2 documents"),
        "{report}"
    );
}

/// One mapping per run: the first consumer records it; a consumer with another (or
/// none) is refused in one line naming both (they split a collection over two tables
/// at random under "status: complete"); `mongo2pg replay --mapping <fixed>` makes the
/// fixed one the run's, and `replay` without `--mapping` takes the run's by itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_lands_with_one_mapping_and_replay_takes_it_by_itself() {
    let env = TestEnv::new("one_mapping").await.expect("env");
    env.db()
        .collection::<Document>("scores")
        .insert_many([
            doc! { "_id": 1, "score": 10 },
            doc! { "_id": 2, "score": "high" },
            doc! { "_id": 3, "score": 30 },
        ])
        .await
        .expect("insert");
    let typed = env.write_file(
        "typed.toml",
        "[collections.scores]\ncolumns = [ { path = \"_id\", type = \"int4\" }, { path = \"score\", type = \"int4\" } ]\n",
    );
    let fixed = env.write_file(
        "fixed.toml",
        "[collections.scores]\ncolumns = [ { path = \"_id\", type = \"int4\" }, { name = \"score_any\", path = \"score\", type = \"jsonb\" } ]\n",
    );
    let produced = env.producer("r7", &["run"]).await.expect("producer");
    assert_success(&produced, "producer run");
    env.run_consumers("r7", 1, &["--mapping", &typed], LIMIT)
        .await
        .expect("the first consumer records its mapping");

    // Another mapping, or none, is refused before it lands anything.
    for extra in [vec![], vec!["--mapping", fixed.as_str()]] {
        let other = env
            .spawn_consumer("r7", &extra)
            .expect("consumer")
            .wait_with_output()
            .await
            .expect("consumer output");
        e2e::assert_one_line_error(&other, "lands with the mapping");
        let said = String::from_utf8_lossy(&other.stderr);
        assert!(said.contains("typed.toml"), "{said}");
    }
    let pg = env.pg().await.expect("pg");
    let tables: i64 = pg
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'scores%'",
            &[],
        )
        .await
        .expect("tables")
        .get(0);
    assert_eq!(tables, 1, "no second table for the collection");

    // The fix lands the reject and becomes the run's mapping.
    let replayed = env
        .command("mongo2pg", "r7")
        .args(["replay", "--mapping", &fixed])
        .output()
        .await
        .expect("replay");
    assert_success(&replayed, "replay with the fixed mapping");
    let landed: String = pg
        .query_one("SELECT score_any #>> '{}' FROM scores WHERE _id = 2", &[])
        .await
        .expect("the replayed row")
        .get(0);
    assert_eq!(landed, "high");
    let refused = env
        .spawn_consumer("r7", &["--mapping", &typed])
        .expect("consumer")
        .wait_with_output()
        .await
        .expect("consumer output");
    e2e::assert_one_line_error(&refused, "fixed.toml");
    let accepted = env
        .spawn_consumer("r7", &["--mapping", &fixed])
        .expect("consumer")
        .wait_with_output()
        .await
        .expect("consumer output");
    assert_success(&accepted, "a consumer with the run's mapping");
    // Without --mapping, replay uses the run's: nothing is left to land, nothing fails.
    let again = env
        .command("mongo2pg", "r7")
        .arg("replay")
        .output()
        .await
        .expect("replay");
    assert_success(&again, "replay with the run's mapping");

    // verify takes the run's mapping by itself: the rows landed before the fix lack
    // its new column, which it says, and --repair lands them again; another mapping
    // than the run's is refused.
    let (code, report) = env
        .mongo2pg_report("r7", &["verify"])
        .await
        .expect("verify");
    assert_eq!(code, Some(4), "{report}");
    assert!(
        report.contains("mapping: ") && report.contains("fixed.toml"),
        "{report}"
    );
    let (code, report) = env
        .mongo2pg_report("r7", &["verify", "--repair"])
        .await
        .expect("verify --repair");
    assert_eq!(code, Some(0), "{report}");
    let repaired: Vec<(i32, String)> = pg
        .query("SELECT _id, score_any::text FROM scores ORDER BY _id", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        repaired,
        [
            (1, r#"{"$numberInt": "10"}"#.to_string()),
            (2, r#""high""#.to_string()),
            (3, r#"{"$numberInt": "30"}"#.to_string())
        ]
    );
    let (code, report) = env
        .mongo2pg_report("r7", &["verify", "--mapping", &typed])
        .await
        .expect("verify");
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("was landed with the mapping") && report.contains("fixed.toml"),
        "{report}"
    );
}

/// A document whose `_id` holds a NUL byte (text cannot store it) is a reject with its
/// `_id` escaped, and `verify` counts it as rejected: it failed with PostgreSQL's
/// 22021 (exit 1).
#[tokio::test(flavor = "multi_thread")]
async fn an_id_holding_a_nul_byte_is_a_reject_verify_can_name() {
    let env = TestEnv::new("nul_id").await.expect("env");
    env.db()
        .collection::<Document>("nul")
        .insert_many([
            doc! { "_id": "a\0b", "v": 1 },
            doc! { "_id": "plain", "v": 2 },
        ])
        .await
        .expect("insert");
    migrate(&env, "r1", None).await;
    let pg = env.pg().await.expect("pg");
    let doc_id: String = pg
        .query_one("SELECT doc_id FROM _migrate_rejects", &[])
        .await
        .expect("one reject")
        .get(0);
    assert_eq!(doc_id, r#""a\u0000b""#);
    let (code, text) = verify(&env, &["--collection", "nul"]).await;
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.contains("1 rows equal, 1 in _migrate_rejects"),
        "{text}"
    );
}

/// A collection whose top-level keys are data (here 1,000 keys spread over documents,
/// like a browser-compatibility table's names) gets no column per key from `infer`:
/// they stay in `_extra`, it says so, and the mapping lands every document. `infer`
/// failed, advising a limit that could not help.
#[tokio::test(flavor = "multi_thread")]
async fn infer_keeps_keys_that_are_data_in_extra() {
    let env = TestEnv::new("infer_wide").await.expect("env");
    let docs: Vec<Document> = (0..100)
        .map(|i| {
            let mut doc = doc! { "_id": i };
            for k in 0..10 {
                doc.insert(format!("browser_{}", i * 10 + k), doc! { "since": k });
            }
            doc
        })
        .collect();
    env.db()
        .collection::<Document>("compat")
        .insert_many(&docs)
        .await
        .expect("insert");
    let out = std::env::temp_dir().join(format!("{}-wide.toml", env.name));
    let sql = std::env::temp_dir().join(format!("{}-wide.sql", env.name));
    let inferred = env
        .mongo2pg(
            "r1",
            &[
                "infer",
                "--out",
                &out.display().to_string(),
                "--sql",
                &sql.display().to_string(),
            ],
        )
        .await
        .expect("infer");
    assert_success(&inferred, "infer");
    assert!(
        stdout(&inferred).contains("1000 top-level fields") && stdout(&inferred).contains("_extra"),
        "{}",
        stdout(&inferred)
    );
    let mapping = out.display().to_string();
    migrate(&env, "r1", Some(&mapping)).await;
    let (code, text) = verify(&env, &["--mapping", &mapping]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("100 rows equal, 0 in _migrate_rejects"),
        "{text}"
    );
}
