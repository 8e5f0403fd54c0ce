//! Reading where a run stands from its three servers: the manifest and checkpoints on
//! NATS, the source's counts in MongoDB, the ledger, rejects and dead letters in
//! PostgreSQL, and, for a followed run, the change stream's position ([`super::live`]).

use bson::doc;
use common::broker::Broker;
use common::naming::{bookkeeping_table, DEAD_LETTERS_TABLE, LEDGER_TABLE, REJECTS_TABLE};
use common::run_state::RunState;

use super::{finish, live, CollectionStatus, RangeStatus, RunStatus};
use crate::config::StatusConfig;
use crate::error::OperatorError;

/// Reads the run's state from MongoDB, NATS and PostgreSQL.
pub async fn status(config: &StatusConfig) -> Result<RunStatus, OperatorError> {
    read(&Servers::connect(config).await?, config).await
}

/// The three servers `status` reads, connected once: `--watch` reads them again and
/// again.
pub struct Servers {
    database: source::Source,
    pg: tokio_postgres::Client,
    broker: Broker,
}

impl Servers {
    /// Connects to MongoDB, PostgreSQL and NATS.
    ///
    /// # Errors
    /// When one cannot be reached, or the run's stream is not on NATS.
    pub async fn connect(config: &StatusConfig) -> Result<Self, OperatorError> {
        Ok(Servers {
            database: source::connect(&config.mongo).await?,
            pg: landing::pg::connect(&config.postgres.database_url).await?,
            // Only looks: a mistyped stream or run is said, not created.
            broker: Broker::open(&config.nats, config.nats.stream.clone()).await?,
        })
    }
}

/// Where the run stands, read from `servers`.
///
/// # Errors
/// As [`status`], once connected.
pub async fn read(servers: &Servers, config: &StatusConfig) -> Result<RunStatus, OperatorError> {
    let Servers {
        database,
        pg,
        broker,
    } = servers;
    let run = &config.run.run;
    let state = RunState::new(broker.state.clone(), broker.names.clone(), run.clone());
    let manifest = state
        .manifest()
        .await?
        .ok_or_else(|| OperatorError::UnknownRun {
            run: run.to_string(),
            stream: broker.names.stream().to_string(),
        })?;

    let mut status = RunStatus {
        run: run.to_string(),
        producer_finished: manifest.complete,
        source_counted: config.exact,
        selection: manifest
            .selection
            .as_ref()
            .map(|patterns| (patterns.shown(), manifest.left_out.clone())),
        dropped: manifest.dropped.clone(),
        read_limit: manifest.read_limit.clone(),
        ..Default::default()
    };
    for (name, totals) in &manifest.collections {
        if manifest.dropped.contains_key(name) {
            continue;
        }
        let collection = database.collection::<bson::Document>(name);
        // A filtered collection's source is the documents its filter matches: counted.
        let filter = manifest
            .filters
            .get(name)
            .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
            .and_then(|json| bson::Document::try_from(json.as_object()?.clone()).ok());
        let counted = match (filter, config.exact) {
            (Some(filter), _) => collection.count_documents(filter).await,
            (None, true) => collection.count_documents(doc! {}).await,
            (None, false) => collection.estimated_document_count().await,
        };
        let source = counted.map_err(|e| source::SourceError::read(name.clone(), &e))?;
        let ranges = range_status(&state, name).await?;
        // Until a collection is finished, its checkpoint has the latest count (its
        // ranges' checkpoints, when it is read in ranges).
        let published = if totals.complete {
            totals.documents
        } else if let Some((_, documents)) = &ranges {
            *documents
        } else {
            state.checkpoint(name).await?.map_or(0, |c| c.documents)
        };
        status.collections.insert(
            name.clone(),
            CollectionStatus {
                source,
                published,
                published_complete: totals.complete,
                ranges: ranges.map(|(ranges, _)| ranges),
                ..Default::default()
            },
        );
    }

    let pg_failed = |e: tokio_postgres::Error| {
        OperatorError::Pg(landing::pg::PgError::new("reading the ledger", e))
    };
    let ledger = pg
        .query(
            &format!(
                "SELECT collection, coalesce(sum(rows_written), 0)::int8, coalesce(sum(rows_rejected), 0)::int8,
                        coalesce(sum(rows_already), 0)::int8
                 FROM {} WHERE run = $1 AND kind = 'snapshot' GROUP BY collection",
                bookkeeping_table(LEDGER_TABLE)
            ),
            &[&run.as_str()],
        )
        .await;
    match ledger {
        Ok(rows) => {
            for row in rows {
                let name: String = row.try_get(0).map_err(pg_failed)?;
                // Gone from MongoDB while followed: not counted, like its source.
                if manifest.dropped.contains_key(&name) {
                    continue;
                }
                let entry = status.collections.entry(name).or_default();
                entry.committed = row.try_get::<_, i64>(1).map_err(pg_failed)? as u64;
                entry.rejected = row.try_get::<_, i64>(2).map_err(pg_failed)? as u64;
                entry.already = row.try_get::<_, i64>(3).map_err(pg_failed)? as u64;
            }
            status.waiting_rejects = not_landed(pg, run.as_str()).await?.0;
            status.finish = finish::read(pg, run.as_str()).await?;
            // A key built after the load found the documents that had landed twice
            // (published again in other batches) and kept each once.
            for key in landing::keys::of_run(pg, run.as_str()).await? {
                if manifest.dropped.contains_key(&key.collection) {
                    continue;
                }
                let entry = status.collections.entry(key.collection).or_default();
                if key.built {
                    entry.committed = entry.committed.saturating_sub(key.duplicates);
                    entry.already += key.duplicates;
                } else {
                    entry.key_pending = Some(key.table);
                }
            }
            let dead = pg
                .query(
                    &format!(
                        "SELECT collection, count(*) FROM {} WHERE run = $1 GROUP BY collection",
                        bookkeeping_table(DEAD_LETTERS_TABLE)
                    ),
                    &[&run.as_str()],
                )
                .await
                .map_err(pg_failed)?;
            for row in dead {
                let count = row.try_get::<_, i64>(1).map_err(pg_failed)? as u64;
                match row.try_get::<_, Option<String>>(0).map_err(pg_failed)? {
                    Some(collection) => {
                        status
                            .collections
                            .entry(collection)
                            .or_default()
                            .dead_letter_batches = count
                    }
                    None => status.unattributed_dead_letters = count,
                }
            }
        }
        // No consumer has created the bookkeeping tables yet: nothing landed.
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {}
        Err(err) => return Err(pg_failed(err)),
    }

    if let Ok(stream) = broker.jetstream.get_stream(broker.names.stream()).await {
        if let Ok(info) = stream
            .consumer_info(broker.names.durable_consumer(run))
            .await
        {
            status.pending = Some((info.num_pending, info.num_ack_pending as u64));
        }
    }
    if manifest.follow {
        status.live = Some(live::live(database, broker, &state, pg, run, &manifest).await?);
    }
    Ok(status)
}

