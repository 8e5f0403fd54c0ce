//! Everything that stops the producer, each saying what to do about it.

use common::broker::BrokerError;
use common::run_state::StateError;
use source::SourceError;

/// Why a `producer run` stopped. Whatever was acknowledged before is checkpointed:
/// running the same command again resumes.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The metrics address cannot be listened on.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why it could not listen.
        #[source]
        source: std::io::Error,
    },
    /// The mapping file cannot be used.
    #[error(transparent)]
    Mapping(#[from] landing::mapping::MappingError),
    /// The run lands with another mapping than this producer's.
    #[error("run {run:?} lands with the mapping {held}; this producer has {ours}: give it the run's mapping")]
    OtherMapping {
        /// The run.
        run: String,
        /// The run's mapping, described.
        held: String,
        /// This producer's, described.
        ours: String,
    },
    /// MongoDB could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// NATS could not be reached or set up.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The run's state bucket could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A batch kept failing to publish.
    #[error("publishing batch {seq} of {collection:?} failed after retries: {detail}")]
    Publish {
        /// The collection the batch belongs to.
        collection: String,
        /// The batch's sequence number in its collection.
        seq: u64,
        /// What the last try said.
        detail: String,
    },
    /// A document too large for a message could not be stored.
    #[error("a large document of {collection:?}: {source}")]
    Blob {
        /// The collection the document belongs to.
        collection: String,
        /// What the object store said.
        source: common::blob::BlobError,
    },
    /// A checkpoint or range plan in the state bucket does not decode.
    #[error("the checkpoint of {collection:?} is unreadable ({detail}); rerun with --restart")]
    BadCheckpoint {
        /// The collection (or range) the checkpoint is of.
        collection: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The run was published from another database.
    #[error("run {run:?} reads database {was_database:?} at {was_uri}, not {database:?} at {uri}: a run is one source; choose another --run, or --restart to publish the run again from this one")]
    OtherSource {
        /// The run.
        run: String,
        /// The database the run read before.
        was_database: String,
        /// Where it was, without its password.
        was_uri: String,
        /// The database asked for now.
        database: String,
        /// Where it is, without its password.
        uri: String,
    },
    /// Following failed for good (history lost, an unreadable event or token).
    #[error("following the change stream: {detail}")]
    Follow {
        /// What failed.
        detail: String,
    },
    /// Following failed in a way that passes, and kept failing.
    #[error("following the change stream was interrupted and could not go on for minutes: {detail}; run the same command again to resume from the checkpoint")]
    FollowInterrupted {
        /// What the last try said.
        detail: String,
    },
    /// The start position of a followed run could not be taken.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A followed collection was dropped or renamed, or the stream invalidated.
    #[error("the change stream reports {operation:?} of collection {collection:?}: its changes can no longer be followed into the same table. What came before is published and the checkpoint stays before it; re-snapshot the collection under a new --run (see the book, docs/guides/live-migration.md)")]
    StreamEnded {
        /// The collection (`(all)` for the whole stream).
        collection: String,
        /// What ended it.
        operation: String,
    },
    /// `--follow` on a run published without it.
    #[error("run {run:?} was published without --follow: following it now would start after (part of) its snapshot, and the changes made in between would be lost; start a new --run with --follow from the beginning")]
    FollowAddedLater {
        /// The run.
        run: String,
    },
    /// Other collections than those a followed run follows.
    #[error("run {run:?} follows the change stream of other collections: these would be snapshotted and never followed; run with --follow and the run's collections, or start a new --run for these")]
    OtherCollectionsOfFollowedRun {
        /// The run.
        run: String,
    },
    /// `--restart` of a followed run.
    #[error("run {run:?} follows the change stream: its snapshot cannot be published again under the same run (rows landed again after its changes could bring back deleted documents); start a new --run instead")]
    RestartFollowed {
        /// The run.
        run: String,
    },
    /// The run's position fell out of the oplog.
    #[error("history lost: the run's position in the change stream is {behind} s older than the oldest entry of MongoDB's oplog (it holds {window} s), so the changes of {collections} since cannot be followed; re-snapshot them under a new --run with --follow (see the book, docs/guides/live-migration.md), and grow the oplog (replSetResizeOplog)")]
    HistoryLost {
        /// How far behind the oplog's oldest entry the position is, seconds.
        behind: u64,
        /// How much time the oplog holds, seconds.
        window: u32,
        /// The collections whose changes are lost.
        collections: String,
    },
    /// SIGINT or SIGTERM.
    #[error("stopped by a signal; run the same command again to resume")]
    Interrupted,
    /// A reader or checkpoint task panicked or was cancelled.
    #[error("the checkpoint task failed: {0}")]
    Checkpointer(#[source] tokio::task::JoinError),
}

/// Why the start position could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// MongoDB refused the change stream (a standalone server, a missing privilege).
    #[error("cannot open MongoDB's change stream on {database:?}: {detail}; --follow needs a replica set or a sharded cluster (a standalone mongod has no oplog), and a user allowed `changeStream` and `find` on the database")]
    Open {
        /// The database.
        database: String,
        /// What MongoDB said.
        detail: String,
    },
    /// The opened stream gave no position to record.
    #[error("the change stream gave no resume token; cannot record where the run starts")]
    NoToken,
    /// The run was started following other collections.
    #[error("run {run:?} was started following other collections (its change stream pipeline differs); follow the same collections, or choose another --run")]
    OtherPipeline {
        /// The run.
        run: String,
    },
    /// The state bucket could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}
