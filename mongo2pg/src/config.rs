//! The operator's command line: every command a person runs against a migration.
//!
//! Documented by its `--help` (and docs/reference/cli.md, generated from it): clap
//! turns doc comments into help text, so the structs and their flattened parts carry
//! none of their own.
#![allow(missing_docs)]

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use common::config::{
    parse_collection_names, CollectionNames, LogArgs, NatsArgs, PostgresArgs, RunArgs,
};
use source::MongoArgs;

#[derive(Debug, Parser)]
#[command(
    name = "mongo2pg",
    version,
    about = "Runs, watches and finishes a MongoDB to PostgreSQL migration: the commands a person runs around the producer and consumer daemons."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show where a run stands: per collection, documents in the source, published,
    /// committed, rejected and dead-lettered, and what is pending in the stream.
    /// Exit status: 0 complete, 3 incomplete, 4 inconsistent or left unfinished by
    /// `finish` (an index failed, a foreign key with orphans), 5 landed with rejects.
    Status(StatusConfig),
    /// For a run following the change stream (`producer run --follow`): wait until
    /// PostgreSQL holds every change MongoDB had committed when this command started,
    /// then print the lag seen. The moment to switch the application over.
    /// Exit status: 0 caught up, 4 not within --timeout or not all landed.
    Cutover(CutoverConfig),
    /// Compare the target with the source, per `_id` range (count and content
    /// fingerprint) and for random documents column by column; print the first
    /// differences. Exit status: 0 equal, 4 differences, 5 equal but rejects wait.
    /// --repair lands the differing documents again.
    Verify(VerifyConfig),
    /// Sample collections and write a mapping file and CREATE TABLE statements for
    /// review, printing each field path with the types seen and how often.
    Infer(InferConfig),
    /// After the load: build MongoDB's indexes (translated through the mapping,
    /// CONCURRENTLY, --jobs at once) and the mapping's references as foreign keys
    /// (NOT VALID, then validated when no orphan is found); report what has no
    /// counterpart. Exit status: 0 all built and valid, 4 an index failed or orphans
    /// keep a foreign key not valid.
    Finish(FinishConfig),
    /// Print the CREATE SCHEMA and CREATE TABLE statements of a mapping file's tables
    /// (after editing what `infer` proposed, say).
    Schema(SchemaConfig),
    /// Land a run's rejects again with the (fixed) mapping; what lands leaves the
    /// rejects table, what still cannot land stays with its new reason.
    /// Exit status: 0 all landed, 3 some still rejected.
    Replay(ReplayConfig),
    /// Publish a run's dead letters back onto the stream once their cause is fixed;
    /// consumers of the run land them (or dead-letter them again with the new reason).
    Requeue(RequeueConfig),
    /// Remove what a complete run left on NATS: its batches, durable consumer,
    /// dead-letter copies, state entries and blobs (and the stream and buckets when no
    /// other run uses them). Refuses while `status` is not complete or consumers are
    /// still bound, unless --force. The target database keeps its ledger.
    Cleanup(CleanupConfig),
    /// Insert generated user documents into MongoDB, for demos and benchmarks.
    Seed(SeedConfig),
}

impl Command {
    /// The target database's settings, for the commands that use it.
    pub fn postgres(&self) -> Option<&PostgresArgs> {
        match self {
            Command::Status(c) => Some(&c.postgres),
            Command::Cleanup(c) => Some(&c.status.postgres),
            Command::Cutover(c) => Some(&c.postgres),
            Command::Verify(c) => Some(&c.postgres),
            Command::Replay(c) => Some(&c.postgres),
            Command::Requeue(c) => Some(&c.postgres),
            Command::Finish(c) => Some(&c.postgres),
            Command::Infer(_) | Command::Schema(_) | Command::Seed(_) => None,
        }
    }
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

