//! Target tables that exist before the run, made by people (issue #12, weak spots):
//! triggers that skip or refuse rows, a column of another type, a key without a
//! unique index. Each is said in words, and no document is lost or counted wrongly.

use std::time::Duration;

use bson::{doc, Document};
use e2e::{assert_success, TestEnv};

const CONSUMERS_LIMIT: Duration = Duration::from_secs(120);

/// Inserts `count` documents `{_id: "e000", kind}` into `events`, every tenth one
/// "odd". String `_id`s read back as themselves from the `_id` text column.
async fn events(env: &TestEnv, count: i32) {
    env.db()
        .collection::<Document>("events")
        .insert_many(
            (0..count)
                .map(|i| doc! { "_id": id(i), "kind": if i % 10 == 3 { "odd" } else { "plain" } }),
        )
        .await
        .expect("insert");
}

fn id(i: i32) -> String {
    format!("e{i:03}")
}

async fn publish(env: &TestEnv) {
    assert_success(
        &env.producer("r", &["run", "--batch-size", "25"])
            .await
            .expect("run"),
        "producer",
    );
}

/// The `_id`s of a query's rows, sorted.
async fn ids(pg: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    let mut ids: Vec<String> = pg
        .query(sql, &[])
        .await
        .expect(sql)
        .iter()
        .map(|row| row.get(0))
        .collect();
    ids.sort();
    ids
}

fn odd_ids(count: i32) -> Vec<String> {
    let mut ids: Vec<String> = (0..count).filter(|i| i % 10 == 3).map(id).collect();
    ids.sort();
    ids
}

/// A trigger that returns NULL skips the row: COPY writes fewer rows than it was sent.
/// The skipped documents were counted as written; now each is a reject saying so,
/// and the ledger counts what was really written.
#[tokio::test(flavor = "multi_thread")]
async fn rows_a_trigger_skips_are_rejects_not_silently_counted_as_written() {
    let env = TestEnv::new("tbl_trigger_null").await.expect("env");
    events(&env, 100).await;
    let pg = env.pg().await.expect("pg");
    pg.batch_execute(
        r#"CREATE TABLE events (_id text PRIMARY KEY, doc jsonb);
           CREATE FUNCTION skip_odd() RETURNS trigger AS $$
           BEGIN
             IF NEW.doc->>'kind' = 'odd' THEN RETURN NULL; END IF;
             RETURN NEW;
           END $$ LANGUAGE plpgsql;
           CREATE TRIGGER skip BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION skip_odd();"#,
    )
    .await
    .expect("a trigger that skips the odd rows");
    publish(&env).await;
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumer");

    let landed = ids(&pg, "SELECT _id FROM events").await;
    let rejected = ids(&pg, "SELECT doc_id FROM _migrate_rejects").await;
    assert_eq!(rejected, odd_ids(100), "each skipped row is a reject");
    assert_eq!(landed.len(), 90);
    assert!(landed.iter().all(|id| !rejected.contains(id)));
    let reason: String = pg
        .query_one("SELECT DISTINCT error FROM _migrate_rejects", &[])
        .await
        .expect("one reason")
        .get(0);
    assert!(
        reason.contains("trigger on events skipped the row"),
        "{reason}"
    );
    let ledger = pg
        .query_one(
            "SELECT sum(rows_written)::int8, sum(rows_rejected)::int8 FROM _migrate_ledger",
            &[],
        )
        .await
        .expect("ledger");
    assert_eq!((ledger.get::<_, i64>(0), ledger.get::<_, i64>(1)), (90, 10));
    let (code, text) = env.mongo2pg_report("r", &["status"]).await.expect("status");
    // Every document accounted for, the skipped ones waiting in the rejects: not done.
    assert_eq!(code, Some(5), "every document accounted for: {text}");
    assert!(text.contains("landed with rejects: 10 documents"), "{text}");
}

