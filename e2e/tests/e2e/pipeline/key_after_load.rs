//! `consumer run --key-after-load`: new tables land without their primary key, which
//! is built once the run's snapshot has landed; a document published twice meanwhile
//! lands twice and is kept once.

use std::time::Duration;

use bson::{doc, Document};
use e2e::{assert_success, TestEnv};

const CONSUMERS_LIMIT: Duration = Duration::from_secs(120);

/// The primary key of `table` (its columns), if it has one.
async fn primary_key(pg: &tokio_postgres::Client, table: &str) -> Option<String> {
    pg.query_opt(
        "SELECT string_agg(a.attname, ',') FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
         WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
        &[&table],
    )
    .await
    .expect("primary key")
    .and_then(|row| row.get(0))
}

/// Two publications of one run cut into other batches (a document inserted before the
/// others in between, another `--batch-size`) both land before the key is built: every
/// document lands twice, and the build keeps each once, with its content; `status`
/// counts the second copies as already landed, and `verify` finds the target equal to
/// the source.
#[tokio::test(flavor = "multi_thread")]
async fn the_key_is_built_after_the_load_and_documents_published_twice_are_kept_once() {
    let env = TestEnv::new("key_after_load").await.expect("env");
    for name in ["plain", "typed"] {
        env.db()
            .collection::<Document>(name)
            .insert_many(
                (0..2000).map(|i| doc! { "_id": format!("d{i:05}"), "name": format!("n{i}") }),
            )
            .await
            .expect("insert");
    }
    let mapping = env.write_file(
        "m.toml",
        "[collections.typed]\ncolumns = [\n  { name = \"_id\", path = \"_id\", type = \"text\" },\n  { name = \"name\", path = \"name\", type = \"text\" },\n]\n",
    );
    assert_success(
        &env.producer("r", &["run", "--batch-size", "500"])
            .await
            .expect("run"),
        "producer",
    );
    // Between the publications, a document before all others shifts every batch.
    for name in ["plain", "typed"] {
        env.db()
            .collection::<Document>(name)
            .insert_one(doc! { "_id": "a-first", "name": "first" })
            .await
            .expect("insert");
    }
    assert_success(
        &env.producer("r", &["run", "--batch-size", "700", "--restart"])
            .await
            .expect("run again"),
        "producer --restart --batch-size 700",
    );
    let outputs = env
        .run_consumers(
            "r",
            2,
            &["--mapping", &mapping, "--key-after-load"],
            CONSUMERS_LIMIT,
        )
        .await
        .expect("consumers");
    let logs: String = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect();

    let pg = env.pg().await.expect("pg");
    for (table, name) in [("plain", "doc->>'name'"), ("typed", "name")] {
        assert_eq!(
            primary_key(&pg, table).await.as_deref(),
            Some("_id"),
            "{table}: the key is built ({logs})"
        );
        let rows: Vec<(String, String)> = pg
            .query(
                &format!("SELECT _id, {name} FROM {table} ORDER BY _id COLLATE \"C\""),
                &[],
            )
            .await
            .expect("rows")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let expected: Vec<(String, String)> =
            std::iter::once(("a-first".to_string(), "first".to_string()))
                .chain((0..2000).map(|i| (format!("d{i:05}"), format!("n{i}"))))
                .collect();
        assert_eq!(rows, expected, "{table}: every document once");
    }
    let keys: Vec<(String, String, i64)> = pg
        .query(
            "SELECT target_table, state, duplicates FROM _migrate_keys ORDER BY target_table",
            &[],
        )
        .await
        .expect("keys")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        keys,
        [
            ("plain".to_string(), "built".to_string(), 2000),
            ("typed".to_string(), "built".to_string(), 2000)
        ]
    );
    assert!(
        logs.contains("documents published twice had landed twice before the key was built")
            && logs.contains("documents=2000"),
        "the consumers say what the build found: {logs}"
    );

    // Status counts the second copies as already landed.
    env.assert_complete_and_verified(
        "r",
        "skipped as already landed: 4000 documents",
        &["--mapping", &mapping],
    )
    .await
    .expect("complete and verified");
}

/// A table that exists keeps its key, and a table with child tables (whose rows two
/// copies of a document could not be told apart by) is created with its keys: only
/// new tables without children wait for theirs.
#[tokio::test(flavor = "multi_thread")]
async fn existing_tables_and_tables_with_children_keep_their_keys() {
    let env = TestEnv::new("key_after_load_kept").await.expect("env");
    env.db()
        .collection::<Document>("orders")
        .insert_many(
            (0..50).map(|i| doc! { "_id": i, "lines": [ { "sku": format!("s{i}"), "qty": i } ] }),
        )
        .await
        .expect("insert");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..50).map(|i| doc! { "_id": i }))
        .await
        .expect("insert");
    let pg = env.pg().await.expect("pg");
    pg.batch_execute("CREATE TABLE users (_id text PRIMARY KEY, doc jsonb NOT NULL)")
        .await
        .expect("users made by hand");
    let mapping = env.write_file(
        "m.toml",
        "[collections.orders]\ncolumns = [ { name = \"_id\", path = \"_id\", type = \"int8\" } ]\n\
         [[collections.orders.children]]\npath = \"lines\"\ntable = \"order_lines\"\n\
         columns = [ { name = \"sku\", path = \"sku\", type = \"text\" }, { name = \"qty\", path = \"qty\", type = \"int4\" } ]\n",
    );
    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    env.run_consumers(
        "r",
        1,
        &["--mapping", &mapping, "--key-after-load"],
        CONSUMERS_LIMIT,
    )
    .await
    .expect("consumers");
    for table in ["users", "orders", "order_lines"] {
        assert!(
            primary_key(&pg, table).await.is_some(),
            "{table} has its key"
        );
    }
    let registered: i64 = pg
        .query_one("SELECT count(*) FROM _migrate_keys", &[])
        .await
        .expect("keys")
        .get(0);
    assert_eq!(registered, 0, "no key waited for the load");
    let lines: i64 = pg
        .query_one("SELECT count(*) FROM order_lines", &[])
        .await
        .expect("lines")
        .get(0);
    assert_eq!(lines, 50);
}
