//! Everything that stops the producer, each saying what to do about it.

use common::broker::BrokerError;
use common::run_state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
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
    #[error("database {0:?} has no collections to migrate")]
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
    #[error("cannot reach PostgreSQL at {url}: {detail}; is it running? Set --database-url or DATABASE_URL")]
    PgConnect { url: String, detail: String },
    #[error("{0}")]
    Status(String),
    #[error("verify: {0}")]
    Verify(String),
    #[error("infer: {0}")]
    Infer(String),
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
        _ => err.to_string(),
    }
}
