//! `consumer run --key-after-load` (the default): new tables land without their primary
//! key, which is built once the run's snapshot has landed; a document published twice
//! meanwhile lands twice and is kept once. With `--key-after-load=false` every table
//! is made with its key and a document published twice is skipped as it lands.

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

/// The state of `table`'s key in `_migrate_keys`, if registered.
async fn key_state(pg: &tokio_postgres::Client, table: &str) -> Option<String> {
    pg.query_opt(
        "SELECT state FROM _migrate_keys WHERE target_table = $1",
        &[&table],
    )
    .await
    .ok()
    .flatten()
    .map(|row| row.get(0))
}

/// Inserts `count` documents `{_id: "d<i:05>", name: "n<i>"}` into `collection`.
async fn insert_named(env: &TestEnv, collection: &str, count: i32) {
    env.db()
        .collection::<Document>(collection)
        .insert_many(
            (0..count).map(|i| doc! { "_id": format!("d{i:05}"), "name": format!("n{i}") }),
        )
        .await
        .expect("insert");
}

/// A mapping of each of `collections` to its table of `_id` and `name`, as text.
fn named_mapping(collections: &[&str]) -> String {
    collections
        .iter()
        .map(|name| {
            format!("[collections.{name}]\ncolumns = [\n  {{ name = \"_id\", path = \"_id\", type = \"text\" }},\n  {{ name = \"name\", path = \"name\", type = \"text\" }},\n]\n")
        })
        .collect()
}

/// Asserts that `table`'s key is built and is its primary key, and that the table holds
/// each of the `count` documents of [`insert_named`] once.
async fn assert_keyed_and_named_once(pg: &tokio_postgres::Client, table: &str, count: i32) {
    assert_eq!(key_state(pg, table).await.as_deref(), Some("built"));
    assert_eq!(primary_key(pg, table).await.as_deref(), Some("_id"));
    let names: Vec<String> = pg
        .query(
            &format!("SELECT name FROM {table} ORDER BY _id COLLATE \"C\""),
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        names,
        (0..count).map(|i| format!("n{i}")).collect::<Vec<_>>(),
        "{table}: every document once"
    );
}

/// Asserts that the unmapped `users` table holds each of the `count` seeded documents
/// (`{_id: i, name: "n<i>"}`) once.
async fn assert_every_user_once(pg: &tokio_postgres::Client, count: i32) {
    let names: Vec<String> = pg
        .query(
            "SELECT doc->>'name' FROM users ORDER BY substr(doc->>'name', 2)::int",
            &[],
        )
        .await
        .expect("rows")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        names,
        (0..count).map(|i| format!("n{i}")).collect::<Vec<_>>(),
        "every document once"
    );
}

/// Starts `binary run <args>` of `run` as a daemon (no `--exit-when-done`), its output
/// discarded; the test kills it.
fn spawn_daemon(env: &TestEnv, binary: &str, run: &str, args: &[&str]) -> tokio::process::Child {
    env.command(binary, run)
        .arg("run")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect(binary)
}

/// Two publications of one run cut into other batches (a document inserted before the
/// others in between, another `--batch-size`), then two consumers with `consumer_args`
/// land both. Checks every table's content (each document once), the key, `status`
/// (the second copies counted as already landed) and `verify`; returns the consumers'
/// logs and the mapping's path.
async fn published_twice(env: &TestEnv, consumer_args: &[&str]) -> String {
    for name in ["plain", "typed"] {
        insert_named(env, name, 2000).await;
    }
    let mapping = env.write_file("m.toml", &named_mapping(&["typed"]));
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
    let mut args = vec!["--mapping", &mapping];
    args.extend_from_slice(consumer_args);
    let outputs = env
        .run_consumers("r", 2, &args, CONSUMERS_LIMIT)
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
    // Status counts the second copies as already landed.
    env.assert_complete_and_verified(
        "r",
        "skipped as already landed: 4000 documents",
        &["--mapping", &mapping],
    )
    .await
    .expect("complete and verified");
    logs
}

