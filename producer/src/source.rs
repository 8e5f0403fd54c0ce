//! Connecting to MongoDB and choosing what to read.

use std::time::Duration;

use bson::doc;
use common::config::redact_url;
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};

use crate::config::MongoArgs;
use crate::error::{is_login_failure, mongo_detail, ProducerError};

/// How long to look for a MongoDB server before saying it cannot be reached, unless
/// the connection string sets `serverSelectionTimeoutMS`.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects and checks that the server answers.
pub async fn connect(args: &MongoArgs) -> Result<Database, ProducerError> {
    let uri = redact_url(&args.mongodb_uri);
    let unreachable = |e: mongodb::error::Error| {
        if is_login_failure(&e) {
            ProducerError::MongoLogin {
                uri: uri.clone(),
                detail: mongo_detail(&e),
            }
        } else {
            ProducerError::MongoConnect {
                uri: uri.clone(),
                detail: mongo_detail(&e),
            }
        }
    };
    let mut options = ClientOptions::parse(&args.mongodb_uri)
        .await
        .map_err(|e| match *e.kind {
            mongodb::error::ErrorKind::InvalidArgument { .. } => ProducerError::MongoMalformed {
                uri: uri.clone(),
                detail: mongo_detail(&e),
            },
            _ => unreachable(e),
        })?;
    options
        .server_selection_timeout
        .get_or_insert(SERVER_SELECTION_TIMEOUT);
    options
        .connect_timeout
        .get_or_insert(SERVER_SELECTION_TIMEOUT);
    options
        .app_name
        .get_or_insert_with(|| "mongo2pg-producer".to_string());
    let client = Client::with_options(options).map_err(unreachable)?;
    let database = client.database(&args.mongodb_database);
    database
        .run_command(doc! { "ping": 1 })
        .await
        .map_err(unreachable)?;
    Ok(database)
}

/// The collections to migrate: those asked for, which must exist, or every collection
/// of the database but MongoDB's own `system.*` ones.
pub async fn collections(
    database: &Database,
    requested: &[String],
) -> Result<Vec<String>, ProducerError> {
    let mut available =
        database
            .list_collection_names()
            .await
            .map_err(|e| ProducerError::Read {
                collection: "(listing collections)".to_string(),
                detail: mongo_detail(&e),
            })?;
    available.retain(|name| !name.starts_with("system."));
    available.sort();
    if requested.is_empty() {
        if available.is_empty() {
            return Err(ProducerError::NoCollections(database.name().to_string()));
        }
        return Ok(available);
    }
    let mut chosen = Vec::new();
    for name in requested {
        if !available.contains(name) {
            return Err(ProducerError::MissingCollection {
                collection: name.clone(),
                database: database.name().to_string(),
                available: if available.is_empty() {
                    "no collections".to_string()
                } else {
                    available.join(", ")
                },
            });
        }
        if !chosen.contains(name) {
            chosen.push(name.clone());
        }
    }
    Ok(chosen)
}
