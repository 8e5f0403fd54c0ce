//! `mongo2pg cutover --run R`: waits until PostgreSQL holds every change MongoDB had
//! committed when the command started, the moment to switch the application over.
//!
//! Caught up means, in this order:
//! 1. the producer's stream checkpoint has read MongoDB's history past the cluster
//!    time taken at the start (`hello`'s `operationTime`), so every change up to it is
//!    published and acknowledged by the stream;
//! 2. the snapshot's durable consumer has nothing left (nothing undelivered, nothing
//!    delivered but unacknowledged), and the changes' durable consumer has
//!    acknowledged every message the stream held once step 1 was seen: its ack floor
//!    (every message up to it acknowledged) has reached the stream's last sequence
//!    read then, or it has nothing left at all. A consumer acknowledges a batch only
//!    once it is committed (or dead-lettered).
//!
//! Why the ack floor: under a steady stream of writes the changes' consumer always has
//! a batch in flight, so "nothing left" may never be seen by a poll; the batches that
//! hold the changes up to the start were all published (and acknowledged by the
//! stream) before the checkpoint moved past it, so they lie at or below that sequence,
//! and later batches do not matter.
//!
//! Caught up is not yet a go: the verdict also requires that no document of the run
//! waits in `_migrate_rejects` and no batch in the dead letters, since PostgreSQL does
//! not hold those ([`OperatorError::NotLanded`], exit 4, naming the commands that land
//! them).

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use common::broker::Broker;
use common::run_state::{ClusterTime, CutOver, RunState};

use crate::config::CutoverConfig;
use crate::error::OperatorError;

/// How often the state is read while waiting: a checkpoint read and two consumer
/// infos from NATS, cheap enough to poll often, and a cutover returns at most this long
/// after it has caught up.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// What the cutover saw.
#[derive(Debug, Clone)]
pub struct Cutover {
    /// The run cut over.
    pub run: String,
    /// MongoDB's cluster time when the command started.
    pub target: ClusterTime,
    /// How far behind that time the producer's checkpoint was at the start, seconds.
    pub lag_at_start: u32,
    /// How long catching up took.
    pub waited: Duration,
    /// What `finish` built, unless `--no-finish`.
    pub finished: Option<crate::finish::Finished>,
}

impl Cutover {
    /// 0 caught up and finished; 4 when `finish` left something to fix.
    pub fn exit_status(&self) -> crate::error::ExitStatus {
        self.finished
            .as_ref()
            .map_or(crate::error::ExitStatus::SUCCESS, |f| f.exit_status())
    }
}

impl std::fmt::Display for Cutover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "run {}: PostgreSQL holds every change MongoDB had committed when cutover started (cluster time {}.{}); the change stream was {} s behind, caught up in {:.2} s. Switch the application over now; stop the producer and consumers once it writes elsewhere.",
            self.run,
            self.target.time,
            self.target.increment,
            self.lag_at_start,
            self.waited.as_secs_f64()
        )?;
        match &self.finished {
            Some(finished) => write!(f, "{finished}"),
            None => writeln!(f, "finish not run (--no-finish): run `mongo2pg finish` for the indexes and foreign keys"),
        }
    }
}

