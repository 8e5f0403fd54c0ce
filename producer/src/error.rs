//! Everything that stops the producer, each saying what to do about it.

use common::broker::BrokerError;
use common::run_state::StateError;
use landing::mapping::MappingError;
use landing::pg::{ConnectError, PgError};

use crate::infer::InferError;
use crate::verify::VerifyError;

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    #[error("the MongoDB URI {uri} is malformed: {detail}; fix --mongodb-uri or MONGODB_URI")]
    MongoMalformed { uri: String, detail: String },
    #[error("MongoDB at {uri} refused the login: {detail}; check the user, password and authSource in --mongodb-uri or MONGODB_URI")]
    MongoLogin { uri: String, detail: String },
    #[error("cannot reach MongoDB at {uri}: {detail}; is mongod running? Set --mongodb-uri or MONGODB_URI")]
    MongoConnect { uri: String, detail: String },
    #[error(
        "collection {collection:?} does not exist in database {database:?} (it has: {available})"
    )]
    MissingCollection {
        collection: String,
        database: String,
        available: String,
    },
    #[error("database {0:?} has no collections to migrate; check --mongodb-database or MONGODB_DATABASE")]
    NoCollections(String),
    #[error("reading {collection:?} from MongoDB: {detail}")]
    Read { collection: String, detail: String },
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("publishing batch {seq} of {collection:?} failed after retries: {detail}")]
    Publish {
        collection: String,
        seq: u64,
        detail: String,
    },
    #[error("storing a {len}-byte document of {collection:?} in the object store: {detail}")]
    Blob {
        collection: String,
        len: usize,
        detail: String,
    },
    #[error("the checkpoint of {collection:?} is unreadable ({detail}); rerun with --restart")]
    BadCheckpoint { collection: String, detail: String },
    #[error("stopped by a signal; run the same command again to resume")]
    Interrupted,
    #[error(transparent)]
    PgConnect(#[from] ConnectError),
    #[error("status: {0}")]
    Status(PgError),
    #[error("the checkpoint task failed: {0}")]
    Checkpointer(#[source] tokio::task::JoinError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("seeding {collection:?}: {detail}")]
    Seed { collection: String, detail: String },
}

/// A MongoDB error in one line: server selection failures otherwise print the whole
/// topology description.
pub fn mongo_detail(err: &mongodb::error::Error) -> String {
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::ServerSelection { .. } => {
            "no server answered (server selection timed out)".to_string()
        }
        mongodb::error::ErrorKind::Authentication { message, .. } => message.clone(),
        mongodb::error::ErrorKind::Command(command) => {
            format!(
                "{} ({}, code {})",
                command.message, command.code_name, command.code
            )
        }
        _ => err.to_string(),
    }
}

/// Whether a MongoDB error is a refused login rather than an unreachable server.
pub fn is_login_failure(err: &mongodb::error::Error) -> bool {
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::Authentication { .. } => true,
        // AuthenticationFailed, Unauthorized.
        mongodb::error::ErrorKind::Command(command) => matches!(command.code, 18 | 13),
        _ => false,
    }
}
