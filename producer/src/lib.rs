//! The producer: pages MongoDB collections by `_id` and publishes them as batches.
//!
//! # Layout
//! - [`config`]: command line and environment.
//! - [`follow`]: the change stream after the snapshot (`run --follow`).
//! - [`context`]: what every task of a run works with, as one value.
//! - [`collection`]: one collection, whole or in ranges.
//! - [`part`]: one part of a collection, page to batch to publish, with its checkpoint.
//! - [`range_readers`]: reading a collection's ranges with several tasks and processes.
//! - `read_ahead`: reading the next cursor reply while the last one is published.
//! - [`ranges`]: a collection's `_id` ranges, planned once per run and recorded.
//! - [`lease`]: leases on ranges and on following, shared by several producers.
//! - [`progress`]: the progress bar on a terminal.
//! - [`publisher`]: the bounded window of publish acknowledgements.
//! - [`checkpointer`]: saving the newest acknowledged position, off the publish path.
//! - [`retry`]: riding out a NATS restart.
//! - [`throttle`]: `--max-read-rate`, the snapshot readers' limit on MongoDB.
//! - `preflight`: what a run checks before it publishes anything.
//! - [`Summary`]: what a run published, as it is printed.
//! - [`error`]: what stops the producer.
//!
//! Reading MongoDB (connecting, paging, planning ranges, change events) is the
//! `source` library; the commands a person runs are the `mongo2pg` binary.
//!
//! Data path: `_id` ranges (`ranges`, `range_readers`; one pass for a collection of one
//! range) → `read_ahead` (a reply ahead of the publishing, raw BSON as MongoDB sent it)
//! → `BatchBuilder` (count and byte limits; large
//! documents to the object store) → msgpack `Envelope` → `publisher` → PubAck →
//! checkpoint in the key-value bucket → manifest totals when the collection ends.
#![warn(unreachable_pub, missing_docs)]

mod checkpointer;
mod collection;
pub mod config;
mod context;
pub mod error;
pub mod follow;
pub mod lease;
mod metrics;
mod part;
mod preflight;
mod progress;
mod publisher;
mod range_readers;
mod ranges;
mod read_ahead;
mod retry;
mod summary;
pub mod throttle;

pub use summary::Summary;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bson::Bson;
use common::broker::Broker;
use common::run_state::{CollectionTotals, RunManifest, RunSource, RunState, SelectionPatterns};
use futures::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::RunConfig;
use crate::context::RunContext;
use crate::error::ProducerError;
use crate::part::CollectionSummary;

/// Publishes every collection of the run and records the totals; returns once the
/// stream has acknowledged every batch.
///
/// # Errors
/// [`ProducerError`] when a server is unreachable, a collection is missing, or a
/// publish keeps failing. Whatever was acknowledged before is checkpointed: running
/// again resumes.
pub async fn run(config: RunConfig, shutdown: CancellationToken) -> Result<Summary, ProducerError> {
    let span = tracing::info_span!(
        "run",
        run = %config.run.run,
        documents = tracing::field::Empty,
        docs_per_sec = tracing::field::Empty,
    );
    let summary = run_collections(config, shutdown)
        .instrument(span.clone())
        .await?;
    span.record("documents", summary.documents());
    span.record(
        "docs_per_sec",
        (summary.documents() as f64 / summary.elapsed.as_secs_f64().max(1e-9)) as u64,
    );
    Ok(summary)
}

