//! Names a mapping may not use.

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
