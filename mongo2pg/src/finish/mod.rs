//! `mongo2pg finish`: after the load, MongoDB's indexes and the mapping's foreign keys
//! in PostgreSQL.
//!
//! Nothing of this happens during the load: COPY stays fast, and consumers land
//! collections in any order, so a reference may land before what it refers to. Once
//! the snapshot has landed (or a followed run has caught up):
//! 1. each collection's indexes are read with `listIndexes` and translated through the
//!    mapping ([`indexes`]); those with a counterpart are built `CONCURRENTLY`, on
//!    `--jobs` tables at once, one index of a table after another (two concurrent
//!    builds on one table deadlock); an index a crash left INVALID is dropped and
//!    built again, a valid one kept; the others are reported with their reason;
//! 2. each reference becomes a foreign key ([`constraints`]), added `NOT VALID`, its
//!    orphans counted, and validated when there are none.
//!
//! A unique index the data violates, or a reference to a missing document, is named
//! in the report with examples and makes the exit status 4; everything else is still
//! built. `--plan` prints the statements instead.

pub(crate) mod constraints;
mod geo;
mod indexes;
mod model;

use std::fmt::Write as _;
use std::time::Instant;

use std::io::IsTerminal as _;

use bson::Document;
use common::broker::Broker;
use common::naming::{bookkeeping_table, FINISH_TABLE};
use common::run_state::RunState;
use futures::stream::{self, StreamExt, TryStreamExt};
use landing::mapping::MappingFile;
use landing::pg::{self, PgError};

use crate::config::FinishConfig;
use crate::error::{ExitStatus, OperatorError};
use constraints::ForeignKey;
use model::{Index, Translated};
use source::SourceError;

/// What `finish` did, or would do with `--plan`.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// The report.
    pub text: String,
    /// Indexes that could not be built, and foreign keys left not valid.
    pub failures: usize,
}