/// The run's documents in `_migrate_rejects` and batches in the dead letters: what
/// PostgreSQL does not hold although the stream is drained.
pub async fn not_landed(
    pg: &tokio_postgres::Client,
    run: &str,
) -> Result<(u64, u64), OperatorError> {
    let mut counts = [0u64; 2];
    for (count, table) in counts.iter_mut().zip([REJECTS_TABLE, DEAD_LETTERS_TABLE]) {
        let counted = pg
            .query_one(
                &format!(
                    "SELECT count(*) FROM {} WHERE run = $1",
                    bookkeeping_table(table)
                ),
                &[&run],
            )
            .await;
        *count = match counted {
            Ok(row) => row
                .try_get::<_, i64>(0)
                .map_err(|e| OperatorError::Pg(landing::pg::PgError::new("counting", e)))?
                as u64,
            // No consumer has created the bookkeeping tables: nothing is there.
            Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
            Err(err) => {
                return Err(OperatorError::Pg(landing::pg::PgError::new(
                    format!("counting {table}"),
                    err,
                )))
            }
        };
    }
    Ok((counts[0], counts[1]))
}

/// Where the ranges of a collection read in ranges stand, and the documents they have
/// published; `None` for a collection read in one pass.
async fn range_status(
    state: &RunState,
    collection: &str,
) -> Result<Option<(RangeStatus, u64)>, OperatorError> {
    let Some(plan) = state.plan(collection).await? else {
        return Ok(None);
    };
    // A collection of one range is read in one pass, under its own checkpoint.
    if plan.ranges() <= 1 {
        return Ok(None);
    }
    let now = common::crash::now_ms();
    let mut status = RangeStatus::default();
    let mut documents = 0;
    for index in 0..plan.ranges() {
        let checkpoint = state
            .checkpoint(&common::naming::range_part(collection, index))
            .await?;
        documents += checkpoint.as_ref().map_or(0, |c| c.documents);
        if checkpoint.is_some_and(|c| c.complete) {
            status.done += 1;
            continue;
        }
        match state.range_lease(collection, index).await? {
            Some(lease) if lease.expires_ms > now => status.in_progress.push((index, lease.holder)),
            _ => status.waiting += 1,
        }
    }
    Ok(Some((status, documents)))
}
