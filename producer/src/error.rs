//! Everything that stops the producer, each saying what to do about it.

use common::broker::BrokerError;
use common::run_state::StateError;
use source::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("publishing batch {seq} of {collection:?} failed after retries: {detail}")]
    Publish {
        collection: String,
        seq: u64,
        detail: String,
    },
    #[error("a large document of {collection:?}: {source}")]
    Blob {
        collection: String,
        source: common::blob::BlobError,
    },
    #[error("the checkpoint of {collection:?} is unreadable ({detail}); rerun with --restart")]
    BadCheckpoint { collection: String, detail: String },
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
    Start(#[from] StartError),
    #[error("the change stream reports {operation:?} of collection {collection:?}: its changes can no longer be followed into the same table. What came before is published and the checkpoint stays before it; re-snapshot the collection under a new --run (see the book, docs/guides/live-migration.md)")]
    StreamEnded {
        collection: String,
        operation: String,
    },
    #[error("run {run:?} was published without --follow: following it now would start after (part of) its snapshot, and the changes made in between would be lost; start a new --run with --follow from the beginning")]
    FollowAddedLater { run: String },
    #[error("run {run:?} follows the change stream of other collections: these would be snapshotted and never followed; run with --follow and the run's collections, or start a new --run for these")]
    OtherCollectionsOfFollowedRun { run: String },
    #[error("run {run:?} follows the change stream: its snapshot cannot be published again under the same run (rows landed again after its changes could bring back deleted documents); start a new --run instead")]
    RestartFollowed { run: String },
    #[error("history lost: the run's position in the change stream is {behind} s older than the oldest entry of MongoDB's oplog (it holds {window} s), so the changes of {collections} since cannot be followed; re-snapshot them under a new --run with --follow (see the book, docs/guides/live-migration.md), and grow the oplog (replSetResizeOplog)")]
    HistoryLost {
        behind: u64,
        window: u32,
        collections: String,
    },
    #[error("stopped by a signal; run the same command again to resume")]
    Interrupted,
    #[error("the checkpoint task failed: {0}")]
    Checkpointer(#[source] tokio::task::JoinError),
}

/// Why the start position could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open MongoDB's change stream on {database:?}: {detail}; --follow needs a replica set or a sharded cluster (a standalone mongod has no oplog), and a user allowed `changeStream` and `find` on the database")]
    Open { database: String, detail: String },
    #[error("the change stream gave no resume token; cannot record where the run starts")]
    NoToken,
    #[error("run {run:?} was started following other collections (its change stream pipeline differs); follow the same collections, or choose another --run")]
    OtherPipeline { run: String },
    #[error(transparent)]
    State(#[from] StateError),
}
