//! A consumer process: binds the run's durable consumer, runs the writers, logs
//! throughput, and stops them on a signal or once the run is done.
//!
//! Tasks and their owners: `run` owns every task it spawns through one `JoinSet` and a
//! child of the shutdown token; the writers, the throughput log, the metrics endpoint,
//! the task that acts once the snapshot has landed (keys, then changes) and the done
//! watcher (`done::watch_done`) all stop when that token is cancelled, and `run`
//! returns only after all of them ended.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::ConsumerErrorKind;
use common::broker::Broker;
use common::naming::RunName;
use common::run_state::RunState;
use landing::mapping::MappingFile;
use landing::{pg, schema};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::ConsumerConfig;
use crate::done::Progress;
use crate::error::ConsumerError;
use crate::keys::{build_keys, LandedCollections};
use crate::shared::Shared;
use crate::stats::{Stats, Totals};
use crate::writer::Writer;
use crate::{done, metrics};

/// How often the throughput line is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// Batches delivered and not yet acknowledged across all processes of a run: enough to
/// keep every writer of many processes busy, small enough to bound redelivery storms.
const MAX_ACK_PENDING: i64 = 1024;

/// What this process did.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Batches, rows, rejects, duplicates and dead letters of this process.
    pub totals: Totals,
    /// From start to stop.
    pub elapsed: Duration,
}

/// Runs the writers until `shutdown` is cancelled or, with `--exit-when-done`, until
/// every batch of the run is accounted for.
///
/// # Errors
/// When PostgreSQL or NATS cannot be reached at start, the mapping file is invalid, or
/// the durable consumer cannot be bound. Once running, failures are retried, not fatal.
pub async fn run(
    config: ConsumerConfig,
    shutdown: CancellationToken,
) -> Result<Report, ConsumerError> {
    let started = Instant::now();
    let (mut mapping, recorded) = MappingFile::load_recorded(config.mapping.as_deref())?;
    mapping.unlock(&recorded.source)?;
    let broker = Broker::connect(&config.nats, config.nats.stream.clone()).await?;
    let run = config.run.run.clone();
    // One mapping per run: the first consumer's holds, and another is refused before
    // it touches a table (it would split collections over other tables). It is
    // recorded only once this consumer's tables passed their checks.
    let state = RunState::new(broker.state.clone(), broker.names.clone(), run.clone());
    let same_mapping = |held: common::run_state::RunMapping| {
        if held.hash == recorded.hash {
            Ok(())
        } else {
            Err(ConsumerError::OtherMapping {
                run: run.to_string(),
                held: held.describe(),
                ours: recorded.describe(),
            })
        }
    };
    if let Some(held) = patiently("reading the run's mapping", || async {
        Ok(state.mapping().await?)
    })
    .await?
    {
        same_mapping(held)?;
    }
    // A filter the producer did not read the snapshot through would land documents
    // the mapping leaves out.
    let manifest = patiently("reading the run's manifest", || async {
        Ok(state.manifest().await?)
    })
    .await?;
    if let Some(manifest) = manifest {
        for (collection, ours) in mapping.filters_json() {
            if manifest.collections.contains_key(&collection)
                && manifest.filters.get(&collection) != Some(&ours)
            {
                return Err(ConsumerError::Unfiltered {
                    run: run.to_string(),
                    collection,
                    filter: ours,
                });
            }
        }
    }
    let mut client = pg::connect(&config.postgres.database_url).await?;
    schema::ensure_bookkeeping(&mut client).await?;
    if config.key_after_load {
        schema::ensure_keys_table(&mut client).await?;
    }
    for collection in mapping.collections.keys() {
        let load = landing::keys::KeyAfterLoad {
            run: run.as_str(),
            collection,
        };
        let key_after_load = config.key_after_load.then_some(&load);
        schema::ensure_table(
            &mut client,
            &mapping.plan(collection),
            Some(run.as_str()),
            key_after_load,
        )
        .await?;
    }
    same_mapping(
        patiently("recording the run's mapping", || async {
            Ok(state.record_mapping(&recorded).await?)
        })
        .await?,
    )?;

    let metrics_listener = match config.metrics_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ConsumerError::Metrics { addr, source })?,
        ),
        None => None,
    };
    let consumer = bind(&broker, &run, config.ack_wait).await?;
    let writers = config.writers();
    tracing::info!(run = %run, writers, stream = broker.names.stream(), "consumer started");

    let shared = Arc::new(Shared {
        run: run.clone(),
        database_url: config.postgres.database_url.clone(),
        mapping,
        broker: broker.clone(),
        stats: Stats::default(),
        ack_wait: config.ack_wait,
        batch_timeout: config.batch_timeout,
        max_deliver: config.max_deliver.get(),
        prefetch: config.prefetch.get(),
        key_after_load: config.key_after_load,
        settled: tokio::sync::watch::Sender::new(0),
    });
    let stop = shutdown.child_token();
    let mut tasks = JoinSet::new();
    for id in 0..writers {
        let writer = Writer::new(id, shared.clone());
        tasks.spawn(writer.run(consumer.clone(), stop.clone()));
    }
    tasks.spawn(report_throughput(
        shared.clone(),
        consumer.clone(),
        stop.clone(),
    ));
    if let Some(listener) = metrics_listener {
        tasks.spawn(metrics::serve(listener, shared.clone(), stop.clone()));
    }
    tasks.spawn(after_snapshot(
        state.clone(),
        consumer.clone(),
        shared.clone(),
        config.ack_wait,
        writers,
        stop.clone(),
    ));
    if config.exit_when_done {
        tasks.spawn(done::watch_done(
            state,
            consumer.clone(),
            shared.settled.subscribe(),
            client,
            config.postgres.database_url.clone(),
            run,
            stop.clone(),
        ));
    }

    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        if let Err(err) = joined {
            // A task panicked or was aborted: stop the others and report it.
            failure.get_or_insert(err);
            stop.cancel();
        }
    }
    if let Some(err) = failure {
        return Err(ConsumerError::Writer(err));
    }
    Ok(Report {
        totals: shared.stats.totals(),
        elapsed: started.elapsed(),
    })
}

