//! The producer's command-line and environment configuration.

use std::num::NonZeroUsize;

use clap::{Args, Parser, Subcommand};
use common::config::{parse_collection_names, CollectionNames, LogArgs, NatsArgs, RunArgs};
use source::MongoArgs;

/// The command line. Its doc is its `--help` (clap turns doc comments into help text,
/// so the structs below document their flattened parts there, not here).
#[derive(Debug, Parser)]
#[command(
    name = "producer",
    version,
    about = "Pages MongoDB collections by _id into NATS JetStream batches for the consumers to land in PostgreSQL."
)]
#[allow(missing_docs)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

/// The daemon's one command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish every document of the collections as batches, resuming the run if it was
    /// interrupted; exits once the stream has acknowledged every batch (with --follow,
    /// follows the change stream until stopped).
    Run(RunConfig),
}

// Documented by its `--help`: clap makes help text of doc comments.
#[allow(missing_docs)]
#[derive(Debug, Clone, Args)]
pub struct RunConfig {
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub run: RunArgs,

    /// Collection to migrate; repeat for several, or separate them with commas (a comma
    /// in a name is written `\,`). None: every collection of the database.
    #[arg(
        long = "collection",
        env = "MIGRATION_COLLECTIONS",
        value_parser = parse_collection_names
    )]
    pub collections: Vec<CollectionNames>,

    /// Without --collection: take only the collections whose `database.collection`
    /// name this regular expression matches whole (`app\.orders_.*`); repeat for
    /// several.
    #[arg(
        long = "include",
        env = "MIGRATION_INCLUDE",
        conflicts_with = "collections"
    )]
    pub include: Vec<String>,

    /// Without --collection: leave out the collections whose `database.collection`
    /// name this regular expression matches whole (`.*\.tmp_.*`); repeat for several.
    #[arg(
        long = "exclude",
        env = "MIGRATION_EXCLUDE",
        conflicts_with = "collections"
    )]
    pub exclude: Vec<String>,

    /// Serve Prometheus metrics on this address (for example 0.0.0.0:9465), at /metrics.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// The run's mapping file (the consumers'), for its per-collection `filter`s: the
    /// snapshot reads only the documents a filter matches, and a change that moves a
    /// document out of it deletes its rows. Recorded as the run's mapping. None: the
    /// run's recorded mapping, if a consumer recorded one.
    #[arg(long = "mapping", env = "MAPPING_FILE")]
    pub mapping: Option<std::path::PathBuf>,

    /// Most documents in one batch; batches are also cut by bytes: at the NATS
    /// server's max_payload (1 MiB by default), or, packed (--compression lz4), at up
    /// to twice that by how much the last batch shrank, so that it fits once packed
    /// (one that does not after all is cut in two until it does). Each batch is one transaction with a
    /// WAL flush, so fewer, larger batches spare PostgreSQL most of its per-batch cost:
    /// measured on 1,000,000 flat users with 4 consumers, 1,000 per batch took 4.1 s,
    /// 2,000 took 3.0 s, 5,000 took 2.7 s and 10,000 took 2.5 s for twice the producer
    /// memory (docs/performance.md).
    #[arg(long, env = "BATCH_SIZE", default_value = "5000", value_parser = parse_batch_size)]
    pub batch_size: NonZeroUsize,

    /// How batches travel through NATS: `lz4` packs each one (a typed user's batch
    /// to about 40% of its bytes), which spares nats-server much of its CPU and disk
    /// for a little of the producer's; `none` sends plain msgpack, for consumers older
    /// than the packed format.
    #[arg(long, env = "COMPRESSION", value_enum, default_value = "lz4")]
    pub compression: common::compression::Compression,

    /// Change batches a flush cuts one collection's changes into, at most, by a hash of
    /// their `_id` (`--follow`): batches landing at once then seldom change the same
    /// document, whose lock would make one wait for the other's commit. A flush is
    /// cut into one part per 250 changes at most, so a quiet stream keeps whole
    /// batches. About the number of writers of all consumers together; 1 cuts none.
    #[arg(long, env = "CHANGE_PARTITIONS", default_value = "8")]
    pub change_partitions: NonZeroUsize,

    /// Batches published and not yet acknowledged by the stream, at most. Bounds the
    /// producer's memory (each may be up to max_payload) while keeping the link busy:
    /// on loopback 8, 16 and 32 publish equally fast, and 32 let the producer's peak
    /// memory wander by a third between runs of 100,000 and 1,000,000 users, 16 by 12%.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value = "16")]
    pub max_in_flight: NonZeroUsize,

    /// At most this much read from MongoDB per second by this process's snapshot
    /// readers, to leave a production server its capacity: documents (5000), megabytes
    /// (20MB), or both (5000,20MB). Each producer process holds it; the change stream
    /// is never held back.
    #[arg(long, env = "MAX_READ_RATE")]
    pub max_read_rate: Option<crate::throttle::ReadRate>,

    /// Reading tasks per collection in this process. A collection is read in `_id`
    /// ranges (see --range-docs; four per reader at least with several, planned once
    /// per run and shared by every producer of the run through leases), each range
    /// under its own checkpoint; this many tasks of this process read ranges at once.
    #[arg(long, env = "READERS", default_value = "1")]
    pub readers: NonZeroUsize,

    /// Documents per `_id` range (by MongoDB's estimate): a collection is split into
    /// ranges of about this size whatever --readers, so every producer of a run shares
    /// its ranges. With one reader, a collection of at most this many is read in one
    /// pass (no lease: a second producer reaching it at once reads it too, and the
    /// stream drops its batches as duplicates).
    #[arg(long, env = "RANGE_DOCS", default_value = "100000")]
    pub range_docs: std::num::NonZeroU64,

    /// How ranges are planned: `auto` tries a $sample of _ids, then the server's
    /// splitVector (needs its privilege, and walks the whole _id index), then
    /// arithmetic between the smallest and largest _id.
    #[arg(long, env = "PLANNER", value_enum, default_value = "auto")]
    pub planner: source::ranges::Planner,

    /// Collections published at once (each with its --readers).
    #[arg(long, env = "CONCURRENCY", default_value = "1")]
    pub concurrency: NonZeroUsize,

    /// Start the run over: forget its checkpoints and totals and publish everything
    /// again. Batches the consumers already committed are still skipped by their ledger.
    #[arg(long)]
    pub restart: bool,

    /// Live migration: record the change stream's position before the snapshot, then,
    /// once the snapshot is published, follow every change (insert, update, replace,
    /// delete) until stopped (SIGINT/SIGTERM). Needs a replica set or sharded cluster.
    /// `mongo2pg cutover` says when the target has caught up.
    #[arg(long, env = "FOLLOW")]
    pub follow: bool,
}

/// Most documents a batch may be asked to hold: a batch is one NATS message (1 MiB by
/// default), which a million documents of the smallest size already exceed.
const MAX_BATCH_SIZE: usize = 1_000_000;

/// A `--batch-size` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: a batch holds from 1 to {MAX_BATCH_SIZE} documents (it is one NATS message)")]
pub struct BatchSizeError(String);

fn parse_batch_size(text: &str) -> Result<NonZeroUsize, BatchSizeError> {
    text.trim()
        .parse::<NonZeroUsize>()
        .ok()
        .filter(|size| size.get() <= MAX_BATCH_SIZE)
        .ok_or_else(|| BatchSizeError(text.to_string()))
}
