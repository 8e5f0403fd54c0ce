//! Why `verify` could not finish, and what failed under it.

use landing::added_columns::RegistryError;
use landing::mapping::MappingError;
use landing::numeric::NumericError;
use landing::pg::{self, ConnectError, PgError};
use source::{mongo_detail, SourceError};

/// Why `verify` could not finish.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// MongoDB could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// PostgreSQL could not be reached or refused the login.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The mapping cannot be used.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// NATS, where the run's mapping is recorded, could not be reached.
    #[error(transparent)]
    Broker(#[from] common::broker::BrokerError),
    /// The run's state bucket could not be read.
    #[error(transparent)]
    State(#[from] common::run_state::StateError),
    /// `--mapping` names another mapping than the run's.
    #[error("run {run} was landed with the mapping {held}, not {ours}; without --mapping, verify takes the run's")]
    OtherMapping {
        /// The run.
        run: String,
        /// The run's mapping, described.
        held: String,
        /// The one given, described.
        ours: String,
    },
    /// Checking a collection failed.
    #[error("verify {collection} ({doing}): {cause}")]
    Check {
        /// The collection.
        collection: String,
        /// What was being done.
        doing: &'static str,
        /// What failed.
        #[source]
        cause: Cause,
    },
}

/// What failed under [`VerifyError`].
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// A query of the target.
    #[error("{}", pg::detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// Landing the repaired documents.
    #[error(transparent)]
    Landing(#[from] PgError),
    /// Reading the columns added for new fields.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A target table that does not fit the mapping.
    #[error(transparent)]
    Table(#[from] landing::table_check::TableError),
    /// A read of the source.
    #[error("{}", mongo_detail(.0))]
    Mongo(#[from] mongodb::error::Error),
    /// A value that cannot be fingerprinted.
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
    /// A table without a key from `_id`.
    #[error("table {0:?} has no column mapped from _id, so rows cannot be matched to documents; map _id to a column")]
    NoKey(String),
    /// A read without an operation time, which a repair of a followed run needs.
    #[error("MongoDB gave the read no operation time, which a repair of a followed run needs as its version; live migration needs a replica set")]
    NoOperationTime,
}

/// A value that cannot be put in canonical form: bytes PostgreSQL would not send for
/// the column's type, or a cell that cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    /// A cell that cannot be encoded.
    #[error("encoding a value: {0}")]
    Encode(#[source] Box<dyn std::error::Error + Sync + Send>),
    /// A numeric value that does not decode.
    #[error(transparent)]
    Numeric(#[from] NumericError),
    /// A jsonb value that is not JSON.
    #[error("jsonb that is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Bytes PostgreSQL would not send for the column's type.
    #[error("{0}")]
    Malformed(String),
}