/// Binds the run's durable pull consumer of snapshot batches, creating it when
/// absent. Every process of a run binds the same one, which is how they share the
/// batches.
async fn bind(
    broker: &Broker,
    run: &RunName,
    ack_wait: Duration,
) -> Result<PullConsumer, ConsumerError> {
    let name = broker.names.durable_consumer(run);
    let subjects = broker.names.run_subjects(run);
    patiently("binding the durable consumer", || {
        bind_durable(broker, name.clone(), subjects.clone(), ack_wait)
    })
    .await
}

/// Tries of [`patiently`]: with its pauses, about two minutes.
const PATIENT_TRIES: u32 = 30;

/// Runs `operation` again while it fails in a way that passes (NATS answering late
/// while a JetStream cluster elects a leader, a server restarting), for about two
/// minutes; any other failure is returned at once.
async fn patiently<T, F, Fut>(what: &str, mut operation: F) -> Result<T, ConsumerError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConsumerError>>,
{
    let mut attempt = 1;
    loop {
        match operation().await {
            Err(err) if err.is_transient() && attempt < PATIENT_TRIES => {
                tracing::warn!(attempt, error = %err, "{what} failed; trying again");
                let pause = Duration::from_millis(250) * 2u32.pow(attempt.min(4));
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Binds a durable pull consumer of `subjects`, creating it when absent.
async fn bind_durable(
    broker: &Broker,
    name: String,
    subjects: String,
    ack_wait: Duration,
) -> Result<PullConsumer, ConsumerError> {
    let failed = |transient: bool, source: async_nats::Error| ConsumerError::Consumer {
        name: name.clone(),
        transient,
        source,
    };
    // No answer, or a JetStream cluster between leaders (503): it passes.
    let unavailable = |js: &async_nats::jetstream::Error| js.code() == 503;
    let stream = broker
        .jetstream
        .get_stream(broker.names.stream())
        .await
        .map_err(|e| {
            let transient = match e.kind() {
                GetStreamErrorKind::Request => true,
                GetStreamErrorKind::JetStream(js) => unavailable(&js),
                _ => false,
            };
            failed(transient, e.into())
        })?;
    stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subjects,
                ack_policy: AckPolicy::Explicit,
                ack_wait,
                // Redelivery is bounded by the writers (dead letters), not the server,
                // so that no batch is ever dropped silently.
                max_deliver: -1,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            let transient = match e.kind() {
                ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request => true,
                ConsumerErrorKind::JetStream(js) => unavailable(&js),
                _ => false,
            };
            failed(transient, e.into())
        })
}

/// Logs a throughput line every few seconds and refreshes the gauges read from the
/// servers: batches pending in the stream, and where `mongo2pg finish` stands.
async fn report_throughput(shared: Arc<Shared>, consumer: PullConsumer, stop: CancellationToken) {
    let mut last = shared.stats.totals();
    let mut last_at = Instant::now();
    let mut pg: Option<tokio_postgres::Client> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(REPORT_EVERY) => {}
        }
        if let Ok(info) = consumer.get_info().await {
            shared.stats.set_pending(info.num_pending);
        }
        if pg.is_none() {
            pg = pg::connect(&shared.database_url).await.ok();
        }
        if let Some(client) = &pg {
            match landing::finish_state::counts(client, shared.run.as_str()).await {
                Ok(counts) => shared.stats.set_finish(counts),
                // Reconnects at the next tick.
                Err(_) => pg = None,
            }
        }
        let now = shared.stats.totals();
        if now == last {
            continue;
        }
        let seconds = last_at.elapsed().as_secs_f64().max(1e-9);
        tracing::info!(
            rows = now.rows,
            batches = now.batches,
            rejects = now.rejects,
            duplicates = now.duplicates,
            dead_letters = now.dead_letters,
            rows_per_sec = ((now.rows - last.rows) as f64 / seconds) as u64,
            "throughput"
        );
        last = now;
        last_at = Instant::now();
    }
}

