//! `finish` killed with SIGKILL while it builds indexes, then run again: the indexes
//! built before the kill are kept (not built twice), the one the kill interrupted is
//! rebuilt, and every index ends valid.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bson::{doc, Document};
use e2e::{assert_success, TestEnv};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

/// The indexes of the two collections: two on `accounts`, built first (tables in
/// name order, `--jobs 1`), two on `events`, where the kill lands.
async fn seed_and_index(env: &TestEnv) -> Result<()> {
    let db = env.db();
    db.collection::<Document>("accounts")
        .insert_many(
            (0..2000).map(
                |i| doc! { "email": format!("a{i}@example.com"), "name": format!("n{}", i % 50) },
            ),
        )
        .await?;
    db.collection::<Document>("events")
        .insert_many((0..2000).map(|i| doc! { "kind": format!("k{}", i % 7), "at": i }))
        .await?;
    let index = |keys: Document, unique: bool| {
        IndexModel::builder()
            .keys(keys)
            .options(unique.then(|| IndexOptions::builder().unique(true).build()))
            .build()
    };
    db.collection::<Document>("accounts")
        .create_indexes([
            index(doc! { "email": 1 }, true),
            index(doc! { "name": 1 }, false),
        ])
        .await?;
    db.collection::<Document>("events")
        .create_indexes([
            index(doc! { "kind": 1 }, false),
            index(doc! { "at": -1 }, false),
        ])
        .await?;
    Ok(())
}

/// Each index of the database: its name, its oid, whether it is valid.
async fn indexes(pg: &tokio_postgres::Client) -> Result<Vec<(String, u32, bool)>> {
    Ok(pg
        .query(
            "SELECT c.relname::text, c.oid, i.indisvalid FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
             WHERE t.relname IN ('accounts', 'events') AND NOT i.indisprimary ORDER BY 1",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The states `finish` recorded for the run's indexes, as (item, state).
async fn recorded(pg: &tokio_postgres::Client) -> Result<Vec<(String, String)>> {
    Ok(pg
        .query(
            "SELECT item, state FROM _migrate_finish WHERE run = 'r' AND kind = 'index' ORDER BY item",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// The run has no mapping: the collections landed in their default tables, and
/// `finish` takes them from the run (expression indexes over `doc`). The test holds a
/// write lock on `events`, so `finish` builds both of `accounts`' indexes and then
/// waits in the first of `events`' (created, not yet valid): it is killed there.
#[tokio::test(flavor = "multi_thread")]
async fn finish_killed_while_building_indexes_resumes_without_building_twice() -> Result<()> {
    let env = TestEnv::new("finish_killed").await?;
    seed_and_index(&env).await?;
    let consumer = env.spawn_consumer("r", &[])?;
    assert_success(&env.producer("r", &["run"]).await?, "producer run");
    let output = tokio::time::timeout(Duration::from_secs(120), consumer.wait_with_output())
        .await
        .context("consumer finishes")??;
    assert_success(&output, "consumer");

    let mut holder = env.pg().await?;
    let lock = holder.transaction().await?;
    lock.batch_execute("LOCK TABLE events IN ROW EXCLUSIVE MODE")
        .await?;
    let mut finish = env
        .command("mongo2pg", "r")
        .args(["finish", "--jobs", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pg = env.pg().await?;
    let started = Instant::now();
    loop {
        let states = recorded(&pg).await?;
        let built = states.iter().filter(|(_, s)| s == "built").count();
        let waiting_on_events: i64 = pg
            .query_one(
                "SELECT count(*) FROM pg_stat_progress_create_index WHERE relid = 'events'::regclass AND index_relid <> 0",
                &[],
            )
            .await?
            .get(0);
        if built == 2 && waiting_on_events == 1 {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(60),
            "finish never reached events' first index: {states:?}"
        );
        ensure!(
            finish.try_wait()?.is_none(),
            "finish ended before its kill: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = indexes(&pg).await?;
    finish.start_kill()?;
    finish.wait().await?;

    // The killed finish's build stops with it (its session notices its client is gone),
    // leaving events' first index INVALID.
    let started = Instant::now();
    while pg
        .query_one("SELECT count(*) FROM pg_stat_progress_create_index", &[])
        .await?
        .get::<_, i64>(0)
        > 0
    {
        ensure!(
            started.elapsed() < Duration::from_secs(15),
            "the killed finish's build goes on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = indexes(&pg).await?;
    ensure!(
        left.iter().filter(|(_, _, valid)| !valid).count() == 1
            && left.iter().filter(|(_, _, valid)| *valid).count() == 2,
        "after the kill: {left:?}"
    );
    lock.rollback().await?;
    let (code, said) = env.mongo2pg_report("r", &["verify"]).await?;
    ensure!(
        code == Some(4)
            && said.contains("on events: INVALID (a build failed or was killed)")
            && said.contains("constraints: 0 foreign keys valid, 2 indexes valid, 1 not (above)"),
        "{said}"
    );

    let (code, text) = env.mongo2pg_report("r", &["finish", "--jobs", "1"]).await?;
    ensure!(code == Some(0), "{text}");
    ensure!(
        text.matches("valid already in").count() == 2
            && text
                .matches("rebuilt (a crash had left it invalid)")
                .count()
                == 1
            && text.contains("finish: 4 of 4 indexes built"),
        "{text}"
    );
    let after = indexes(&pg).await?;
    ensure!(
        after.len() == 4 && after.iter().all(|(_, _, valid)| *valid),
        "{after:?}"
    );
    // Nothing built twice: what was valid before the kill is the same index still.
    for (name, oid, valid) in before.iter().filter(|(_, _, valid)| *valid) {
        ensure!(
            after.contains(&(name.clone(), *oid, *valid)),
            "{name} was built again: {after:?}"
        );
    }
    ensure!(
        recorded(&pg)
            .await?
            .iter()
            .all(|(_, state)| state == "built"),
        "{:?}",
        recorded(&pg).await?
    );
    let (code, said) = env.mongo2pg_report("r", &["verify"]).await?;
    ensure!(
        code == Some(0) && said.contains("constraints: 0 foreign keys valid, 4 indexes valid\n"),
        "{said}"
    );
    // The expression indexes answer the queries they were made for.
    pg.batch_execute("SET enable_seqscan = off").await?;
    let plan: Vec<String> = pg
        .query(
            "EXPLAIN SELECT _id FROM accounts WHERE doc #>> '{email}' = 'a7@example.com'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(
        plan.iter().any(|line| line.contains("accounts_email_1")),
        "{plan:?}"
    );
    Ok(())
}