/// By default the key is built after the load: every document published twice lands
/// twice, and the build keeps each once, with its content, and records how many.
#[tokio::test(flavor = "multi_thread")]
async fn the_key_is_built_after_the_load_and_documents_published_twice_are_kept_once() {
    let env = TestEnv::new("key_after_load").await.expect("env");
    let logs = published_twice(&env, &[]).await;
    let pg = env.pg().await.expect("pg");
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
}

/// `--key-after-load=false`: every table is made with its key, nothing is registered,
/// and a document published twice is skipped as its second copy lands.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_key_during_the_load_documents_published_twice_are_skipped() {
    let env = TestEnv::new("key_during_load").await.expect("env");
    let logs = published_twice(&env, &["--key-after-load=false"]).await;
    let pg = env.pg().await.expect("pg");
    let registry: Option<String> = pg
        .query_one("SELECT to_regclass('_migrate_keys')::text", &[])
        .await
        .expect("registry")
        .get(0);
    assert_eq!(registry, None, "no key waited for the load");
    assert!(
        !logs.contains("before the key was built"),
        "no key was built after the load: {logs}"
    );
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
    env.run_consumers("r", 1, &["--mapping", &mapping], CONSUMERS_LIMIT)
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

/// A consumer running as a daemon (no `--exit-when-done`) on a run that does not
/// follow builds the key once every batch has landed, as `--exit-when-done` does
/// before it exits: the table never stays without its key because nobody exits.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_builds_the_key_once_the_snapshot_has_landed() {
    let env = TestEnv::new("key_after_load_daemon").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..3000).map(|i| doc! { "_id": i, "name": format!("n{i}") }))
        .await
        .expect("insert");
    let mut daemon = spawn_daemon(&env, "consumer", "r", &["--writers", "2"]);
    assert_success(
        &env.producer("r", &["run", "--batch-size", "500"])
            .await
            .expect("run"),
        "producer",
    );
    let pg = env.pg().await.expect("pg");
    let deadline = tokio::time::Instant::now() + CONSUMERS_LIMIT;
    let state = loop {
        let state = key_state(&pg, "users").await;
        if state.as_deref() == Some("built") || tokio::time::Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    daemon.start_kill().expect("kill");
    daemon.wait().await.expect("wait");
    assert_eq!(state.as_deref(), Some("built"), "the daemon built the key");
    assert_eq!(primary_key(&pg, "users").await.as_deref(), Some("_id"));
    assert_every_user_once(&pg, 3000).await;
    env.assert_complete_and_verified("r", "users", &[])
        .await
        .expect("complete and verified");
}

/// A run whose consumers were all stopped mid-load leaves its table without its key,
/// waiting for that run's snapshot. Another run landing in the table would put its
/// documents beside the first run's, and none of its own builds would ever dedupe
/// them: its batches are refused with the reason (here dead-lettered at the first
/// delivery), and its status does not say complete. Once the first run's key is built
/// (`mongo2pg finish --run a`, as the reason says), the batches requeued land.
#[tokio::test(flavor = "multi_thread")]
async fn another_run_does_not_land_in_a_table_whose_key_waits_for_a_run() {
    let env = TestEnv::new("key_after_load_other_run").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..4000).map(|i| doc! { "_id": i, "name": format!("n{i}") }))
        .await
        .expect("insert");
    // Run a, stopped mid-load: its producer reads slowly (20 s for the collection)
    // and is killed once a few batches landed, so its snapshot never completes and
    // its key is never built.
    let mut producer = spawn_daemon(
        &env,
        "producer",
        "a",
        &["--batch-size", "100", "--max-read-rate", "200"],
    );
    let mut consumer = spawn_daemon(&env, "consumer", "a", &["--writers", "1"]);
    let pg = env.pg().await.expect("pg");
    let deadline = tokio::time::Instant::now() + CONSUMERS_LIMIT;
    loop {
        let rows: i64 = match pg.query_one("SELECT count(*) FROM users", &[]).await {
            Ok(row) => row.get(0),
            Err(_) => 0,
        };
        if rows >= 200 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for child in [&mut producer, &mut consumer] {
        child.start_kill().expect("kill");
        child.wait().await.expect("wait");
    }
    let landed_by_a: i64 = pg
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("count")
        .get(0);
    assert!(
        (200..4000).contains(&landed_by_a),
        "run a landed part of the collection: {landed_by_a}"
    );
    assert_eq!(primary_key(&pg, "users").await, None, "run a's key waits");

    // Run b, published whole, is refused.
    assert_success(
        &env.producer("b", &["run"]).await.expect("run b"),
        "producer b",
    );
    env.run_consumers("b", 1, &["--max-deliver", "1"], CONSUMERS_LIMIT)
        .await
        .expect("consumers b");
    let reasons: Vec<String> = pg
        .query(
            "SELECT reason FROM _migrate_dead_letters WHERE run = 'b'",
            &[],
        )
        .await
        .expect("dead letters")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        !reasons.is_empty()
            && reasons.iter().all(|r| r.contains(
                "it is built once run \"a\"'s snapshot has landed (mongo2pg finish --run a builds it now)"
            )),
        "{reasons:?}"
    );
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        rows, landed_by_a,
        "nothing of run b landed beside run a's rows"
    );
    let (code, text) = env.mongo2pg_report("b", &["status"]).await.expect("status");
    assert_ne!(code, Some(0), "status of run b: {text}");

    // The way out the reason gives.
    assert_success(
        &env.mongo2pg("a", &["finish"]).await.expect("finish a"),
        "finish --run a",
    );
    assert_eq!(primary_key(&pg, "users").await.as_deref(), Some("_id"));
    assert_success(
        &env.mongo2pg("b", &["requeue"]).await.expect("requeue"),
        "requeue",
    );
    env.run_consumers("b", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("consumers b again");
    assert_every_user_once(&pg, 4000).await;
    env.assert_complete_and_verified("b", "users", &[])
        .await
        .expect("complete and verified");
}