/// How often a consumer of a followed run checks whether the snapshot has landed.
const SNAPSHOT_CHECK_EVERY: Duration = Duration::from_secs(1);

/// What happens once the run's snapshot has landed, until `stop`: the primary keys
/// waiting for it are built (`--key-after-load`, see `landing::keys`); then, for a
/// followed run, the run's change consumer is bound and as many change writers run as
/// snapshot writers. Changes wait for the snapshot so that no snapshot row lands after
/// a change to its document (see `landing::changes`), and for the keys, which their
/// arbitration needs; they wait in the stream meanwhile.
async fn after_snapshot(
    state: RunState,
    snapshot: PullConsumer,
    shared: Arc<Shared>,
    ack_wait: Duration,
    writers: usize,
    stop: CancellationToken,
) {
    let run = shared.run.as_str();
    let mut client: Option<tokio_postgres::Client> = None;
    let mut settled = shared.settled.subscribe();
    let mut landed = LandedCollections::default();
    loop {
        // One look at the run; a server that stopped answering must not hold up a stop.
        let look = async {
            let Ok(Some(manifest)) = state.manifest().await else {
                return Next::Wait { published: false };
            };
            let wait = Next::Wait {
                published: manifest.complete,
            };
            // Each collection's key as soon as its own snapshot has landed.
            if shared.key_after_load && landed.published_untaken(&manifest) {
                if client
                    .as_ref()
                    .is_none_or(tokio_postgres::Client::is_closed)
                {
                    client = pg::connect(&shared.database_url).await.ok();
                }
                if let Some(pg) = client.as_mut() {
                    landed.build(pg, run, &manifest).await;
                }
            }
            // Without --key-after-load, a run that does not follow has nothing to do
            // after its snapshot here: consumers with it build the keys (and
            // `mongo2pg finish` any still waiting), then stop looking.
            if manifest.complete && !manifest.follow && !shared.key_after_load {
                return Next::Return;
            }
            if (manifest.follow || manifest.complete)
                && client
                    .as_ref()
                    .is_none_or(tokio_postgres::Client::is_closed)
            {
                client = pg::connect(&shared.database_url).await.ok();
            }
            let Some(pg) = client.as_mut() else {
                return wait;
            };
            if manifest.follow {
                let checked = done::check(&state, &snapshot, pg, run).await;
                if matches!(checked, Ok(Progress::Following)) && build_keys(pg, run).await {
                    return Next::Follow;
                }
            } else if manifest.complete
                && matches!(
                    done::check(&state, &snapshot, pg, run).await,
                    Ok(Progress::Done)
                )
                && build_keys(pg, run).await
            {
                // Every batch has landed and no key waits: nothing is left to do here
                // (an idle daemon does not ask PostgreSQL every second ever after).
                return Next::Return;
            }
            wait
        };
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = look => next,
        };
        let published = match next {
            Next::Follow => break,
            Next::Return => return,
            Next::Wait { published } => published,
        };
        // While the producer publishes, a settled batch cannot be the run's last: the
        // tick alone, and no request to NATS per settled batch.
        let nudged = published.then_some(&mut settled);
        done::until_next_look(SNAPSHOT_CHECK_EVERY, nudged, &snapshot, &stop).await;
        if stop.is_cancelled() {
            return;
        }
    }
    drop(client);
    let names = &shared.broker.names;
    let bound = patiently("binding the change consumer", || {
        bind_durable(
            &shared.broker,
            names.change_consumer(&shared.run),
            names.run_change_subjects(&shared.run),
            ack_wait,
        )
    })
    .await;
    let consumer = match bound {
        Ok(consumer) => consumer,
        Err(err) => {
            // Without its changes the target falls behind: stop the process loudly.
            tracing::error!(error = %err, "cannot bind the change consumer; stopping");
            stop.cancel();
            return;
        }
    };
    tracing::info!(run = %shared.run, writers, "the snapshot has landed; applying the change stream");
    let mut tasks = JoinSet::new();
    for id in 0..writers {
        let writer = Writer::for_changes(writers + id, shared.clone());
        tasks.spawn(writer.run(consumer.clone(), stop.clone()));
    }
    while let Some(joined) = tasks.join_next().await {
        if joined.is_err() {
            stop.cancel();
        }
    }
}

/// What [`after_snapshot`] does after one look at the run.
enum Next {
    /// Look again after a while; `published` once the producer has published the
    /// whole snapshot, the only time the run's last batch can settle.
    Wait { published: bool },
    /// The snapshot has landed and the keys are built: apply the changes.
    Follow,
    /// Nothing to do after this run's snapshot.
    Return,
}
