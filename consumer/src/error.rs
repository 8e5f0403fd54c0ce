//! What stops a consumer process, each saying what to do about it.

use common::broker::BrokerError;
use landing::added_columns::RegistryError;
use landing::mapping::MappingError;
use landing::pg::{ConnectError, PgError};
use landing::table_check::TableError;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(transparent)]
    PgConnect(#[from] ConnectError),
    #[error("preparing tables in PostgreSQL: {0}")]
    Schema(#[from] PgError),
    #[error("preparing the target table: {0}")]
    Table(#[from] TableError),
    #[error("preparing the target table: {0}")]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("binding the durable consumer {name:?}: {source}")]
    Consumer {
        name: String,
        /// Whether trying again may succeed (no answer, a cluster between leaders).
        transient: bool,
        #[source]
        source: async_nats::Error,
    },
    #[error("metrics endpoint: cannot listen on {addr}: {source}; choose another --metrics-addr")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("run {run:?} lands with the mapping {held}; this consumer has {ours}: start it with the run's mapping, or after fixing the mapping land the run's rejects with `mongo2pg replay --run {run} --mapping <fixed>`, which makes it the run's")]
    OtherMapping {
        run: String,
        held: String,
        ours: String,
    },
    #[error(transparent)]
    State(#[from] common::run_state::StateError),
    #[error("a writer task failed: {0}")]
    Writer(#[source] tokio::task::JoinError),
}

impl ConsumerError {
    /// Whether the same operation, tried again later, may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            ConsumerError::Consumer { transient, .. } => *transient,
            ConsumerError::State(err) => err.is_transient(),
            _ => false,
        }
    }
}
