//! The producer's command-line and environment configuration.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use common::config::{LogArgs, NatsArgs, PostgresArgs, RunArgs};

#[derive(Debug, Parser)]
#[command(
    name = "producer",
    version,
    about = "Pages MongoDB collections by _id into NATS JetStream batches for the consumers to land in PostgreSQL."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish every document of the collections as batches, resuming the run if it was
    /// interrupted; exits once the stream has acknowledged every batch.
    Run(RunConfig),
    /// Insert generated user documents, for demos and benchmarks.
    Seed(SeedConfig),
    /// Show where a run stands: per collection, documents in the source, published,
    /// committed, rejected and dead-lettered, and what is pending in the stream.
    /// Exit status: 0 complete, 3 incomplete, 4 inconsistent.
    Status(StatusConfig),
    /// Remove what a complete run left on NATS: its batches, durable consumer,
    /// dead-letter copies, state entries and blobs (and the stream and buckets when no
    /// other run uses them). Refuses while `status` is not complete or consumers are
    /// still bound, unless --force. The target database keeps its ledger.
    Cleanup(CleanupConfig),
    /// For a run following the change stream (`run --follow`): wait until PostgreSQL
    /// holds every change MongoDB had committed when this command started, then print
    /// the lag seen. The moment to switch the application over.
    /// Exit status: 0 caught up, 4 not within --timeout.
    Cutover(CutoverConfig),
    /// Compare the target with the source, per `_id` range (count and content
    /// fingerprint) and for random documents column by column; print the first
    /// differences. Exit status: 0 equal, 4 differences. --repair lands the differing
    /// documents again.
    Verify(VerifyConfig),
    /// Sample collections and write a mapping file and CREATE TABLE statements for
    /// review, printing each field path with the types seen and how often.
    Infer(InferConfig),
}

#[derive(Debug, Clone, Args)]
pub struct StatusConfig {
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub postgres: PostgresArgs,

    /// Count the source's documents (a scan of each collection) instead of reading
    /// MongoDB's metadata count, which is instant but an estimate.
    #[arg(long)]
    pub exact: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CleanupConfig {
    /// What `status` needs to say whether the run is complete.
    #[command(flatten)]
    pub status: StatusConfig,

    /// Clean up even an incomplete run, or one consumers are still bound to: its
    /// batches not yet landed are deleted with the rest.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CutoverConfig {
    #[command(flatten)]
    pub mongo: MongoArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub postgres: PostgresArgs,
    #[command(flatten)]
    pub run: RunArgs,

    /// How long to wait for the target to catch up.
    #[arg(long, default_value = "10m", value_parser = common::config::parse_duration)]
    pub timeout: std::time::Duration,
}

/// Where MongoDB is.
#[derive(Debug, Clone, Args)]
pub struct MongoArgs {
    /// MongoDB connection string (credentials are never logged).
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:27017",
        hide_env_values = true
    )]
    pub mongodb_uri: String,

    /// Database to read.
    #[arg(long, env = "MONGODB_DATABASE", default_value = "app")]
    pub mongodb_database: String,
}

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

    /// Most documents in one batch; batches are also cut at the NATS server's
    /// max_payload in bytes (1 MiB by default). Each batch is one transaction with a
    /// WAL flush, so fewer, larger batches spare PostgreSQL most of its per-batch cost:
    /// measured on 1,000,000 flat users with 4 consumers, 1,000 per batch took 4.1 s,
    /// 2,000 took 3.0 s, 5,000 took 2.7 s and 10,000 took 2.5 s for twice the producer
    /// memory (docs/performance.md).
    #[arg(long, env = "BATCH_SIZE", default_value = "5000", value_parser = parse_batch_size)]
    pub batch_size: NonZeroUsize,

    /// Batches published and not yet acknowledged by the stream, at most. Bounds the
    /// producer's memory (each may be up to max_payload) while keeping the link busy:
    /// on loopback 8, 16 and 32 publish equally fast, and 32 let the producer's peak
    /// memory wander by a third between runs of 100,000 and 1,000,000 users, 16 by 12%.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value = "16")]
    pub max_in_flight: NonZeroUsize,

    /// Readers per collection: above 1, the collection is split into `_id` ranges (a
    /// few per reader, planned from a `$sample` of `_id`s and recorded once per run)
    /// that this many tasks read and publish at once, each range with its own
    /// checkpoint.
    #[arg(long, env = "READERS", default_value = "1")]
    pub readers: NonZeroUsize,

    /// How ranges are planned with --readers above 1: `auto` tries the server's
    /// splitVector (needs its privilege), then a $sample of _ids, then arithmetic
    /// between the smallest and largest _id.
    #[arg(long, env = "PLANNER", value_enum, default_value = "auto")]
    pub planner: crate::ranges::Planner,

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
    /// `producer cutover` says when the target has caught up.
    #[arg(long, env = "FOLLOW")]
    pub follow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// Users with a date, an address subdocument, a tags array and a Decimal128 balance.
    Users,
    /// Users of three fields (username, email, age), to compare with simple scripts.
    Flat,
}

