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
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    PgConnect(#[from] ConnectError),
    #[error("{0}")]
    Pg(#[from] PgError),
    #[error("preparing the target table: {0}")]
    Table(#[from] TableError),
    #[error("preparing the target table: {0}")]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("run {run:?} is unknown on stream {stream:?}: no producer has started it; check --run (MIGRATION_RUN) and --stream (NATS_STREAM)")]
    UnknownRun { run: String, stream: String },
    #[error("run {run:?}{} has landed nothing in this database (no batch, reject or dead letter): check --run, --collection and DATABASE_URL", collection.as_deref().map(|c| format!(", collection {c:?},")).unwrap_or_default())]
    LandedNothing {
        run: String,
        collection: Option<String>,
    },
    #[error("run {run:?} does not follow the change stream (it was started without --follow): there is nothing to cut over; `mongo2pg status` says whether its snapshot is complete")]
    NotFollowing { run: String },
    #[error("run {run:?}: not caught up within {timeout:?}, still waiting for {waiting_for}; `mongo2pg status --run {run}` shows the lag, the consumers' logs why they are slow")]
    NotCaughtUp {
        run: String,
        timeout: std::time::Duration,
        waiting_for: &'static str,
    },
    #[error("run {run:?} is caught up, but PostgreSQL does not hold all of it: {rejects} documents in _migrate_rejects (fix the mapping or the data, then `mongo2pg replay --run {run}`), {dead_letters} batches in _migrate_dead_letters (fix their cause, then `mongo2pg requeue --run {run}`); cut over once both are 0")]
    NotLanded {
        run: String,
        rejects: u64,
        dead_letters: u64,
    },
    #[error("run {run:?} is caught up, but the database has collections it lacks: {advice}")]
    NotInRun { run: String, advice: String },
    #[error("run \"{run}\" is {verdict}: cleanup would delete batches that have not landed; `mongo2pg status --run {run}` says what is missing (add --exact if only MongoDB's estimated count disagrees); wait for it, or pass --force to delete anyway")]
    NotComplete { run: RunName, verdict: &'static str },
    #[error("consumer processes are still bound to run \"{run}\" ({waiting} pull requests waiting, {unacked} batches being written on {consumer:?}): stop them first (`consumer run --exit-when-done` stops by itself), or pass --force")]
    ConsumersBound {
        run: RunName,
        consumer: String,
        waiting: usize,
        unacked: usize,
    },
    #[error("run \"{run}\" is still followed by producer {holder}: `mongo2pg cutover --run {run}`, then stop that producer (SIGTERM) before cleaning up, or pass --force")]
    Following { run: RunName, holder: String },
    #[error("NATS: {doing}: {detail}")]
    Nats { doing: String, detail: String },
    #[error("publishing a dead letter again on {subject}: {source}; run the same command again")]
    Requeue {
        subject: String,
        #[source]
        source: async_nats::Error,
    },
    #[error("seeding {collection:?}: {detail}")]
    Seed { collection: String, detail: String },
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
