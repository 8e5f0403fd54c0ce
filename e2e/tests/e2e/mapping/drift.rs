//! Schema drift with `new_fields = "columns"`: fields the mapping does not name become
//! columns while several consumers land the collection at once, against real MongoDB,
//! NATS JetStream and PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use bson::{doc, Bson, DateTime, Document};
use e2e::{assert_success, TestEnv};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(240);
const DOCUMENTS: i64 = 3000;
/// Longer than PostgreSQL's 63-byte identifiers.
const LONG_KEY: &str = "a_field_name_far_longer_than_the_sixty_three_bytes_postgresql_keeps";

const EVENTS: &str = r#"
[collections.events]
new_fields = "columns"
columns = [
  { name = "id", path = "_id", type = "int8" },
  { path = "kind", type = "text" },
]

[collections.daily]
new_fields = "columns"
max_new_columns = 20
columns = [ { name = "id", path = "_id", type = "int8" } ]
"#;

/// A collection that uses keys as data: 60 distinct keys, one per document.
const DAILY: i64 = 300;
const DAILY_KEYS: i64 = 60;

/// Document `i`. Batches are 50 documents in `_id` order, and in every batch the first
/// document holding `score` holds an integer, so whichever writer meets `score` first
/// makes an int8 column; the strings after it cannot go there and stay in `_extra`.
fn event(i: i64) -> Document {
    let mut d = doc! { "_id": i, "kind": format!("k{}", i % 7), "v": i as i32 };
    if i >= 600 && i % 3 == 0 {
        let score = if i % 50 >= 40 {
            Bson::String("n/a".into())
        } else {
            Bson::Int64(i * 10)
        };
        d.insert("score", score);
    }
    if i % 5 == 0 {
        let label = if i % 15 == 0 {
            Bson::Null
        } else {
            Bson::String(format!("L{i}"))
        };
        d.insert("label", label);
    }
    if i >= 1000 {
        d.insert("when", DateTime::from_millis(1_600_000_000_000 + i * 1000));
    }
    if i % 11 == 0 {
        d.insert("payload", doc! { "a": i as i32, "b": [1, "x"] });
    }
    match i {
        2500 => {
            d.insert(LONG_KEY, true);
        }
        2600 => {
            d.insert("Kind", "upper");
        }
        2700 => {
            d.insert("", "an empty key names no column");
        }
        _ => {}
    }
    d
}