impl Finished {
    /// 0 when everything was built and validated, 4 otherwise.
    pub fn exit_status(&self) -> ExitStatus {
        if self.failures > 0 {
            ExitStatus::DIFFERENT
        } else {
            ExitStatus::SUCCESS
        }
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Reads the indexes, then builds them and the foreign keys (or prints them).
///
/// # Errors
/// [`OperatorError`] when a server cannot be reached or the mapping read; what cannot
/// be built is in the report, not an error.
pub async fn finish(config: &FinishConfig) -> Result<Finished, OperatorError> {
    let broker = Broker::open(&config.nats, config.nats.stream.clone()).await?;
    let state = RunState::new(
        broker.state.clone(),
        broker.names.clone(),
        config.run.run.clone(),
    );
    let file = match &config.mapping {
        Some(path) => MappingFile::load(path)?,
        None => match state.mapping().await? {
            Some(held) => MappingFile::parse(&held)?,
            None => MappingFile::default(),
        },
    };
    let collections: Vec<String> = state
        .manifest()
        .await?
        .map(|manifest| manifest.present())
        .unwrap_or_default();
    let database = source::connect(&config.mongo).await?;
    finish_with(
        &file,
        &collections,
        &database,
        &config.postgres.database_url,
        config.run.run.as_str(),
        config.jobs,
        config.plan,
    )
    .await
}

/// What `finish` has to do: MongoDB's indexes translated, and the foreign keys.
struct Work {
    translated: Vec<Translated>,
    keys: Vec<ForeignKey>,
}

impl Work {
    /// Reads the indexes of the run's `collections` and of the mapped ones, and
    /// translates them with the references' keys: a collection without a mapping
    /// landed in its default table, whose plan says where each path is.
    async fn read(
        file: &MappingFile,
        collections: &[String],
        database: &source::Source,
    ) -> Result<Work, SourceError> {
        let mut work = Work {
            translated: Vec::new(),
            keys: Vec::new(),
        };
        let all: std::collections::BTreeSet<&String> =
            file.collections.keys().chain(collections).collect();
        for collection in all {
            let plan = file.plan(collection);
            let models: Vec<mongodb::IndexModel> = database
                .collection::<Document>(collection)
                .list_indexes()
                .await
                .map_err(|e| SourceError::read(collection.clone(), &e))?
                .try_collect()
                .await
                .map_err(|e| SourceError::read(collection.clone(), &e))?;
            work.translated.extend(
                models
                    .iter()
                    .filter_map(|m| indexes::translate(collection, &plan, m)),
            );
            work.keys.extend(constraints::foreign_keys(file, &plan));
        }
        Ok(work)
    }

    /// The statements, with what is reported as comments.
    fn plan_text(translated: &[Translated], keys: &[ForeignKey]) -> String {
        let mut text = String::new();
        for t in translated {
            for note in &t.notes {
                let _ = writeln!(text, "-- {}: {note}", t.source);
            }
            if let Some(index) = &t.index {
                let _ = writeln!(text, "{};", index.sql);
            }
        }
        for key in keys {
            let _ = writeln!(text, "{};\n{};", key.add, key.validate);
        }
        text
    }
}

/// The statements `finish` would run for `file`'s collections, as `--plan` prints
/// them: what `infer` appends to its `schema.sql`.
///
/// # Errors
/// When MongoDB's indexes cannot be read.
pub async fn plan_sql(
    file: &MappingFile,
    database: &source::Source,
) -> Result<String, SourceError> {
    let work = Work::read(file, &[], database).await?;
    Ok(Work::plan_text(&work.translated, &work.keys))
}

/// [`finish`] with the mapping and MongoDB at hand: `cutover` runs it once caught up.
///
/// # Errors
/// As [`finish`].
pub async fn finish_with(
    file: &MappingFile,
    collections: &[String],
    database: &source::Source,
    url: &str,
    run: &str,
    jobs: usize,
    plan: bool,
) -> Result<Finished, OperatorError> {
    let Work {
        mut translated,
        keys,
    } = Work::read(file, collections, database).await?;
    let mut out = Finished::default();
    if plan {
        out.text = Work::plan_text(&translated, &keys);
        return Ok(out);
    }
    let mut client = pg::connect(url).await?;
    landing::schema::ensure_bookkeeping(&mut client).await?;
    without_missing_extensions(&client, &mut translated).await?;
    for t in &translated {
        let (item, state, detail) = match &t.index {
            // Its last note says what is missing.
            Some(index) if t.blocked => (
                item(t, index),
                "failed",
                t.notes.last().cloned().unwrap_or_default(),
            ),
            Some(index) => (item(t, index), "waiting", t.notes.join("; ")),
            None => (t.source.clone(), "reported", t.notes.join("; ")),
        };
        record(&client, run, &item, "index", state, &detail, None).await?;
    }
    for key in &keys {
        record(
            &client,
            run,
            &key.relationship,
            "foreign key",
            "waiting",
            "",
            None,
        )
        .await?;
    }
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
    let built: Vec<(String, Result<String, String>)> = stream::iter(by_table)
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
        .await;
    let mut built_count = 0;
    for t in &translated {
        let outcome = t
            .index
            .as_ref()
            .and_then(|i| built.iter().find(|(name, _)| *name == i.name));
        match (&t.index, outcome) {
            (Some(index), Some((_, Ok(how)))) => {
                built_count += 1;
                let _ = writeln!(
                    out.text,
                    "index  {}: {} on {} {how}",
                    t.source, index.name, index.table
                );
            }
            (Some(index), Some((_, Err(why)))) => {
                out.failures += 1;
                let _ = writeln!(
                    out.text,
                    "index  {}: {} on {} FAILED: {why}",
                    t.source, index.name, index.table
                );
            }
            (Some(index), None) if t.blocked => {
                out.failures += 1;
                let _ = writeln!(
                    out.text,
                    "index  {}: {} on {} NOT BUILT",
                    t.source, index.name, index.table
                );
            }
            _ => {
                let _ = writeln!(out.text, "index  {}: not built", t.source);
            }
        }
        for note in &t.notes {
            let _ = writeln!(out.text, "         {note}");
        }
    }
    let mut valid = 0;
    for key in &keys {
        let failed = |e| OperatorError::Pg(PgError::new(format!("adding {}", key.relationship), e));
        let target_exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&key.target])
            .await
            .map_err(failed)?
            .get(0);
        if !target_exists {
            out.failures += 1;
            let detail = format!(
                "the referenced table {} does not exist: migrate that collection too, or drop the reference from the mapping",
                key.target
            );
            record(
                &client,
                run,
                &key.relationship,
                "foreign key",
                "not valid",
                &detail,
                None,
            )
            .await?;
            let _ = writeln!(
                out.text,
                "foreign key  {}: not added: {detail}",
                key.relationship
            );
            continue;
        }
        let exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1 AND conrelid = to_regclass($2))",
                &[&key.name, &landing::identifier::quote_table(&key.table)],
            )
            .await
            .map_err(failed)?
            .get(0);
        if !exists {
            client.batch_execute(&key.add).await.map_err(failed)?;
        }
        let orphans = client.query_one(&key.orphans, &[]).await.map_err(failed)?;
        let count: i64 = orphans.get(0);
        if count == 0 {
            client.batch_execute(&key.validate).await.map_err(failed)?;
            valid += 1;
            record(
                &client,
                run,
                &key.relationship,
                "foreign key",
                "valid",
                "",
                None,
            )
            .await?;
            let _ = writeln!(out.text, "foreign key  {}: valid", key.relationship);
        } else {
            out.failures += 1;
            let examples: Vec<String> =
                orphans.get::<_, Option<Vec<String>>>(1).unwrap_or_default();
            let detail = format!("{count} orphans, e.g. {}", examples.join(", "));
            record(
                &client,
                run,
                &key.relationship,
                "foreign key",
                "not valid",
                &detail,
                None,
            )
            .await?;
            let _ = writeln!(
                out.text,
                "foreign key  {}: {count} orphans, e.g. {} (document -> missing key); kept NOT VALID (new rows are checked); add the missing documents or fix the references, then run finish again",
                key.relationship,
                examples.join(", ")
            );
        }
    }
    let _ = writeln!(
        out.text,
        "finish: {built_count} of {} indexes built, {valid} of {} foreign keys valid{}",
        translated.iter().filter(|t| t.index.is_some()).count(),
        keys.len(),
        if out.failures > 0 {
            format!("; {} need attention (above)", out.failures)
        } else {
            String::new()
        }
    );
    Ok(out)
}

