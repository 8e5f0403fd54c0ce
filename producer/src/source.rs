//! Connecting to MongoDB and choosing what to read.

use std::time::Duration;

use bson::doc;
use common::config::redact_url;
use futures::TryStreamExt;
use mongodb::options::ClientOptions;
use mongodb::results::{CollectionSpecification, CollectionType};
use mongodb::{Client, Database};

use crate::config::MongoArgs;

/// Why MongoDB could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the MongoDB URI {uri} is malformed: {detail}; fix --mongodb-uri or MONGODB_URI")]
    MongoMalformed { uri: String, detail: String },
    #[error("MongoDB at {uri} refused the login: {detail}; check the user, password and authSource in --mongodb-uri or MONGODB_URI")]
    MongoLogin { uri: String, detail: String },
    #[error("cannot reach MongoDB at {uri}: {detail}; is mongod running? Set --mongodb-uri or MONGODB_URI")]
    MongoConnect { uri: String, detail: String },
    #[error("TLS to MongoDB at {uri}: {detail}; {advice}")]
    MongoCertificate {
        uri: String,
        detail: String,
        advice: &'static str,
    },
    #[error(
        "collection {collection:?} does not exist in database {database:?} (it has: {available})"
    )]
    MissingCollection {
        collection: String,
        database: String,
        available: String,
    },
    #[error("{view:?} in database {database:?} is a view, which is not migrated (it has no _id order of its own to resume by): migrate the collections it reads, or write it to a collection with $out and migrate that")]
    View { view: String, database: String },
    #[error("database {0:?} has no collections to migrate; check --mongodb-database or MONGODB_DATABASE")]
    NoCollections(String),
    #[error("reading {collection:?} from MongoDB: {detail}")]
    Read { collection: String, detail: String },
}

/// How long to look for a MongoDB server before saying it cannot be reached, unless
/// the connection string sets `serverSelectionTimeoutMS`.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Every client this process opened, until [`shutdown`] closes them. The last handle
/// of a MongoDB client, dropped, spawns the driver's `endSessions` on the runtime; a
/// process exiting right then (after an error, say) tears the driver's connection pool
/// down under that task, which panics inside the driver. Holding a handle here and
/// shutting the clients down before the runtime ends leaves no such task behind.
static CLIENTS: std::sync::Mutex<Vec<Client>> = std::sync::Mutex::new(Vec::new());

/// How long closing a client may take at exit.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes every client [`connect`] opened: ends their sessions (when a server is
/// reachable) and stops their background work. Call once the command is done,
/// whether it succeeded or not.
pub async fn shutdown() {
    let clients = match CLIENTS.lock() {
        Ok(mut clients) => std::mem::take(&mut *clients),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for client in clients {
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, client.shutdown())
            .await
            .is_err()
        {
            tracing::debug!(
                "closing a MongoDB client took over {SHUTDOWN_TIMEOUT:?}; exiting anyway"
            );
        }
    }
}