/// A row trigger that raises for one row used to fail its batch as a whole, which
/// was then dead-lettered: 24 good documents with it. Now the row stands alone in the
/// rejects with the trigger's message, and the rest lands.
#[tokio::test(flavor = "multi_thread")]
async fn a_row_trigger_raising_rejects_that_row_only() {
    let env = TestEnv::new("tbl_trigger_raise").await.expect("env");
    events(&env, 100).await;
    let pg = env.pg().await.expect("pg");
    pg.batch_execute(
        r#"CREATE TABLE events (_id text PRIMARY KEY, doc jsonb);
           CREATE FUNCTION refuse_odd() RETURNS trigger AS $$
           BEGIN
             IF NEW.doc->>'kind' = 'odd' THEN RAISE EXCEPTION 'odd events are not welcome'; END IF;
             RETURN NEW;
           END $$ LANGUAGE plpgsql;
           CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_odd();"#,
    )
    .await
    .expect("a trigger that raises on the odd rows");
    publish(&env).await;
    env.run_consumers("r", 1, &["--max-deliver", "1"], CONSUMERS_LIMIT)
        .await
        .expect("consumer");

    let dead: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_dead_letters", &[])
        .await
        .expect("dead letters")
        .get(0);
    assert_eq!(dead, 0, "no batch is dead-lettered for one row");
    assert_eq!(
        ids(&pg, "SELECT doc_id FROM _migrate_rejects").await,
        odd_ids(100)
    );
    let reasons = ids(&pg, "SELECT DISTINCT error FROM _migrate_rejects").await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("P0001") && reasons[0].contains("odd events are not welcome"),
        "{reasons:?}"
    );
    // The rows that landed are the documents, content included.
    let landed = pg
        .query("SELECT _id, doc->>'kind' FROM events ORDER BY _id", &[])
        .await
        .expect("rows");
    let expected: Vec<(String, String)> = (0..100)
        .filter(|i| i % 10 != 3)
        .map(|i| (id(i), "plain".to_string()))
        .collect();
    let found: Vec<(String, String)> = landed.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(found, expected);
}

/// A table whose `_id` column has another type used to reject every row with only
/// "incorrect binary data format". Now the consumer refuses to start on a mapped
/// collection's table, naming the column and both types; an unmapped collection's
/// batches are dead-lettered with the same words (nothing lands, nothing is lost).
#[tokio::test(flavor = "multi_thread")]
async fn a_table_with_a_column_of_another_type_is_named_before_any_copy() {
    let env = TestEnv::new("tbl_column_type").await.expect("env");
    events(&env, 30).await;
    let pg = env.pg().await.expect("pg");
    pg.batch_execute("CREATE TABLE events (_id int PRIMARY KEY, doc jsonb)")
        .await
        .expect("a table with an int _id");

    let mapping = env.write_file(
        "m.toml",
        "[collections.events]\ncolumns = [ { path = \"_id\", type = \"text\" }, { path = \"kind\", type = \"text\" } ]\n",
    );
    let out = env
        .command("consumer", "r")
        .args(["run", "--mapping", &mapping])
        .output()
        .await
        .expect("consumer");
    e2e::assert_one_line_error(&out, "column \"_id\" is integer, the mapping writes text");

    publish(&env).await;
    env.run_consumers("r", 1, &["--max-deliver", "1"], CONSUMERS_LIMIT)
        .await
        .expect("consumer: the batches are dead-lettered");
    let reasons = ids(&pg, "SELECT DISTINCT reason FROM _migrate_dead_letters").await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("column \"_id\" is integer, the mapping writes text"),
        "{reasons:?}"
    );
    let dead: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_dead_letters", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(dead, 2, "both batches kept whole");
}

/// A table made by hand without a unique index on the key would let a document
/// published twice (another batch size, a restart) land twice. The consumer says so
/// and how to fix it; with the key added, the run lands once.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_without_a_unique_key_is_refused_until_it_has_one() {
    let env = TestEnv::new("tbl_no_key").await.expect("env");
    events(&env, 30).await;
    let pg = env.pg().await.expect("pg");
    pg.batch_execute("CREATE TABLE events (_id text, doc jsonb)")
        .await
        .expect("a table without a key");
    let mapping = env.write_file(
        "m.toml",
        "[collections.events]\ncolumns = [ { path = \"kind\", type = \"text\" } ]\n",
    );
    let out = env
        .command("consumer", "r")
        .args(["run", "--mapping", &mapping])
        .output()
        .await
        .expect("consumer");
    e2e::assert_one_line_error(
        &out,
        "table \"events\" has no unique index on \"_id\" alone",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("ADD PRIMARY KEY (\"_id\")"));

    pg.batch_execute("CREATE UNIQUE INDEX events_id ON events (_id)")
        .await
        .expect("the key added");
    publish(&env).await;
    env.run_consumers("r", 1, &["--mapping", &mapping], CONSUMERS_LIMIT)
        .await
        .expect("consumer");
    let landed = ids(&pg, "SELECT _id FROM events").await;
    let expected: Vec<String> = (0..30).map(id).collect();
    assert_eq!(landed, expected);
}