/// The keys built at once on a database are bounded by four advisory-lock slots
/// (`landing::keys`), however many consumers and tables a run has: while another
/// session holds every slot, the run lands and its key waits, the consumer with it;
/// once they are free the key is built and the consumer exits.
#[tokio::test]
async fn a_key_waits_for_a_free_build_slot() {
    let env = TestEnv::new("key_after_load_slots").await.expect("env");
    env.db()
        .collection::<Document>("users")
        .insert_many((0..3000).map(|i| doc! { "_id": i, "name": format!("n{i}") }))
        .await
        .expect("insert");
    let holder = env.pg().await.expect("pg");
    // The slots' first key is "m2pk" (0x6d32706b).
    holder
        .batch_execute("SELECT pg_advisory_lock(1832022123, s) FROM generate_series(0, 3) AS s")
        .await
        .expect("hold every slot");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "500"])
            .await
            .expect("run"),
        "producer",
    );
    let mut consumer = spawn_daemon(&env, "consumer", "r", &["--exit-when-done"]);
    let pg = env.pg().await.expect("pg");
    let deadline = tokio::time::Instant::now() + CONSUMERS_LIMIT;
    loop {
        let landed: Option<i64> = pg
            .query_opt("SELECT count(*) FROM users", &[])
            .await
            .ok()
            .flatten()
            .map(|row| row.get(0));
        if landed == Some(3000) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not land"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Landed: the consumer now looks for a slot, and none is free.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        key_state(&pg, "users").await.as_deref(),
        Some("pending"),
        "no key is built without a slot"
    );
    assert!(
        consumer.try_wait().expect("consumer").is_none(),
        "the consumer waits for its key"
    );
    holder
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .expect("unlock");
    let status = tokio::time::timeout(CONSUMERS_LIMIT, consumer.wait())
        .await
        .expect("the consumer exits once a slot is free")
        .expect("consumer");
    assert!(status.success(), "consumer: {status}");
    assert_eq!(primary_key(&pg, "users").await.as_deref(), Some("_id"));
    assert_every_user_once(&pg, 3000).await;
    env.assert_complete_and_verified("r", "users", &[])
        .await
        .expect("complete and verified");
}