/// Waits for the target to catch up with MongoDB as of now.
///
/// # Errors
/// [`OperatorError::NotCaughtUp`] after `--timeout` (exit status 4), or when a server
/// cannot be reached or the run does not follow.
pub async fn cutover(config: &CutoverConfig) -> Result<Cutover, OperatorError> {
    let started = Instant::now();
    let database = source::connect(&config.mongo).await?;
    let target = source::clock::cluster_time(database.home()).await?;
    let broker = Broker::open(&config.nats, config.nats.stream.clone()).await?;
    let run = config.run.run.clone();
    let state = RunState::new(broker.state.clone(), broker.names.clone(), run.clone());
    let unknown = || OperatorError::UnknownRun {
        run: run.to_string(),
        stream: broker.names.stream().to_string(),
    };
    let manifest = state.manifest().await?.ok_or_else(unknown)?;
    if !manifest.follow {
        return Err(OperatorError::NotFollowing {
            run: run.to_string(),
        });
    }
    let mut lag_at_start = None;
    let mut waiting_for = "the producer to read the change stream up to now";
    // The stream's last sequence once the checkpoint was seen past the start.
    let mut published_by: Option<u64> = None;
    while started.elapsed() < config.timeout {
        let checkpoint = state.stream_checkpoint().await?;
        let read_until = checkpoint.map(|c| c.read_until);
        if lag_at_start.is_none() {
            lag_at_start = Some(
                target.time.saturating_sub(
                    read_until.map_or(0, |t| t.time).max(
                        state
                            .start()
                            .await?
                            .map_or(target.time, |s| s.cluster_time.time),
                    ),
                ),
            );
        }
        if read_until.is_some_and(|t| t >= target) {
            waiting_for = "the consumers to land every batch";
            if published_by.is_none() {
                published_by = last_sequence(&broker).await;
            }
            let snapshot = durable(&broker, broker.names.durable_consumer(&run)).await;
            let changes = durable(&broker, broker.names.change_consumer(&run)).await;
            if let (Some(snapshot), Some(changes), Some(published_by)) =
                (snapshot, changes, published_by)
            {
                if caught_up(&snapshot, None).await && caught_up(&changes, Some(published_by)).await
                {
                    let (rejects, dead_letters) = {
                        let pg = landing::pg::connect(&config.postgres.database_url).await?;
                        crate::status::not_landed(&pg, run.as_str()).await?
                    };
                    if rejects + dead_letters > 0 {
                        return Err(OperatorError::NotLanded {
                            run: run.to_string(),
                            rejects,
                            dead_letters,
                        });
                    }
                    let lacking = source::not_in_run(&database, &manifest).await?;
                    if !lacking.is_empty() {
                        return Err(OperatorError::NotInRun {
                            run: run.to_string(),
                            advice: crate::status::live::not_in_run_advice(&lacking),
                        });
                    }
                    let cut_over = CutOver {
                        at_ms: common::crash::now_ms(),
                        cluster_time: target,
                    };
                    state
                        .update_manifest(|manifest| manifest.cut_over = Some(cut_over))
                        .await?;
                    let waited = started.elapsed();
                    let finished = if config.no_finish {
                        None
                    } else {
                        let file = match state.mapping().await? {
                            Some(held) => landing::mapping::MappingFile::parse(&held)?,
                            None => landing::mapping::MappingFile::default(),
                        };
                        Some(
                            crate::finish::finish_with(
                                &file,
                                &manifest.present(),
                                &database,
                                &config.postgres.database_url,
                                run.as_str(),
                                config.jobs,
                                false,
                            )
                            .await?,
                        )
                    };
                    return Ok(Cutover {
                        run: run.to_string(),
                        target,
                        lag_at_start: lag_at_start.unwrap_or(0),
                        waited,
                        finished,
                    });
                }
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    Err(OperatorError::NotCaughtUp {
        run: run.to_string(),
        timeout: config.timeout,
        waiting_for,
    })
}

async fn durable(broker: &Broker, name: String) -> Option<PullConsumer> {
    let stream = broker
        .jetstream
        .get_stream(broker.names.stream())
        .await
        .ok()?;
    stream.get_consumer(&name).await.ok()
}

/// The stream's last sequence now.
async fn last_sequence(broker: &Broker) -> Option<u64> {
    let mut stream = broker
        .jetstream
        .get_stream(broker.names.stream())
        .await
        .ok()?;
    stream
        .info()
        .await
        .ok()
        .map(|info| info.state.last_sequence)
}

/// Whether a durable consumer has nothing undelivered and nothing unacknowledged or,
/// given `up_to`, has acknowledged every message of its subjects up to that stream
/// sequence (its ack floor is there; the floor stays on its own last message when later
/// ones are of other subjects, so nothing left at all counts too).
async fn caught_up(consumer: &PullConsumer, up_to: Option<u64>) -> bool {
    let mut consumer = consumer.clone();
    match consumer.info().await {
        Ok(info) => {
            (info.num_pending == 0 && info.num_ack_pending == 0)
                || up_to.is_some_and(|last| info.ack_floor.stream_sequence >= last)
        }
        Err(_) => false,
    }
}
