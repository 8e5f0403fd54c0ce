//! The live part of `mongo2pg status` for a run that follows the change stream: its
//! phase, how far behind MongoDB it is, and how long before its position falls out of
//! the oplog.

use common::broker::Broker;
use common::naming::{bookkeeping_table, RunName, LEDGER_TABLE};
use common::run_state::{CutOver, RunManifest, RunState};

use crate::error::OperatorError;

/// Where a followed run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The snapshot is being published; changes wait in MongoDB's oplog.
    Snapshot,
    /// The snapshot is published; changes are being streamed.
    Streaming,
}

/// Where a followed run stands in the change stream.
#[derive(Debug, Clone)]
pub struct LiveStatus {
    /// Snapshot or streaming.
    pub phase: Phase,
    /// Seconds between MongoDB's cluster time now and how far the producer has read.
    pub lag_seconds: u32,
    /// Change events published and not yet landed (an estimate after a producer
    /// restart, which may publish some events twice).
    pub lag_events: u64,
    /// Change events the producer has published since the run started.
    pub events_published: u64,
    /// Change batches in the stream: waiting, and being written.
    pub pending: Option<(u64, u64)>,
    /// Seconds of history the oplog holds, and how many of them lie before the run's
    /// position (what is left before the position falls out of it). `None` when the
    /// oplog cannot be read (no access to the `local` database).
    pub oplog: Option<(u32, i64)>,
    /// The collections the run follows, for the message when history is lost.
    pub collections: Vec<String>,
    /// The producer holding the follower lease, if its lease is live.
    pub follower: Option<String>,
    /// The last `mongo2pg cutover` that said go.
    pub cut_over: Option<CutOver>,
    /// Collections created since a run of the whole database started: not in it.
    pub not_in_run: Vec<String>,
}

impl LiveStatus {
    /// Whether the run's position has fallen out of the oplog: the changes since are
    /// lost to it and the target can no longer be brought up to date.
    pub fn history_lost(&self) -> bool {
        self.oplog.is_some_and(|(_, headroom)| headroom < 0)
    }
}

impl std::fmt::Display for LiveStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match self.phase {
            Phase::Snapshot => "snapshot (changes since the start position wait in the oplog)",
            Phase::Streaming => "streaming",
        };
        if let Some(cut_over) = self.cut_over {
            let at = bson::DateTime::from_millis(cut_over.at_ms as i64)
                .try_to_rfc3339_string()
                .unwrap_or_else(|_| format!("{} ms", cut_over.at_ms));
            match &self.follower {
                None => writeln!(
                    f,
                    "phase: cut over at {at} (cluster time {}.{}); producer stopped: changes MongoDB took after that are not followed",
                    cut_over.cluster_time.time, cut_over.cluster_time.increment
                )?,
                Some(holder) => writeln!(
                    f,
                    "cut over at {at} (cluster time {}.{}); still followed by {holder}: stop it once the application writes to PostgreSQL",
                    cut_over.cluster_time.time, cut_over.cluster_time.increment
                )?,
            }
            if self.follower.is_none() {
                if let Some((window, headroom)) = self.oplog.filter(|_| self.history_lost()) {
                    writeln!(
                        f,
                        "error: history lost: the run's position is {} s older than the oldest oplog entry (the oplog holds {window} s); the changes of {} after the cutover cannot be followed. If they are needed, start a new run with --follow for these collections",
                        -headroom,
                        self.collections.join(", ")
                    )?;
                }
                return Ok(());
            }
        }
        if !self.not_in_run.is_empty() {
            writeln!(f, "error: {}", not_in_run_advice(&self.not_in_run))?;
        }
        writeln!(f, "phase: {phase}")?;
        match (&self.follower, self.phase) {
            (Some(holder), _) => writeln!(f, "change stream followed by {holder}")?,
            (None, Phase::Streaming) => writeln!(
                f,
                "no producer follows the change stream now, so changes wait in the oplog uncounted: run `producer run --follow` with this --run to go on"
            )?,
            (None, Phase::Snapshot) => {}
        }
        writeln!(
            f,
            "change stream: {} events published; lag {} s behind MongoDB, {} events not yet landed",
            self.events_published, self.lag_seconds, self.lag_events
        )?;
        if let Some((waiting, unacked)) = self.pending {
            writeln!(
                f,
                "change batches in the stream: {waiting} waiting, {unacked} being written"
            )?;
        }
        match self.oplog {
            Some((window, headroom)) if headroom < 0 => writeln!(
                f,
                "error: history lost: the run's position is {} s older than the oldest oplog entry (the oplog holds {window} s); the changes of {} since cannot be followed. Re-snapshot: start a new run with --follow for these collections (see the book, docs/guides/live-migration.md)",
                -headroom,
                self.collections.join(", ")
            )?,
            Some((window, headroom)) => {
                writeln!(
                    f,
                    "oplog headroom: {} before the run's position falls out of the oplog (it holds {})",
                    human(headroom as u64),
                    human(u64::from(window))
                )?;
                if (headroom as u64) < source::clock::SHORT_HEADROOM.as_secs() {
                    writeln!(f, "warning: oplog headroom is short: let the producer catch up, or grow the oplog (replSetResizeOplog)")?;
                }
            }
            None => writeln!(
                f,
                "oplog headroom: unknown (reading local.oplog.rs needs the clusterMonitor role or read on `local`)"
            )?,
        }
        Ok(())
    }
}