async fn run_collections(
    config: RunConfig,
    shutdown: CancellationToken,
) -> Result<Summary, ProducerError> {
    let started = Instant::now();
    // Served from the start, so a scrape sees the run from its first batch; stopped
    // when this function returns, however it returns.
    let metrics = Arc::new(metrics::Metrics::default());
    let serving = CancellationToken::new();
    let _stop_serving = serving.clone().drop_guard();
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ProducerError::Metrics { addr, source })?;
        let (metrics, run) = (metrics.clone(), config.run.run.to_string());
        tokio::spawn(common::exposition::serve(
            listener,
            move || metrics.render(&run),
            serving.clone(),
        ));
    }
    let selection = source::Selection::new(SelectionPatterns {
        include: config.include.clone(),
        exclude: config.exclude.clone(),
    })?;
    let mongo = source::connect(&config.mongo).await?;
    let mut collections = source::collections(
        &mongo,
        &common::config::collection_names(&config.collections),
    )
    .await?;
    let mut left_out = BTreeMap::new();
    if !selection.is_empty() {
        let available = collections.join(", ");
        collections.retain(|name| match selection.verdict_on(&mongo, name) {
            Ok(()) => true,
            Err(why) => {
                left_out.insert(name.clone(), why.to_string());
                false
            }
        });
        if collections.is_empty() {
            return Err(source::SourceError::NoneSelected {
                database: mongo.shown(),
                patterns: selection.patterns.shown(),
                available,
            }
            .into());
        }
        tracing::info!(chosen = %collections.join(", "), left_out = left_out.len(), "collections chosen by --include/--exclude");
    }
    let broker = Broker::connect(&config.nats, config.nats.stream.clone()).await?;
    let run = config.run.run.clone();
    let state = RunState::new(broker.state.clone(), broker.names.clone(), run.clone());

    let source = RunSource {
        database: config.mongo.mongodb_database.clone(),
        uri: common::config::redact_url(&config.mongo.mongodb_uri),
    };
    preflight::check_source(&state, &run, &source, config.restart, &shutdown).await?;
    let mapping = preflight::mapping(&state, &run, config.mapping.as_deref()).await?;
    let (filters, filters_json) = (mapping.filters(), mapping.filters_json());
    for (collection, filter) in &filters {
        if collections.contains(collection) {
            tracing::info!(collection = %collection, filter = %Bson::Document(filter.clone()).into_relaxed_extjson(), "only the documents the mapping's filter matches move");
        }
    }
    let scope = preflight::check_follow(
        &state,
        &run,
        &mongo,
        &collections,
        config.follow,
        config.collections.is_empty(),
        &shutdown,
    )
    .await?;
    if config.restart {
        // Changes may be landing already: snapshot rows landed again after them could
        // bring back documents the stream deleted.
        if state.start().await?.is_some() {
            return Err(ProducerError::RestartFollowed {
                run: run.to_string(),
            });
        }
        preflight::forget(&state, &collections).await?;
    }

    // Before the first snapshot batch, and before anything else is recorded: every
    // change after this point is followed, so none made while the snapshot is read is
    // missed; and a `--follow` MongoDB refuses (a standalone) leaves the run as it was.
    let start = if config.follow {
        Some(follow::record_start(&mongo, &state, run.as_str(), &scope).await?)
    } else {
        None
    };
    if start.is_some() && scope == follow::Scope::Database {
        // A collection created between the listing above and the start position has
        // documents the stream will never carry: the snapshot reads it too.
        for name in source::collections(&mongo, &[]).await? {
            if !collections.contains(&name) && selection.verdict_on(&mongo, &name).is_ok() {
                tracing::info!(collection = %name, "created while the run started: snapshotted too");
                collections.push(name);
            }
        }
    }

    // Announce the run's collections before publishing, so consumers waiting for the end
    // know what to wait for. Totals published so far are kept: they are a resumed run's.
    let mut estimates = Vec::new();
    for name in &collections {
        let estimated = mongo
            .collection::<bson::Document>(name)
            .estimated_document_count()
            .await
            .unwrap_or(0);
        metrics.estimated(name, estimated);
        estimates.push((name.clone(), estimated));
    }
    let follow = config.follow;
    let all_collections = config.collections.is_empty();
    let filtered: BTreeMap<String, String> = filters_json
        .into_iter()
        .filter(|(name, _)| collections.contains(name))
        .collect();
    let max_read_rate = config.max_read_rate;
    if let Some(rate) = max_read_rate {
        tracing::info!(limit = %rate, "snapshot reads are limited (--max-read-rate)");
    }
    update_manifest(&state, &shutdown, |manifest| {
        manifest.complete = false;
        manifest.read_limit = max_read_rate.map(|rate| rate.to_string());
        manifest.follow |= follow;
        manifest.all_collections |= all_collections;
        manifest.follows_database |= follow && scope == follow::Scope::Database;
        manifest.filters = filtered.clone();
        if !selection.is_empty() {
            manifest.selection = Some(selection.patterns.clone());
            manifest.left_out.clone_from(&left_out);
        }
        manifest.source = Some(source.clone());
        for (name, estimated) in &estimates {
            let totals = manifest.collections.entry(name.clone()).or_default();
            totals.estimated = *estimated;
        }
    })
    .await?;

    let concurrency = config.concurrency.get();
    // While the snapshot is read, the headroom is the start position's: the follower
    // measures from its checkpoint once it follows. Stopped once the snapshot is
    // published (or when this function returns early).
    let measuring = start.as_ref().map(|start| {
        let stop = shutdown.child_token();
        let task = tokio::spawn(follow::measure_from_start(
            mongo.clone(),
            metrics.clone(),
            start.cluster_time,
            stop.clone(),
        ));
        (stop.drop_guard(), task)
    });
    let ctx = RunContext {
        source: mongo,
        broker,
        state,
        config,
        shutdown,
        filters: Arc::new(filters),
        metrics,
        throttle: Arc::new(throttle::Throttle::new(max_read_rate)),
        // Every operation before the start position: the snapshot must hold them all.
        as_of: start.as_ref().map(|start| start.cluster_time.just_before()),
    };
    // `--concurrency` collections at once; each records its totals when it is done.
    let published = futures::stream::iter(estimates.iter().map(|(name, estimated)| {
        let (ctx, run) = (&ctx, &run);
        async move {
            let span = tracing::info_span!(
                "collection",
                run = %run,
                collection = %name,
                documents = tracing::field::Empty,
                docs_per_sec = tracing::field::Empty,
            );
            let summary = collection::publish_collection(ctx, name, *estimated)
                .instrument(span)
                .await?;
            update_manifest(&ctx.state, &ctx.shutdown, |manifest| {
                manifest.collections.insert(
                    name.clone(),
                    CollectionTotals {
                        documents: summary.documents,
                        batches: summary.batches,
                        bytes: summary.bytes,
                        estimated: *estimated,
                        complete: true,
                    },
                );
            })
            .await?;
            Ok::<_, ProducerError>(summary)
        }
    }))
    .buffer_unordered(concurrency);
    let mut summaries: Vec<CollectionSummary> = published.try_collect().await?;
    summaries.sort_by_key(|s| collections.iter().position(|c| *c == s.name));
    update_manifest(&ctx.state, &ctx.shutdown, |manifest| {
        manifest.complete = manifest.collections.values().all(|c| c.complete);
    })
    .await?;
    if let Some((stop, task)) = measuring {
        drop(stop);
        let _ = task.await;
        // A standby producer shows no position of its own.
        ctx.metrics.forget_position();
    }
    let followed = match &start {
        Some(start) => Some(
            follow::follow_as_one(&ctx, &collections, &scope, start)
                .instrument(tracing::info_span!("follow", run = %run))
                .await?,
        ),
        None => None,
    };
    Ok(Summary {
        run: ctx.config.run.run.to_string(),
        collections: summaries,
        followed,
        elapsed: started.elapsed(),
        read_rate: ctx.throttle.achieved(),
    })
}

/// Changes the run manifest, riding out a NATS restart.
pub(crate) async fn update_manifest(
    state: &RunState,
    stop: &CancellationToken,
    change: impl Fn(&mut RunManifest),
) -> Result<RunManifest, ProducerError> {
    retry::with_retries("updating the run manifest", stop, || {
        state.update_manifest(&change)
    })
    .await
}
