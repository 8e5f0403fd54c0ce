//! Names a mapping may not use, and where the migration's own tables go.

use std::time::Duration;

use bson::{doc, Document};
use e2e::{assert_success, TestEnv};

const CONSUMERS_LIMIT: Duration = Duration::from_secs(120);

/// Bug 4: a collection or mapping table named like a bookkeeping table got columns
/// added to the ledger and every document rejected. Now the names are refused: the
/// mapping with one clear line, the collection's batches as dead letters naming why,
/// and the ledger keeps its own columns.
#[tokio::test(flavor = "multi_thread")]
async fn bookkeeping_table_names_are_refused() {
    let env = TestEnv::new("hard_reserved").await.expect("env");
    env.db()
        .collection::<Document>("_migrate_ledger")
        .insert_many((0..5).map(|i| doc! { "_id": i }))
        .await
        .expect("insert");
    let mapping = env.write_file(
        "m.toml",
        "[collections.users]\ntable = \"_migrate_rejects\"\ncolumns = [ { path = \"_id\", type = \"int4\" } ]\n",
    );
    let out = env
        .command("consumer", "r")
        .args(["run", "--mapping", &mapping])
        .output()
        .await
        .expect("consumer");
    e2e::assert_one_line_error(&out, "keeps for its bookkeeping");

    assert_success(&env.producer("r", &["run"]).await.expect("run"), "producer");
    // No retry can change the name: dead-lettered on its first delivery, not after
    // --max-deliver tries as if it might pass.
    env.run_consumers("r", 1, &[], CONSUMERS_LIMIT)
        .await
        .expect("the consumer finishes: the batch is dead-lettered");
    let pg = env.pg().await.expect("pg");
    let dead = pg
        .query_one("SELECT reason, deliveries FROM _migrate_dead_letters", &[])
        .await
        .expect("one dead letter");
    let (reason, deliveries): (String, i64) = (dead.get(0), dead.get(1));
    assert!(reason.contains("keeps for its bookkeeping"), "{reason}");
    assert_eq!(deliveries, 1, "{reason}");
    let columns: Vec<String> = pg
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = '_migrate_ledger' ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        columns,
        [
            "batch_id",
            "run",
            "collection",
            "seq",
            "target_table",
            "rows_written",
            "rows_rejected",
            "committed_at",
            "rows_already",
            "kind",
            "events"
        ]
    );
}

/// `--bookkeeping-schema` (here through `MIGRATE_BOOKKEEPING_SCHEMA`) puts the ledger,
/// rejects, dead letters and versions in a schema of their own, created when missing,
/// apart from the tables the mapping lands in another; `status` and `verify` given the
/// same find them there, and nothing of the migration lands in `public`.
#[tokio::test(flavor = "multi_thread")]
async fn bookkeeping_tables_live_in_a_schema_of_their_own() {
    let env = TestEnv::new("bookkeeping_schema").await.expect("env");
    let mut docs: Vec<Document> = (0..20).map(|i| doc! { "_id": i, "n": i }).collect();
    docs.push(doc! { "_id": 20, "n": "twenty" });
    env.db()
        .collection::<Document>("things")
        .insert_many(&docs)
        .await
        .expect("insert");
    let mapping = env.write_file(
        "m.toml",
        "schema = \"app\"\n[collections.things]\ncolumns = [ { path = \"_id\", type = \"int4\" }, { path = \"n\", type = \"int4\" } ]\n",
    );
    const SCHEMA: (&str, &str) = ("MIGRATE_BOOKKEEPING_SCHEMA", "migrate");
    assert_success(
        &env.producer("r1", &["run"]).await.expect("producer"),
        "producer",
    );
    let consumed = env
        .command("consumer", "r1")
        .env(SCHEMA.0, SCHEMA.1)
        .args(["run", "--exit-when-done", "--mapping", &mapping])
        .output()
        .await
        .expect("consumer");
    assert_success(&consumed, "consumer");
    let pg = env.pg().await.expect("pg");
    let tables: Vec<String> = pg
        .query(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            &[],
        )
        .await
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "app.things",
            "migrate._migrate_dead_letters",
            "migrate._migrate_finish",
            "migrate._migrate_keys",
            "migrate._migrate_ledger",
            "migrate._migrate_rejects",
            "migrate._migrate_versions",
        ]
    );
    let reject: String = pg
        .query_one(
            "SELECT doc_id || ':' || field FROM migrate._migrate_rejects",
            &[],
        )
        .await
        .expect("one reject")
        .get(0);
    assert_eq!(reject, r#"{"$numberInt":"20"}:n"#);
    for (command, expected) in [
        (&["status"][..], 5),
        (&["verify", "--mapping", &mapping][..], 5),
    ] {
        let out = env
            .command("mongo2pg", "r1")
            .env(SCHEMA.0, SCHEMA.1)
            .args(command)
            .output()
            .await
            .expect("mongo2pg");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(expected), "{command:?}: {text}");
        assert!(text.contains("1 documents"), "{command:?}: {text}");
    }
}