/// What to say of collections created since a run of the whole database started.
pub fn not_in_run_advice(collections: &[String]) -> String {
    format!(
        "created since the run started, not in it (neither snapshotted nor followed): {}; migrate them with a run of their own (`producer run --run <new> --follow --collection <name>`)",
        collections.join(", ")
    )
}

fn human(seconds: u64) -> String {
    if seconds >= 7200 {
        format!("{:.1} h", seconds as f64 / 3600.0)
    } else if seconds >= 120 {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
}

/// Reads the live status of a followed run.
pub async fn live(
    database: &source::Source,
    broker: &Broker,
    state: &RunState,
    pg: &tokio_postgres::Client,
    run: &RunName,
    manifest: &RunManifest,
) -> Result<LiveStatus, OperatorError> {
    let now = source::clock::cluster_time(database.home()).await?;
    let checkpoint = state.stream_checkpoint().await?;
    let start = state.start().await?;
    let position = checkpoint
        .as_ref()
        .map(|c| c.read_until)
        .or(start.map(|s| s.cluster_time))
        .unwrap_or(now);
    let phase = if manifest.complete && checkpoint.is_some() {
        Phase::Streaming
    } else {
        Phase::Snapshot
    };
    let events_published = checkpoint.as_ref().map_or(0, |c| c.events);
    let landed: i64 = match pg
        .query_one(
            &format!(
                "SELECT coalesce(sum(events), 0)::int8 FROM {} WHERE run = $1 AND kind = 'changes'",
                bookkeeping_table(LEDGER_TABLE)
            ),
            &[&run.as_str()],
        )
        .await
    {
        Ok(row) => row.try_get(0).unwrap_or(0),
        Err(_) => 0,
    };
    let mut pending = None;
    if let Ok(stream) = broker.jetstream.get_stream(broker.names.stream()).await {
        if let Ok(info) = stream
            .consumer_info(broker.names.change_consumer(run))
            .await
        {
            pending = Some((info.num_pending, info.num_ack_pending as u64));
        }
    }
    let follower = state
        .range_lease(common::naming::FOLLOWER, 0)
        .await?
        .filter(|lease| lease.expires_ms > common::crash::now_ms())
        .map(|lease| lease.holder);
    Ok(LiveStatus {
        follower,
        cut_over: manifest.cut_over,
        phase,
        lag_seconds: now.time.saturating_sub(position.time),
        lag_events: events_published.saturating_sub(landed.max(0) as u64),
        events_published,
        pending,
        oplog: source::clock::oplog_window(database.home(), now, position).await,
        collections: manifest.collections.keys().cloned().collect(),
        not_in_run: source::not_in_run(database, manifest).await?,
    })
}
