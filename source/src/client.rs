//! Connecting to MongoDB, closing the clients at exit, and choosing what to read.

use std::time::Duration;

use bson::doc;
use common::config::redact_url;
use futures::TryStreamExt;
use mongodb::options::ClientOptions;
use mongodb::results::{CollectionSpecification, CollectionType};
use mongodb::Client;

use crate::config::MongoArgs;
use crate::error::{is_login_failure, mongo_detail, SourceError};
use crate::namespace::{Databases, Source};

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
pub async fn connect(args: &MongoArgs) -> Result<Source, SourceError> {
    let databases = Databases::parse(&args.mongodb_database)?;
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
        .get_or_insert_with(|| "mongo2pg".to_string());
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
    let home = match &databases {
        Databases::One(name) => name.as_str(),
        _ => "admin",
    };
    client
        .database(home)
        .run_command(doc! { "ping": 1 })
        .await
        .map_err(unreachable)?;
    Source::new(client, databases).await
}

/// For a run of whole databases, the collections it lacks: created after it started
/// (and chosen by its `--include`/`--exclude`), they are neither snapshotted nor
/// followed. None for a run of named collections.
pub async fn not_in_run(
    source: &Source,
    manifest: &common::run_state::RunManifest,
) -> Result<Vec<String>, SourceError> {
    if !manifest.all_collections || manifest.follows_database {
        return Ok(Vec::new());
    }
    let selection = match &manifest.selection {
        Some(patterns) => Some(crate::Selection::new(patterns.clone())?),
        None => None,
    };
    let mut names = Vec::new();
    for database in source.names() {
        let listed = source
            .client()
            .database(database)
            .list_collection_names()
            .filter(doc! { "type": "collection" })
            .await
            .map_err(|e| SourceError::read("(listing collections)", &e))?;
        for collection in listed {
            let name = source.name_of(database, &collection);
            let missing = !collection.starts_with("system.")
                && !manifest.collections.contains_key(&name)
                && selection
                    .as_ref()
                    .is_none_or(|s| s.verdict(database, &collection).is_ok());
            if missing {
                names.push(name);
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The collections to migrate, by the names the run gives them: those asked for,
/// which must exist and be collections, or every collection of the databases. Views
/// (read through their pipeline, with no `_id` order of their own to resume by) and
/// MongoDB's own `system.*` collections are left out, with a warning naming them.
pub async fn collections(
    source: &Source,
    requested: &[String],
) -> Result<Vec<String>, SourceError> {
    let listing_failed = |e: mongodb::error::Error| SourceError::read("(listing collections)", &e);
    let mut available = Vec::new();
    let mut views = Vec::new();
    let mut system = Vec::new();
    for database in source.names() {
        let specs: Vec<CollectionSpecification> = source
            .client()
            .database(database)
            .list_collections()
            .await
            .map_err(listing_failed)?
            .try_collect()
            .await
            .map_err(listing_failed)?;
        for spec in specs {
            let name = source.name_of(database, &spec.name);
            if spec.name.starts_with("system.") {
                system.push(name);
            } else if spec.collection_type == CollectionType::View {
                views.push(name);
            } else {
                available.push(name);
            }
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
            return Err(SourceError::NoCollections(source.shown()));
        }
        return Ok(available);
    }
    let mut chosen = Vec::new();
    for name in requested {
        if views.contains(name) {
            return Err(SourceError::View {
                view: name.clone(),
                database: source.shown(),
            });
        }
        if !available.contains(name) {
            return Err(SourceError::MissingCollection {
                collection: name.clone(),
                database: source.shown(),
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