    /// Read the status again every INTERVAL (2s when none is given) and show it with
    /// the rates since the reading before, until Ctrl-C; the exit status is the last
    /// reading's.
    #[arg(
        long,
        value_name = "INTERVAL",
        num_args = 0..=1,
        default_missing_value = "2s",
        value_parser = common::config::parse_duration
    )]
    pub watch: Option<std::time::Duration>,
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

    /// Once caught up, do not run `finish` (indexes and foreign keys); run it later.
    #[arg(long)]
    pub no_finish: bool,

    /// Tables whose indexes `finish` builds at once.
    #[arg(long, default_value = "2")]
    pub jobs: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// Users with a date, an address subdocument, a tags array and a Decimal128 balance.
    Users,
    /// Users of three fields (username, email, age), to compare with simple scripts.
    Flat,
    /// Orders with a user reference, a date, a status and 1 to 5 lines of a product
    /// reference, a quantity and a Decimal128 price: typed child tables' benchmark.
    Orders,
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

    /// The PostgreSQL schema the tables land in; the database's name (snake_case)
    /// when absent, the search path's first (public) when empty.
    #[arg(long)]
    pub schema: Option<String>,

    /// Subdocuments nested deeper than this stay jsonb instead of becoming columns.
    #[arg(long, default_value = "2")]
    pub flatten_depth: usize,

    /// Subdocuments with more fields than this stay jsonb instead of becoming columns.
    #[arg(long, default_value = "20")]
    pub flatten_width: usize,

    /// Where to write the mapping file.
    #[arg(long, default_value = "mapping.toml")]
    pub out: PathBuf,

    /// Where to write the CREATE TABLE statements.
    #[arg(long, default_value = "schema.sql")]
    pub sql: PathBuf,

    /// Overwrite --out and --sql when they exist; without it a differing proposal is
    /// written next to them as <file>.new.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FinishConfig {
    #[command(flatten)]
    pub mongo: MongoArgs,

    #[command(flatten)]
    pub postgres: PostgresArgs,

    /// Where the run's mapping is recorded.
    #[command(flatten)]
    pub nats: NatsArgs,

    #[command(flatten)]
    pub run: RunArgs,

    /// The mapping the run landed with (where each indexed path is, which columns
    /// are references). None: the run's, as its first consumer recorded it.
    #[arg(long = "mapping", env = "MAPPING_FILE")]
    pub mapping: Option<PathBuf>,

    /// Print the statements instead of running them.
    #[arg(long)]
    pub plan: bool,

    /// Tables whose indexes are built at once, each on a connection of its own (a
    /// table's indexes one after another: two concurrent builds on one table deadlock).
    #[arg(long, default_value = "2")]
    pub jobs: usize,
}

#[derive(Debug, Clone, Args)]
pub struct SchemaConfig {
    /// The mapping file whose tables to print the DDL of.
    #[arg(long = "mapping", env = "MAPPING_FILE")]
    pub mapping: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MultiType {
    Widest,
    Jsonb,
    Reject,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayConfig {
    #[command(flatten)]
    pub run: RunArgs,

    /// Where rejects of transformed collections are read again: they keep their
    /// transformed fields out, so the document comes from MongoDB.
    #[command(flatten)]
    pub mongo: MongoArgs,

    #[command(flatten)]
    pub postgres: PostgresArgs,

    /// Where the run's mapping is recorded.
    #[command(flatten)]
    pub nats: NatsArgs,

    /// The fixed mapping file; it becomes the run's. None: the run's recorded mapping.
    #[arg(long = "mapping", env = "MAPPING_FILE")]
    pub mapping: Option<PathBuf>,

    /// Replay only this collection's rejects.
    #[arg(long)]
    pub collection: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RequeueConfig {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub run: RunArgs,

    /// Where dead letters of transformed collections are read again: they keep their
    /// transformed fields out, so their documents come from MongoDB.
    #[command(flatten)]
    pub mongo: MongoArgs,

    #[command(flatten)]
    pub postgres: PostgresArgs,

    /// Requeue only this collection's dead letters.
    #[arg(long)]
    pub collection: Option<String>,
}
