//! The consumer's command-line and environment configuration.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use common::config::{parse_duration, LogArgs, NatsArgs, PostgresArgs, RunArgs};

/// The command line. Its doc is its `--help` (clap turns doc comments into help text,
/// so the structs below document their flattened parts there, not here).
#[derive(Debug, Parser)]
#[command(
    name = "consumer",
    version,
    about = "Lands the batches of a migration run in PostgreSQL with binary COPY, exactly once. Start as many as you like: they share the work."
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
    /// Pull batches and write them until stopped (SIGINT/SIGTERM) or, with
    /// --exit-when-done, until the run is complete.
    Run(ConsumerConfig),
}

// Documented by its `--help`: clap makes help text of doc comments.
#[allow(missing_docs)]
#[derive(Debug, Clone, Args)]
pub struct ConsumerConfig {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub run: RunArgs,

    #[command(flatten)]
    pub postgres: PostgresArgs,

    /// COPY writers in this process, each with its own PostgreSQL connection.
    /// Default: one per available core.
    #[arg(long, env = "WRITERS")]
    pub writers: Option<NonZeroUsize>,

    /// Mapping file (TOML, or YAML if it ends in .yaml or .yml): target table and typed
    /// columns per collection. Collections without a mapping land as
    /// `_id text primary key, doc jsonb`.
    #[arg(long = "mapping", env = "MAPPING_FILE")]
    pub mapping: Option<PathBuf>,

    /// Create new target tables without their primary key and build it, sorted, once
    /// its collection's snapshot has landed (before any change lands): faster COPY and a
    /// tighter key (a fifth to a quarter less time for narrow rows). A document
    /// published twice meanwhile (a --restart with another --batch-size) lands twice
    /// until then, and is kept once when the key is built. Tables with child tables,
    /// and tables that exist, keep their key throughout. `--key-after-load=false`
    /// creates every table with its key, and a document published twice is skipped
    /// as it lands.
    #[arg(
        long,
        env = "KEY_AFTER_LOAD",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub key_after_load: bool,

    /// Exit 0 once every batch the producer recorded for the run is committed or
    /// dead-lettered (waits for the producer to finish, across its restarts).
    #[arg(long, env = "EXIT_WHEN_DONE")]
    pub exit_when_done: bool,

    /// How long the stream waits for an acknowledgement before redelivering a batch to
    /// another consumer. A writer busy with a batch keeps it alive with progress acks.
    #[arg(long, env = "ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub ack_wait: Duration,

    /// How long a writer may take to land one batch. One that takes longer (a
    /// PostgreSQL that stopped answering mid-batch) is given up: its transaction is
    /// never committed, the batch is delivered again (a failed delivery, counted
    /// towards --max-deliver) and the writer connects anew.
    #[arg(long, env = "BATCH_TIMEOUT", default_value = "10m", value_parser = common::config::parse_positive_duration)]
    pub batch_timeout: Duration,

    /// Deliveries after which a batch that keeps failing the same way goes to the
    /// dead-letter table and stream.
    #[arg(long, env = "MAX_DELIVER", default_value = "5")]
    pub max_deliver: NonZeroUsize,

    /// Serve Prometheus metrics on this address (for example 0.0.0.0:9464), at /metrics.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Batches each writer holds ahead of the one it writes. Bounds memory (a batch is
    /// at most the server's max_payload) while hiding the fetch round trip.
    #[arg(long, env = "PREFETCH", default_value = "2")]
    pub prefetch: NonZeroUsize,
}

impl ConsumerConfig {
    /// How many writers to run: `--writers`, or one per available core.
    pub fn writers(&self) -> usize {
        self.writers
            .map(NonZeroUsize::get)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, NonZeroUsize::get))
    }
}