/// Indexes needing an extension the database lacks (PostGIS) are reported instead,
/// with the statement to run once it is there.
async fn without_missing_extensions(
    client: &tokio_postgres::Client,
    translated: &mut [Translated],
) -> Result<(), OperatorError> {
    let installed: Vec<String> = client
        .query("SELECT extname::text FROM pg_extension", &[])
        .await
        .map_err(|e| OperatorError::Pg(PgError::new("reading the installed extensions", e)))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for t in translated {
        let Some(index) = &t.index else { continue };
        if let Some(extension) = index
            .extension
            .filter(|e| !installed.iter().any(|i| i == e))
        {
            t.notes.push(format!(
                "needs the {extension} extension, which this database does not have: CREATE EXTENSION {extension}; then run finish again (it builds {})",
                index.sql
            ));
            t.blocked = true;
        }
    }
    Ok(())
}

/// How the finish table names an index: MongoDB's index and PostgreSQL's.
fn item(t: &Translated, index: &Index) -> String {
    format!("{} ({})", t.source, index.name)
}

/// Records an item's state in the finish table, for `status`.
async fn record(
    client: &tokio_postgres::Client,
    run: &str,
    item: &str,
    kind: &str,
    state: &str,
    detail: &str,
    seconds: Option<f64>,
) -> Result<(), OperatorError> {
    client
        .execute(
            &format!(
                "INSERT INTO {} (run, item, kind, state, detail, seconds) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (run, item) DO UPDATE SET kind = $3, state = $4, detail = $5, seconds = $6, updated_at = now()",
                bookkeeping_table(FINISH_TABLE)
            ),
            &[&run, &item, &kind, &state, &detail, &seconds],
        )
        .await
        .map_err(|e| OperatorError::Pg(PgError::new("recording finish's progress", e)))?;
    Ok(())
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
