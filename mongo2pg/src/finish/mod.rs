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
//!
//! Layout: [`indexes`] translates MongoDB's indexes (with [`geo`] for its geospatial
//! ones, into the shapes of [`model`]); `build` builds them; [`constraints`] plans and
//! adds the foreign keys; `progress` records each item in the finish table, for
//! `status`.

mod build;
pub(crate) mod constraints;
mod geo;
mod indexes;
mod model;
mod progress;

use std::fmt::Write as _;

use bson::Document;
use common::broker::Broker;
use common::run_state::RunState;
use futures::stream::TryStreamExt;
use landing::mapping::MappingFile;
use landing::pg::{self, PgError};

use crate::config::FinishConfig;
use crate::error::{ExitStatus, OperatorError};
use constraints::ForeignKey;
use model::Translated;
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
    // Indexes and foreign keys want the primary keys: one still waiting for the
    // consumers (`--key-after-load`) is built now. Early is never wrong: a batch landing
    // after it meets the key as any batch does.
    for key in landing::keys::build_pending(&mut client, run).await? {
        let _ = writeln!(
            out.text,
            "key    {}: primary key built after the load in {:.1} s{}",
            key.table,
            key.seconds.unwrap_or_default(),
            if key.duplicates > 0 {
                format!(" ({} documents published twice, kept once)", key.duplicates)
            } else {
                String::new()
            }
        );
    }
    without_missing_extensions(&client, &mut translated).await?;
    for t in &translated {
        let (item, state, detail) = match &t.index {
            // Its last note says what is missing.
            Some(index) if t.blocked => (
                build::item(t, index),
                "failed",
                t.notes.last().cloned().unwrap_or_default(),
            ),
            Some(index) => (build::item(t, index), "waiting", t.notes.join("; ")),
            None => (t.source.clone(), "reported", t.notes.join("; ")),
        };
        progress::record(&client, run, &item, "index", state, &detail, None).await?;
    }
    for key in &keys {
        progress::record(
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
    let built = build::build_all(url, run, jobs, &translated).await;
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
    let added = constraints::add_all(&client, run, &keys).await?;
    out.text.push_str(&added.text);
    out.failures += added.failures;
    let valid = added.valid;
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