#[derive(Debug, Clone, Args)]
pub struct SeedConfig {
    #[command(flatten)]
    pub mongo: MongoArgs,

    /// How many documents to insert.
    #[arg(long, default_value = "100000")]
    pub count: u64,

    /// Collection to fill.
    #[arg(long, default_value = "users")]
    pub collection: String,

    /// What the documents look like.
    #[arg(long, value_enum, default_value = "users")]
    pub shape: Shape,

    /// Drop the collection first.
    #[arg(long)]
    pub drop: bool,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyConfig {
    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub mongo: MongoArgs,

    #[command(flatten)]
    pub postgres: PostgresArgs,

    /// Where the run's mapping is recorded.
    #[command(flatten)]
    pub nats: NatsArgs,

    /// The mapping the consumers used. None: the run's, as its first consumer recorded
    /// it on NATS (the default `_id` + `doc` tables when it recorded none).
    #[arg(long = "mapping", env = "MAPPING_FILE")]
    pub mapping: Option<PathBuf>,

    /// Collection to verify; repeat for several, or separate them with commas (a comma
    /// in a name is written `\,`). None: every collection.
    #[arg(long = "collection", value_parser = parse_collection_names)]
    pub collections: Vec<CollectionNames>,

    /// Documents per `_id` range.
    #[arg(long, default_value = "10000")]
    pub range_size: NonZeroUsize,

    /// Random documents compared column by column, per collection.
    #[arg(long, default_value = "100")]
    pub sample: u32,

    /// Differences printed, per collection.
    #[arg(long, default_value = "10")]
    pub show: usize,

    /// Land again the documents of the ranges that differ, then check those ranges.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Clone, Args)]
pub struct InferConfig {
    #[command(flatten)]
    pub mongo: MongoArgs,

    /// Collection to sample; repeat for several, or separate them with commas (a comma
    /// in a name is written `\,`). None: every collection.
    #[arg(long = "collection", value_parser = parse_collection_names)]
    pub collections: Vec<CollectionNames>,

    /// Documents sampled per collection, spread over it.
    #[arg(long, default_value = "5000")]
    pub sample: u32,

    /// What a field seen with several types becomes.
    #[arg(long, value_enum, default_value = "widest")]
    pub multi_type: MultiType,

    /// Where to write the mapping file.
    #[arg(long, default_value = "mapping.toml")]
    pub out: PathBuf,

    /// Where to write the CREATE TABLE statements.
    #[arg(long, default_value = "schema.sql")]
    pub sql: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MultiType {
    Widest,
    Jsonb,
    Reject,
}

/// Most documents a batch may be asked to hold: a batch is one NATS message (1 MiB by
/// default), which a million documents of the smallest size already exceed.
const MAX_BATCH_SIZE: usize = 1_000_000;

/// A `--batch-size` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: a batch holds from 1 to {MAX_BATCH_SIZE} documents (it is one NATS message)")]
pub struct BatchSizeError(String);

/// The collection names of one `--collection`: separated by commas, a comma inside a
/// name written `\,` and a backslash `\\` (MongoDB allows both in names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionNames(pub Vec<String>);

fn parse_collection_names(text: &str) -> Result<CollectionNames, std::convert::Infallible> {
    let mut names = Vec::new();
    let mut name = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => name.push(escaped),
                None => name.push('\\'),
            },
            ',' => names.push(std::mem::take(&mut name)),
            c => name.push(c),
        }
    }
    names.push(name);
    names.retain(|n| !n.is_empty());
    Ok(CollectionNames(names))
}

/// Every name of every `--collection`, in order.
pub fn collection_names(given: &[CollectionNames]) -> Vec<String> {
    given
        .iter()
        .flat_map(|names| names.0.iter().cloned())
        .collect()
}

fn parse_batch_size(text: &str) -> Result<NonZeroUsize, BatchSizeError> {
    text.trim()
        .parse::<NonZeroUsize>()
        .ok()
        .filter(|size| size.get() <= MAX_BATCH_SIZE)
        .ok_or_else(|| BatchSizeError(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_split_on_commas_but_escaped_ones() {
        let names = |text: &str| parse_collection_names(text).map(|n| n.0);
        assert_eq!(
            names("users,orders"),
            Ok(vec!["users".into(), "orders".into()])
        );
        assert_eq!(names(r"a\,b,c"), Ok(vec!["a,b".into(), "c".into()]));
        assert_eq!(names(r"back\\slash"), Ok(vec![r"back\slash".into()]));
        assert_eq!(names("users,"), Ok(vec!["users".into()]));
    }
}
