//! What stops a consumer process, each saying what to do about it.

use common::broker::BrokerError;
use landing::added_columns::RegistryError;
use landing::mapping::MappingError;
use landing::pg::{ConnectError, PgError};
use landing::table_check::TableError;

/// Why a consumer process stopped. Batches it had not committed are delivered again.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// PostgreSQL could not be reached or refused the login.
    #[error(transparent)]
    PgConnect(#[from] ConnectError),
    /// The bookkeeping or target tables could not be made.
    #[error("preparing tables in PostgreSQL: {0}")]
    Schema(#[from] PgError),
    /// A target table that exists already does not fit the mapping.
    #[error("preparing the target table: {0}")]
    Table(#[from] TableError),
    /// The columns added for new fields could not be read or recorded.
    #[error("preparing the target table: {0}")]
    Registry(#[from] RegistryError),
    /// The mapping file cannot be used.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// NATS could not be reached or set up.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The run's durable consumer could not be bound.
    #[error("binding the durable consumer {name:?}: {source}")]
    Consumer {
        /// The durable consumer.
        name: String,
        /// Whether trying again may succeed (no answer, a cluster between leaders).
        transient: bool,
        /// What NATS said.
        #[source]
        source: async_nats::Error,
    },
    /// The metrics endpoint could not listen.
    #[error("metrics endpoint: cannot listen on {addr}: {source}; choose another --metrics-addr")]
    Metrics {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why it could not listen.
        #[source]
        source: std::io::Error,
    },
    /// The producer read a collection without the filter this consumer's mapping has.
    #[error("run {run:?}'s producer read {collection:?} without this mapping's filter {filter}: give the producer the same --mapping (MAPPING_FILE) and run it again with --restart")]
    Unfiltered {
        /// The run.
        run: String,
        /// The collection.
        collection: String,
        /// The mapping's filter.
        filter: String,
    },
    /// The run lands with another mapping than this consumer's.
    #[error("run {run:?} lands with the mapping {held}; this consumer has {ours}: start it with the run's mapping, or after fixing the mapping land the run's rejects with `mongo2pg replay --run {run} --mapping <fixed>`, which makes it the run's")]
    OtherMapping {
        /// The run.
        run: String,
        /// The run's mapping, described.
        held: String,
        /// This consumer's, described.
        ours: String,
    },
    /// The run's state bucket could not be read or written.
    #[error(transparent)]
    State(#[from] common::run_state::StateError),
    /// A writer task panicked.
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
