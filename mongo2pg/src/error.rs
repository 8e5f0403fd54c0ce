//! What the operator's commands share of their failures, and the exit status a
//! verdict gives. A leaf: it names the libraries' errors, never a command module.
//!
//! `verify` and `infer` raise their own errors (`VerifyError`, `InferError`), next to
//! the code that raises them.

use common::broker::BrokerError;
use common::naming::RunName;
use common::run_state::StateError;
use landing::added_columns::RegistryError;
use landing::mapping::MappingError;
use landing::pg::{ConnectError, PgError};
use landing::table_check::TableError;
use source::SourceError;

/// The exit status of a command: 0 success, and per command the verdicts its help
/// names (3 incomplete, 4 inconsistent or different, 5 landed with rejects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus(pub u8);

impl ExitStatus {
    /// Done, and everything is as it should be.
    pub const SUCCESS: ExitStatus = ExitStatus(0);
    /// Not finished yet (or stopped before the end); some rejects still rejected.
    pub const INCOMPLETE: ExitStatus = ExitStatus(3);
    /// Counts or contents that differ, or a cutover that is not a go.
    pub const DIFFERENT: ExitStatus = ExitStatus(4);
    /// Every document accounted for, some waiting in `_migrate_rejects`.
    pub const REJECTED: ExitStatus = ExitStatus(5);
}

/// Why an operator command failed, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// MongoDB could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// NATS could not be reached or set up.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The run's state bucket could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// PostgreSQL could not be reached or refused the login.
    #[error(transparent)]
    PgConnect(#[from] ConnectError),
    /// A PostgreSQL statement failed.
    #[error("{0}")]
    Pg(#[from] PgError),
    /// A target table that exists already does not fit the mapping.
    #[error("preparing the target table: {0}")]
    Table(#[from] TableError),
    /// The columns added for new fields could not be read or recorded.
    #[error("preparing the target table: {0}")]
    Registry(#[from] RegistryError),
    /// The mapping file cannot be used.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// Bytes kept by the migration that no longer read as what they were.
    #[error("{what} cannot be read: {detail}")]
    Unreadable {
        /// What was read.
        what: String,
        /// Why not.
        detail: String,
    },
    /// No producer has started the run on this stream.
    #[error("run {run:?} is unknown on stream {stream:?}: no producer has started it; check --run (MIGRATION_RUN) and --stream (NATS_STREAM)")]
    UnknownRun {
        /// The run asked for.
        run: String,
        /// The stream looked in.
        stream: String,
    },
    /// The run (or its collection) left nothing in this database.
    #[error("run {run:?}{} has landed nothing in this database (no batch, reject or dead letter): check --run, --collection and DATABASE_URL", collection.as_deref().map(|c| format!(", collection {c:?},")).unwrap_or_default())]
    LandedNothing {
        /// The run asked for.
        run: String,
        /// The collection asked for, if any.
        collection: Option<String>,
    },
    /// `cutover` of a run that does not follow the change stream.
    #[error("run {run:?} does not follow the change stream (it was started without --follow): there is nothing to cut over; `mongo2pg status` says whether its snapshot is complete")]
    NotFollowing {
        /// The run.
        run: String,
    },
    /// `cutover` waited `--timeout` without the target catching up.
    #[error("run {run:?}: not caught up within {timeout:?}, still waiting for {waiting_for}; `mongo2pg status --run {run}` shows the lag, the consumers' logs why they are slow")]
    NotCaughtUp {
        /// The run.
        run: String,
        /// How long it waited.
        timeout: std::time::Duration,
        /// What it was still waiting for.
        waiting_for: &'static str,
    },
    /// Caught up, but rejects or dead letters of the run are not in the tables.
    #[error("run {run:?} is caught up, but PostgreSQL does not hold all of it: {rejects} documents in _migrate_rejects (fix the mapping or the data, then `mongo2pg replay --run {run}`), {dead_letters} batches in _migrate_dead_letters (fix their cause, then `mongo2pg requeue --run {run}`); cut over once both are 0")]
    NotLanded {
        /// The run.
        run: String,
        /// Its documents waiting in the rejects table.
        rejects: u64,
        /// Its batches in the dead letters.
        dead_letters: u64,
    },
    /// Caught up, but a run of the whole database lacks collections created since.
    #[error("run {run:?} is caught up, but the database has collections it lacks: {advice}")]
    NotInRun {
        /// The run.
        run: String,
        /// Which collections, and what to do.
        advice: String,
    },
    /// `cleanup` of a run `status` does not call complete.
    #[error("run \"{run}\" is {verdict}: cleanup would delete batches that have not landed; `mongo2pg status --run {run}` says what is missing (add --exact if only MongoDB's estimated count disagrees); wait for it, or pass --force to delete anyway")]
    NotComplete {
        /// The run.
        run: RunName,
        /// What `status` says of it.
        verdict: &'static str,
    },
    /// `cleanup` while consumers still pull from the run.
    #[error("consumer processes are still bound to run \"{run}\" ({waiting} pull requests waiting, {unacked} batches being written on {consumer:?}): stop them first (`consumer run --exit-when-done` stops by itself), or pass --force")]
    ConsumersBound {
        /// The run.
        run: RunName,
        /// The durable consumer they are bound to.
        consumer: String,
        /// Pull requests waiting.
        waiting: usize,
        /// Batches delivered and not yet acknowledged.
        unacked: usize,
    },
    /// `cleanup` while a producer still follows the run.
    #[error("run \"{run}\" is still followed by producer {holder}: `mongo2pg cutover --run {run}`, then stop that producer (SIGTERM) before cleaning up, or pass --force")]
    Following {
        /// The run.
        run: RunName,
        /// The producer holding the follower lease.
        holder: String,
    },
    /// A NATS operation of `cleanup` failed.
    #[error("NATS: {doing}: {detail}")]
    Nats {
        /// What was being done.
        doing: String,
        /// What NATS said.
        detail: String,
    },
    /// A dead letter could not be published again.
    #[error("publishing a dead letter again on {subject}: {source}; run the same command again")]
    Requeue {
        /// Its subject.
        subject: String,
        /// What NATS said.
        #[source]
        source: async_nats::Error,
    },
    /// `seed` could not insert.
    #[error("seeding {collection:?}: {detail}")]
    Seed {
        /// The collection.
        collection: String,
        /// What MongoDB said.
        detail: String,
    },
}

impl OperatorError {
    /// The exit status of a failure that is a verdict (a cutover that is not a go),
    /// not a fault; `None` for a fault, which exits 1.
    pub fn verdict(&self) -> Option<ExitStatus> {
        match self {
            OperatorError::NotCaughtUp { .. }
            | OperatorError::NotLanded { .. }
            | OperatorError::NotInRun { .. } => Some(ExitStatus::DIFFERENT),
            _ => None,
        }
    }
}
