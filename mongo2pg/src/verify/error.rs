//! Why `verify` could not finish, and what failed under it.

use landing::added_columns::RegistryError;
use landing::mapping::MappingError;
use landing::numeric::NumericError;
use landing::pg::{self, ConnectError, PgError};
use source::{mongo_detail, SourceError};

/// Why `verify` could not finish.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Broker(#[from] common::broker::BrokerError),
    #[error(transparent)]
    State(#[from] common::run_state::StateError),
    #[error("run {run} was landed with the mapping {held}, not {ours}; without --mapping, verify takes the run's")]
    OtherMapping {
        run: String,
        held: String,
        ours: String,
    },
    #[error("verify {collection} ({doing}): {cause}")]
    Check {
        collection: String,
        doing: &'static str,
        #[source]
        cause: Cause,
    },
}

/// What failed under [`VerifyError`].
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error("{}", pg::detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Landing(#[from] PgError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Table(#[from] landing::table_check::TableError),
    #[error("{}", mongo_detail(.0))]
    Mongo(#[from] mongodb::error::Error),
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
    #[error("table {0:?} has no column mapped from _id, so rows cannot be matched to documents; map _id to a column")]
    NoKey(String),
    #[error("MongoDB gave the read no operation time, which a repair of a followed run needs as its version; live migration needs a replica set")]
    NoOperationTime,
}

/// A value that cannot be put in canonical form: bytes PostgreSQL would not send for
/// the column's type, or a cell that cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error("encoding a value: {0}")]
    Encode(#[source] Box<dyn std::error::Error + Sync + Send>),
    #[error(transparent)]
    Numeric(#[from] NumericError),
    #[error("jsonb that is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Malformed(String),
}