/// Three consumers of two writers each meet the same new fields at once (every batch
/// holds `v`). Each field gets one column, named and typed once; every value of the
/// column's kind is in it; null and values of another kind stay in `_extra`; `verify`
/// reads the added columns, so it agrees, notices a changed value in one or a row whose
/// field landed in `_extra` before the option was on, and repairs both. A collection
/// using keys as data gets exactly `max_new_columns` columns, the other keys in `_extra`.
#[tokio::test(flavor = "multi_thread")]
async fn new_fields_become_columns_while_several_writers_run() {
    let env = TestEnv::new("drift").await.expect("env");
    let docs: Vec<Document> = (0..DOCUMENTS).map(event).collect();
    env.db()
        .collection::<Document>("events")
        .insert_many(&docs)
        .await
        .expect("insert");
    let daily: Vec<Document> = (0..DAILY)
        .map(|i| doc! { "_id": i, format!("d{}", i % DAILY_KEYS): i as i32 })
        .collect();
    env.db()
        .collection::<Document>("daily")
        .insert_many(&daily)
        .await
        .expect("insert");
    let mapping = std::env::temp_dir().join(format!("{}-events.toml", env.name));
    std::fs::write(&mapping, EVENTS).expect("mapping");
    let mapping = mapping.display().to_string();

    let produced = env
        .producer("r1", &["run", "--batch-size", "50"])
        .await
        .expect("producer");
    assert_success(&produced, "producer run");
    env.run_consumers("r1", 3, &["--mapping", &mapping], LIMIT)
        .await
        .expect("consumers");

    let pg = env.pg().await.expect("pg");
    let rejects: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_rejects", &[])
        .await
        .expect("rejects")
        .get(0);
    assert_eq!(rejects, 0);

    // One registry row and one column per field, whatever the race.
    let registry: BTreeMap<String, (String, String)> = pg
        .query(
            "SELECT field, column_name, kind FROM _migrate_added_columns WHERE target_table = 'events'",
            &[],
        )
        .await
        .expect("registry")
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let kinds: BTreeMap<&str, &str> = registry
        .iter()
        .map(|(field, (_, kind))| (field.as_str(), kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("Kind", "string"),
            (LONG_KEY, "bool"),
            ("label", "string"),
            ("payload", "json"),
            ("score", "integer"),
            ("v", "integer"),
            ("when", "date"),
        ])
    );
    let name = |field: &str| registry[field].0.clone();
    for field in ["v", "score", "label", "when", "payload"] {
        assert_eq!(name(field), field);
    }
    let long = name(LONG_KEY);
    assert!(
        long.len() <= 63 && long.starts_with(&LONG_KEY[..54]),
        "{long}"
    );
    let upper = name("Kind");
    assert!(upper.starts_with("Kind_"), "collides with kind: {upper}");
    let columns: BTreeMap<String, String> = pg
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = 'events'",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: BTreeMap<String, String> = [
        ("id", "bigint"),
        ("kind", "text"),
        ("_extra", "jsonb"),
        ("v", "bigint"),
        ("score", "bigint"),
        ("label", "text"),
        ("when", "timestamp with time zone"),
        ("payload", "jsonb"),
        (long.as_str(), "boolean"),
        (upper.as_str(), "text"),
    ]
    .iter()
    .map(|(c, t)| (c.to_string(), t.to_string()))
    .collect();
    assert_eq!(columns, expected);

    // Every document, field by field.
    let rows = pg
        .query(
            &format!(
                r#"SELECT id, kind, v, score, label, (extract(epoch FROM "when") * 1000)::int8,
                          payload::text, "{long}", "{upper}", _extra::text
                   FROM events ORDER BY id"#
            ),
            &[],
        )
        .await
        .expect("rows");
    assert_eq!(rows.len() as i64, DOCUMENTS);
    let json =
        |text: Option<String>| text.map(|t| serde_json::from_str::<Value>(&t).expect("json"));
    for (row, doc) in rows.iter().zip(&docs) {
        let i: i64 = row.get(0);
        assert_eq!(Some(&Bson::Int64(i)), doc.get("_id"));
        assert_eq!(row.get::<_, String>(1), format!("k{}", i % 7));
        assert_eq!(row.get::<_, Option<i64>>(2), Some(i));
        let mut extra = serde_json::Map::new();
        match doc.get("score") {
            Some(Bson::Int64(score)) => assert_eq!(row.get::<_, Option<i64>>(3), Some(*score)),
            Some(Bson::String(s)) => {
                assert_eq!(row.get::<_, Option<i64>>(3), None, "{i}");
                extra.insert("score".into(), json!(s));
            }
            _ => assert_eq!(row.get::<_, Option<i64>>(3), None, "{i}"),
        }
        match doc.get("label") {
            Some(Bson::String(label)) => {
                assert_eq!(
                    row.get::<_, Option<String>>(4).as_deref(),
                    Some(label.as_str())
                )
            }
            Some(Bson::Null) => {
                assert_eq!(row.get::<_, Option<String>>(4), None);
                extra.insert("label".into(), Value::Null);
            }
            _ => assert_eq!(row.get::<_, Option<String>>(4), None),
        }
        let when = doc.get_datetime("when").ok().map(|d| d.timestamp_millis());
        assert_eq!(row.get::<_, Option<i64>>(5), when, "{i}");
        let payload = doc.get("payload").map(
            |_| json!({ "a": { "$numberInt": i.to_string() }, "b": [{ "$numberInt": "1" }, "x"] }),
        );
        assert_eq!(json(row.get(6)), payload, "{i}");
        assert_eq!(row.get::<_, Option<bool>>(7), (i == 2500).then_some(true));
        assert_eq!(
            row.get::<_, Option<String>>(8).as_deref(),
            (i == 2600).then_some("upper")
        );
        if i == 2700 {
            extra.insert("".into(), json!("an empty key names no column"));
        }
        let extra = (!extra.is_empty()).then_some(Value::Object(extra));
        assert_eq!(json(row.get(9)), extra, "_extra of {i}");
    }

    // Keys as data: 20 columns, whichever keys came first; the rest in _extra.
    let added: Vec<String> = pg
        .query(
            "SELECT column_name FROM _migrate_added_columns WHERE target_table = 'daily'",
            &[],
        )
        .await
        .expect("registry")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(added.len(), 20, "{added:?}");
    let width: i64 = pg
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'daily'",
            &[],
        )
        .await
        .expect("columns")
        .get(0);
    assert_eq!(width, 22, "id, _extra and 20 added");
    let rows = pg
        .query("SELECT to_jsonb(t)::text FROM daily t ORDER BY id", &[])
        .await
        .expect("rows");
    assert_eq!(rows.len() as i64, DAILY);
    for (i, row) in (0..DAILY).zip(&rows) {
        let row: Value = serde_json::from_str(&row.get::<_, String>(0)).expect("json");
        let key = format!("d{}", i % DAILY_KEYS);
        let mut expected = serde_json::Map::from_iter([("id".to_string(), json!(i))]);
        for column in &added {
            let value = if *column == key {
                json!(i)
            } else {
                Value::Null
            };
            expected.insert(column.clone(), value);
        }
        let extra = (!added.contains(&key))
            .then(|| json!({ key.clone(): { "$numberInt": i.to_string() } }));
        expected.insert("_extra".to_string(), extra.unwrap_or(Value::Null));
        assert_eq!(row, Value::Object(expected), "daily {i}");
    }

    // verify plans with the added columns: it agrees, and sees a change in one.
    let verify = |args: &'static [&'static str]| {
        let env = &env;
        let mapping = mapping.clone();
        async move {
            let mut all = vec!["verify", "--mapping", mapping.as_str()];
            all.extend_from_slice(args);
            env.mongo2pg_report("r1", &all).await.expect("verify")
        }
    };
    let (code, text) = verify(&[]).await;
    assert_eq!(code, Some(0), "{text}");
    // A changed value, and a row as it would have landed before the option was on
    // (its new field in _extra): verify names both, --repair puts them right.
    pg.batch_execute(
        r#"UPDATE events SET score = 1 WHERE id = 603;
           UPDATE events SET score = NULL, _extra = '{"score": {"$numberLong": "6060"}}' WHERE id = 606;"#,
    )
    .await
    .expect("damage");
    let (code, text) = verify(&[]).await;
    assert_eq!(code, Some(4), "{text}");
    assert!(
        text.contains("column \"score\": source 6030, target 1"),
        "{text}"
    );
    assert!(
        text.contains("column \"score\": source 6060, target NULL"),
        "{text}"
    );
    let (code, text) = verify(&["--repair"]).await;
    assert_eq!(code, Some(0), "{text}");
    let repaired: Vec<(Option<i64>, Option<String>)> = pg
        .query(
            "SELECT score, _extra::text FROM events WHERE id IN (603, 606) ORDER BY id",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(repaired, [(Some(6030), None), (Some(6060), None)]);
    let _ = std::fs::remove_file(&mapping);
}
