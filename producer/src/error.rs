//! Everything that stops the producer, each saying what to do about it.

use common::broker::BrokerError;
use common::run_state::StateError;
use landing::pg::{ConnectError, PgError};

use crate::cleanup::CleanupError;
use crate::infer::InferError;
use crate::source::SourceError;
use crate::verify::VerifyError;

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Cleanup(#[from] CleanupError),
    #[error("publishing batch {seq} of {collection:?} failed after retries: {detail}")]
    Publish {
        collection: String,
        seq: u64,
        detail: String,
    },
    #[error("storing a {len}-byte document of {collection:?} in the object store: {detail}")]
    Blob {
        collection: String,
        len: usize,
        detail: String,
    },
    #[error("the checkpoint of {collection:?} is unreadable ({detail}); rerun with --restart")]
    BadCheckpoint { collection: String, detail: String },
    #[error("run {run:?} is unknown on stream {stream:?}: no producer has started it; check --run (MIGRATION_RUN) and --stream (NATS_STREAM)")]
    UnknownRun { run: String, stream: String },
    #[error("run {run:?} reads database {was_database:?} at {was_uri}, not {database:?} at {uri}: a run is one source; choose another --run, or --restart to publish the run again from this one")]
    OtherSource {
        run: String,
        was_database: String,
        was_uri: String,
        database: String,
        uri: String,
    },
    #[error("following the change stream: {detail}")]
    Follow { detail: String },
    #[error("following the change stream was interrupted and could not go on for minutes: {detail}; run the same command again to resume from the checkpoint")]
    FollowInterrupted { detail: String },
    #[error(transparent)]
    Start(#[from] crate::follow::StartError),
    #[error("the change stream reports {operation:?} of collection {collection:?}: its changes can no longer be followed into the same table. What came before is published and the checkpoint stays before it; re-snapshot the collection under a new --run (see the README, \"Live migration\")")]
    StreamEnded {
        collection: String,
        operation: String,
    },
    #[error("run {run:?} does not follow the change stream (it was started without --follow): there is nothing to cut over; `producer status` says whether its snapshot is complete")]
    NotFollowing { run: String },
    #[error("run {run:?}: not caught up within {timeout:?}, still waiting for {waiting_for}; `producer status --run {run}` shows the lag, the consumers' logs why they are slow")]
    NotCaughtUp {
        run: String,
        timeout: std::time::Duration,
        waiting_for: &'static str,
    },
    #[error("run {run:?} was published without --follow: following it now would start after (part of) its snapshot, and the changes made in between would be lost; start a new --run with --follow from the beginning")]
    FollowAddedLater { run: String },
    #[error("run {run:?} follows the change stream of other collections: these would be snapshotted and never followed; run with --follow and the run's collections, or start a new --run for these")]
    OtherCollectionsOfFollowedRun { run: String },
    #[error("run {run:?} is caught up, but PostgreSQL does not hold all of it: {rejects} documents in _migrate_rejects (fix the mapping or the data, then `consumer replay --run {run}`), {dead_letters} batches in _migrate_dead_letters (fix their cause, then `consumer requeue --run {run}`); cut over once both are 0")]
    NotLanded {
        run: String,
        rejects: u64,
        dead_letters: u64,
    },
    #[error("run {run:?} is caught up, but the database has collections it lacks: {advice}")]
    NotInRun { run: String, advice: String },
    #[error("run {run:?} follows the change stream: its snapshot cannot be published again under the same run (rows landed again after its changes could bring back deleted documents); start a new --run instead")]
    RestartFollowed { run: String },
    #[error("history lost: the run's position in the change stream is {behind} s older than the oldest entry of MongoDB's oplog (it holds {window} s), so the changes of {collections} since cannot be followed; re-snapshot them under a new --run with --follow (see the README, \"Live migration\"), and grow the oplog (replSetResizeOplog)")]
    HistoryLost {
        behind: u64,
        window: u32,
        collections: String,
    },
    #[error("stopped by a signal; run the same command again to resume")]
    Interrupted,
    #[error(transparent)]
    PgConnect(#[from] ConnectError),
    #[error("status: {0}")]
    Status(PgError),
    #[error("the checkpoint task failed: {0}")]
    Checkpointer(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("seeding {collection:?}: {detail}")]
    Seed { collection: String, detail: String },
}