/// The consumers of a run of several tables build different keys at once: while one
/// consumer's build of `alpha` is held up (another session holds a lock on the table),
/// the other builds `beta` instead of queueing for `alpha`'s; once the lock is gone
/// `alpha`'s key is built too and both consumers exit.
#[tokio::test]
async fn consumers_build_different_keys_at_once() {
    let env = TestEnv::new("key_after_load_parallel").await.expect("env");
    for name in ["alpha", "beta"] {
        insert_named(&env, name, 2000).await;
    }
    // Mapped, so that the consumers create both tables as they start.
    let mapping = env.write_file("m.toml", &named_mapping(&["alpha", "beta"]));
    let args = ["--exit-when-done", "--mapping", mapping.as_str()];
    let mut consumers = [
        spawn_daemon(&env, "consumer", "r", &args),
        spawn_daemon(&env, "consumer", "r", &args),
    ];
    let pg = env.pg().await.expect("pg");
    let deadline = tokio::time::Instant::now() + CONSUMERS_LIMIT;
    // The consumers register the tables' keys as they create them.
    while key_state(&pg, "alpha").await.is_none() || key_state(&pg, "beta").await.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no tables");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut holder = env.pg().await.expect("pg");
    let hold = holder.transaction().await.expect("begin");
    // Rows may land (COPY's lock does not conflict with it); the key's build may not.
    hold.batch_execute("LOCK TABLE alpha IN ACCESS SHARE MODE")
        .await
        .expect("lock alpha");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "500"])
            .await
            .expect("run"),
        "producer",
    );
    while key_state(&pg, "beta").await.as_deref() != Some("built") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "beta's key was not built while alpha's build waited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(key_state(&pg, "alpha").await.as_deref(), Some("pending"));
    hold.rollback().await.expect("release alpha");
    for consumer in &mut consumers {
        let status = tokio::time::timeout(CONSUMERS_LIMIT, consumer.wait())
            .await
            .expect("the consumers exit once alpha's key is built")
            .expect("consumer");
        assert!(status.success(), "consumer: {status}");
    }
    for table in ["alpha", "beta"] {
        assert_keyed_and_named_once(&pg, table, 2000).await;
    }
    for table in ["alpha", "beta"] {
        env.assert_complete_and_verified("r", table, &[])
            .await
            .expect("complete and verified");
    }
}

/// A collection's key is built as soon as its own snapshot has landed, while the run's
/// other collections still load: the producer publishes `small` and `large` at once,
/// held to 500 documents a second, so `large` takes eight seconds to read; `small`'s key
/// is built meanwhile, not at the run's end. Then `large`'s, and both tables hold every
/// document once.
#[tokio::test]
async fn a_collection_s_key_is_built_as_soon_as_it_lands() {
    let env = TestEnv::new("key_after_load_landed").await.expect("env");
    insert_named(&env, "small", 200).await;
    insert_named(&env, "large", 4000).await;
    let mapping = env.write_file("m.toml", &named_mapping(&["small", "large"]));
    let mut consumer = spawn_daemon(
        &env,
        "consumer",
        "r",
        &["--exit-when-done", "--mapping", mapping.as_str()],
    );
    let mut producer = spawn_daemon(
        &env,
        "producer",
        "r",
        &[
            "--concurrency",
            "2",
            "--batch-size",
            "100",
            "--max-read-rate",
            "500",
        ],
    );
    let pg = env.pg().await.expect("pg");
    let deadline = tokio::time::Instant::now() + CONSUMERS_LIMIT;
    while key_state(&pg, "small").await.as_deref() != Some("built") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "small's key was not built"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let large_landed: i64 = pg
        .query_one("SELECT count(*) FROM large", &[])
        .await
        .expect("count")
        .get(0);
    assert!(
        large_landed < 4000,
        "small's key waited for large to land ({large_landed} rows)"
    );
    assert_eq!(key_state(&pg, "large").await.as_deref(), Some("pending"));
    for (name, child) in [("producer", &mut producer), ("consumer", &mut consumer)] {
        let status = tokio::time::timeout(CONSUMERS_LIMIT, child.wait())
            .await
            .unwrap_or_else(|_| panic!("the {name} exits"))
            .expect(name);
        assert!(status.success(), "{name}: {status}");
    }
    for (table, count) in [("small", 200), ("large", 4000)] {
        assert_keyed_and_named_once(&pg, table, count).await;
        env.assert_complete_and_verified("r", table, &[])
            .await
            .expect("complete and verified");
    }
}