/// Connects and checks that the server answers.
pub async fn connect(args: &MongoArgs) -> Result<Database, SourceError> {
    let uri = redact_url(&args.mongodb_uri);
    let unreachable = |e: mongodb::error::Error| {
        if is_login_failure(&e) {
            SourceError::MongoLogin {
                uri: uri.clone(),
                detail: mongo_detail(&e),
            }
        } else {
            let detail = mongo_detail(&e);
            match common::certificate::advice(&detail) {
                Some(advice) => SourceError::MongoCertificate {
                    uri: uri.clone(),
                    detail,
                    advice,
                },
                None => SourceError::MongoConnect {
                    uri: uri.clone(),
                    detail,
                },
            }
        }
    };
    let mut options = ClientOptions::parse(&args.mongodb_uri)
        .await
        .map_err(|e| match *e.kind {
            mongodb::error::ErrorKind::InvalidArgument { .. } => SourceError::MongoMalformed {
                uri: uri.clone(),
                // The driver quotes the piece it tripped on: part of the password here.
                detail: if common::config::unencoded_credentials(&args.mongodb_uri) {
                    "the text before the last '@' is not a user and password".to_string()
                } else {
                    mongo_detail(&e)
                },
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
    // Read only what a majority holds: a write the primary acknowledged alone is
    // rolled back when it dies, and its change never reaches the change stream, so a
    // snapshot that had read it would keep a document MongoDB no longer has.
    options
        .read_concern
        .get_or_insert_with(mongodb::options::ReadConcern::majority);
    let client = Client::with_options(options).map_err(unreachable)?;
    if let Ok(mut clients) = CLIENTS.lock() {
        clients.push(client.clone());
    }
    let database = client.database(&args.mongodb_database);
    database
        .run_command(doc! { "ping": 1 })
        .await
        .map_err(unreachable)?;
    Ok(database)
}

/// For a run of the whole database, the collections it lacks: created after it
/// started, they are neither snapshotted nor followed. None for a run of named
/// collections.
pub async fn not_in_run(
    database: &Database,
    manifest: &common::run_state::RunManifest,
) -> Result<Vec<String>, SourceError> {
    if !manifest.all_collections {
        return Ok(Vec::new());
    }
    let mut names = database
        .list_collection_names()
        .filter(doc! { "type": "collection" })
        .await
        .map_err(|e| SourceError::Read {
            collection: "(listing collections)".to_string(),
            detail: mongo_detail(&e),
        })?;
    names.retain(|name| !name.starts_with("system.") && !manifest.collections.contains_key(name));
    names.sort();
    Ok(names)
}

/// The collections to migrate: those asked for, which must exist and be collections,
/// or every collection of the database. Views (read through their pipeline, with no
/// `_id` order of their own to resume by) and MongoDB's own `system.*` collections are
/// left out, with a warning naming them.
pub async fn collections(
    database: &Database,
    requested: &[String],
) -> Result<Vec<String>, SourceError> {
    let listing_failed = |e: mongodb::error::Error| SourceError::Read {
        collection: "(listing collections)".to_string(),
        detail: mongo_detail(&e),
    };
    let specs: Vec<CollectionSpecification> = database
        .list_collections()
        .await
        .map_err(listing_failed)?
        .try_collect()
        .await
        .map_err(listing_failed)?;
    let mut available = Vec::new();
    let mut views = Vec::new();
    let mut system = Vec::new();
    for spec in specs {
        if spec.name.starts_with("system.") {
            system.push(spec.name);
        } else if spec.collection_type == CollectionType::View {
            views.push(spec.name);
        } else {
            available.push(spec.name);
        }
    }
    available.sort();
    views.sort();
    system.sort();
    if requested.is_empty() {
        if !views.is_empty() {
            tracing::warn!(views = %views.join(", "),
                "views are not migrated: migrate the collections they read, or write a view to a collection with $out and migrate that");
        }
        if !system.is_empty() {
            tracing::warn!(collections = %system.join(", "), "MongoDB's own system collections are not migrated");
        }
        if available.is_empty() {
            return Err(SourceError::NoCollections(database.name().to_string()));
        }
        return Ok(available);
    }
    let mut chosen = Vec::new();
    for name in requested {
        if views.contains(name) {
            return Err(SourceError::View {
                view: name.clone(),
                database: database.name().to_string(),
            });
        }
        if !available.contains(name) {
            return Err(SourceError::MissingCollection {
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

/// A MongoDB error in one line: server selection failures otherwise print the whole
/// topology description.
pub fn mongo_detail(err: &mongodb::error::Error) -> String {
    match err.kind.as_ref() {
        mongodb::error::ErrorKind::ServerSelection { message, .. } => {
            match last_server_error(message) {
                Some(error) => format!("no server answered (server selection timed out): {error}"),
                None => "no server answered (server selection timed out)".to_string(),
            }
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

/// The error the driver last saw on a server, from a server selection failure's
/// topology description ("… Servers: [ { Address: …, Error: Kind: I/O error: invalid
/// peer certificate: UnknownIssuer, labels: {} } ] }"): the reason a TLS or network
/// problem gives, without the whole description.
fn last_server_error(message: &str) -> Option<&str> {
    let start = message.rfind("Error: ")? + "Error: ".len();
    let rest = &message[start..];
    let end = [", labels", " }"]
        .iter()
        .filter_map(|stop| rest.find(stop))
        .min()
        .unwrap_or(rest.len());
    let error = rest[..end].trim();
    Some(error.strip_prefix("Kind: ").unwrap_or(error)).filter(|e| !e.is_empty())
}

/// Server error codes after which the same read, sent again, may succeed: a primary
/// stepping down or shutting down, a node recovering, a network or host failure, a
/// cursor lost with its server (the driver's retryable read codes, and 43).
const TRANSIENT_READ_CODES: [i32; 14] = [
    11600, 11602, 10107, 13435, 13436, 189, 91, 7, 6, 89, 9001, 134, 262, 43,
];

/// Whether a read failed in a way that passes: the network, no server selectable for
/// a while, or a replica set changing its primary. Reading again from the last
/// document read then continues where it stopped.
pub fn is_transient(err: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    match err.kind.as_ref() {
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => true,
        ErrorKind::ServerSelection { .. } => true,
        ErrorKind::Command(command) => TRANSIENT_READ_CODES.contains(&command.code),
        _ => {
            err.contains_label("RetryableReadError")
                || err.contains_label("ResumableChangeStreamError")
        }
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_selection_failure_names_the_servers_error() {
        let message = "Server selection timeout: No available servers. Topology: { Type: Single, Servers: [ { Address: 127.0.0.1:1, Type: Unknown, Error: Kind: I/O error: invalid peer certificate: UnknownIssuer, labels: {} } ] }";
        assert_eq!(
            super::last_server_error(message),
            Some("I/O error: invalid peer certificate: UnknownIssuer")
        );
        assert_eq!(super::last_server_error("No available servers."), None);
    }
}
