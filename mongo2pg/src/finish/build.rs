//! Building the translated indexes `CONCURRENTLY`: a table's indexes one after
//! another (two concurrent builds on one table deadlock), tables on `--jobs`
//! connections at once. Each build is recorded in the finish table as it goes; an
//! index a crash left INVALID is dropped and built again, a valid one kept.

use std::io::IsTerminal as _;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use landing::pg;

use super::model::{Index, Translated};
use super::progress::record;

/// Builds every index of `translated` that is not blocked; returns each one's name
/// with how it went (`built in 0.42 s`, `valid already…`) or why it failed.
pub(super) async fn build_all(
    url: &str,
    run: &str,
    jobs: usize,
    translated: &[Translated],
) -> Vec<(String, Result<String, String>)> {
    // Two CONCURRENTLY builds on one table wait for each other's transactions and
    // deadlock: a table's indexes are built one after another, tables in parallel.
    let mut by_table: Vec<Vec<Index>> = Vec::new();
    for index in translated
        .iter()
        .filter(|t| !t.blocked)
        .filter_map(|t| t.index.clone())
    {
        match by_table
            .iter_mut()
            .find(|group| group[0].table == index.table)
        {
            Some(group) => group.push(index),
            None => by_table.push(vec![index]),
        }
    }
    let sources: Vec<(String, String)> = translated
        .iter()
        .filter_map(|t| t.index.as_ref().map(|i| (i.name.clone(), item(t, i))))
        .collect();
    let sources = &sources;
    stream::iter(by_table)
        .map(|group| async move {
            let mut outcomes = Vec::with_capacity(group.len());
            for index in group {
                let item = sources
                    .iter()
                    .find(|(name, _)| *name == index.name)
                    .map_or(index.name.clone(), |(_, item)| item.clone());
                let started = Instant::now();
                let outcome = build(url, run, &item, &index).await;
                let seconds = started.elapsed().as_secs_f64();
                if std::io::stderr().is_terminal() {
                    match &outcome {
                        Ok(how) => eprintln!("finish: {item}: {how} in {seconds:.2} s"),
                        Err(why) => eprintln!("finish: {item}: FAILED: {why}"),
                    }
                }
                outcomes.push((
                    index.name.clone(),
                    outcome.map(|how| format!("{how} in {seconds:.2} s")),
                ));
            }
            outcomes
        })
        .buffer_unordered(jobs.max(1))
        .flat_map(stream::iter)
        .collect()
        .await
}

/// How the finish table names an index: MongoDB's index and PostgreSQL's.
pub(super) fn item(t: &Translated, index: &Index) -> String {
    format!("{} ({})", t.source, index.name)
}

/// Builds one index on a connection of its own (`CONCURRENTLY` cannot run in a
/// transaction). An index a crash left INVALID is dropped and built again; a valid
/// one is kept. A build that fails leaves an INVALID index behind: it is dropped, and
/// PostgreSQL's reason returned (a unique index names the duplicate key).
async fn build(url: &str, run: &str, item: &str, index: &Index) -> Result<String, String> {
    let client = pg::connect(url).await.map_err(|e| e.to_string())?;
    // A backend notices its client is gone only when it next writes to it, which a
    // build does at its end: without this, a finish killed midway leaves its builds
    // running on. With it, they stop within a second, leaving INVALID indexes that
    // the next finish rebuilds. (PostgreSQL 14 and later; older ones keep building,
    // and the next finish waits for them below.)
    let _ = client
        .batch_execute("SET client_connection_check_interval = '1s'")
        .await;
    let started = Instant::now();
    let outcome = build_on(&client, run, item, index).await;
    let seconds = Some(started.elapsed().as_secs_f64());
    let recorded = match &outcome {
        Ok(how) => record(&client, run, item, "index", "built", how, seconds).await,
        Err(why) => record(&client, run, item, "index", "failed", why, seconds).await,
    };
    recorded.map_err(|e| e.to_string())?;
    outcome
}

/// [`build`] on its connection, the index recorded as building meanwhile.
async fn build_on(
    client: &tokio_postgres::Client,
    run: &str,
    item: &str,
    index: &Index,
) -> Result<String, String> {
    record(client, run, item, "index", "building", "", None)
        .await
        .map_err(|e| e.to_string())?;
    let state = loop {
        // The index's validity, and the session building it, if one is.
        let row = client
            .query_opt(
                "SELECT i.indisvalid,
                        (SELECT p.pid FROM pg_stat_progress_create_index p
                          WHERE p.index_relid = i.indexrelid AND p.pid <> pg_backend_pid() LIMIT 1)
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relname = $1 AND n.nspname = coalesce($2, current_schema())",
                &[&index.name, &index.schema()],
            )
            .await
            .map_err(|e| pg::detail(&e))?;
        match row.map(|row| (row.get::<_, bool>(0), row.get::<_, Option<i32>>(1))) {
            // Another finish (or one killed on a server that kept its build going)
            // is building it: wait for its outcome rather than build it twice.
            Some((_, Some(pid))) => {
                record(
                    client,
                    run,
                    item,
                    "index",
                    "building",
                    &format!("waiting for session {pid}, which is building it"),
                    None,
                )
                .await
                .map_err(|e| e.to_string())?;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Some((valid, None)) => break Some(valid),
            None => break None,
        }
    };
    let qualified = match index.schema() {
        Some(schema) => format!(
            "{}.{}",
            landing::identifier::quote(schema),
            landing::identifier::quote(&index.name)
        ),
        None => landing::identifier::quote(&index.name),
    };
    let how = match state {
        Some(true) => return Ok("valid already".to_string()),
        Some(false) => {
            client
                .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}"))
                .await
                .map_err(|e| pg::detail(&e))?;
            "rebuilt (a crash had left it invalid)"
        }
        None => "built",
    };
    if let Err(e) = client.batch_execute(&index.sql).await {
        let _ = client
            .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}"))
            .await;
        return Err(pg::detail(&e));
    }
    Ok(how.to_string())
}
