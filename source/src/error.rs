//! Why MongoDB could not be read, and what kind of failure it is.
//!
//! Failures are told apart by the driver's error kind and the server's error code,
//! never by their text: [`ReadFailure::of`] says whether reading again may succeed,
//! whether the change stream's history is gone, or neither.

use mongodb::error::{Error, ErrorKind};

/// Why MongoDB could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The connection string does not parse.
    #[error("the MongoDB URI {uri} is malformed: {detail}; fix --mongodb-uri or MONGODB_URI")]
    MongoMalformed {
        /// The URI without its password.
        uri: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The server refused the credentials.
    #[error("MongoDB at {uri} refused the login: {detail}; check the user, password and authSource in --mongodb-uri or MONGODB_URI")]
    MongoLogin {
        /// The URI without its password.
        uri: String,
        /// What the server said.
        detail: String,
    },
    /// No server answered.
    #[error("cannot reach MongoDB at {uri}: {detail}; is mongod running? Set --mongodb-uri or MONGODB_URI")]
    MongoConnect {
        /// The URI without its password.
        uri: String,
        /// What the driver saw.
        detail: String,
    },
    /// The server's certificate was refused, with what to do about it.
    #[error("TLS to MongoDB at {uri}: {detail}; {advice}")]
    MongoCertificate {
        /// The URI without its password.
        uri: String,
        /// What the TLS library said.
        detail: String,
        /// What to do about it.
        advice: &'static str,
    },
    /// A collection asked for does not exist.
    #[error(
        "collection {collection:?} does not exist in database {database:?} (it has: {available})"
    )]
    MissingCollection {
        /// The collection asked for.
        collection: String,
        /// The database read.
        database: String,
        /// The collections it has.
        available: String,
    },
    /// A collection asked for is a view.
    #[error("{view:?} in database {database:?} is a view, which is not migrated (it has no _id order of its own to resume by): migrate the collections it reads, or write it to a collection with $out and migrate that")]
    View {
        /// The view's name.
        view: String,
        /// The database read.
        database: String,
    },
    /// The database holds nothing to migrate.
    #[error("database {0:?} has no collections to migrate; check --mongodb-database or MONGODB_DATABASE")]
    NoCollections(String),
    /// An `--include` or `--exclude` that is not a regular expression.
    #[error("pattern {pattern:?} is not a regular expression: {detail}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The regex crate's words.
        detail: String,
    },
    /// Patterns that choose no collection.
    #[error("no collection of database {database:?} is chosen by {patterns}; its collections: {available}")]
    NoneSelected {
        /// The database.
        database: String,
        /// The patterns, as given.
        patterns: String,
        /// What it has.
        available: String,
    },
    /// A `--mongodb-database` naming no database MongoDB would accept.
    #[error("database name {name:?} in {spec:?} is not one MongoDB accepts; --mongodb-database takes a name, names separated by commas, or * for every database")]
    DatabaseName {
        /// The name refused.
        name: String,
        /// The whole flag.
        spec: String,
    },
    /// A read failed.
    #[error("reading {collection:?} from MongoDB: {detail}")]
    Read {
        /// What was read (a collection, or what the command was for).
        collection: String,
        /// What the driver said.
        detail: String,
        /// What kind of failure it is.
        failure: ReadFailure,
    },
    /// A standalone server: it has no cluster time, oplog or change stream.
    #[error("MongoDB's hello has no operationTime: live migration needs a replica set or a sharded cluster")]
    NoClusterTime,
    /// A recorded `_id` range boundary that does not decode.
    #[error("a recorded _id boundary is unreadable: {0}")]
    BadBoundary(String),
}

impl SourceError {
    /// A failed read of `what`, classified.
    pub fn read(what: impl Into<String>, err: &Error) -> Self {
        SourceError::Read {
            collection: what.into(),
            detail: mongo_detail(err),
            failure: ReadFailure::of(err),
        }
    }

    /// Whether the same read, sent again, may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::Read {
                failure: ReadFailure::Transient,
                ..
            }
        )
    }
}

/// What kind of failure a MongoDB error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFailure {
    /// The network, no server selectable for a while, or a replica set changing its
    /// primary: reading again from the last document read continues where it stopped.
    Transient,
    /// The change stream's position is gone from the oplog: its changes since are lost.
    HistoryLost,
    /// Anything else: reading again fails the same way.
    Permanent,
}

/// Server error codes after which the same read, sent again, may succeed: a primary
/// stepping down or shutting down, a node recovering, a network or host failure, a
/// cursor lost with its server (the driver's retryable read codes, and 43).
const TRANSIENT_READ_CODES: [i32; 14] = [
    11600, 11602, 10107, 13435, 13436, 189, 91, 7, 6, 89, 9001, 134, 262, 43,
];

/// Server error codes saying a change stream cannot resume from its position:
/// ChangeStreamHistoryLost (286), ChangeStreamFatalError (280), CappedPositionLost (136).
const HISTORY_LOST_CODES: [i32; 3] = [286, 280, 136];

impl ReadFailure {
    /// Classifies a driver error by its kind, code and labels.
    pub fn of(err: &Error) -> Self {
        match err.kind.as_ref() {
            ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => ReadFailure::Transient,
            ErrorKind::ServerSelection { .. } => ReadFailure::Transient,
            ErrorKind::Command(command) if HISTORY_LOST_CODES.contains(&command.code) => {
                ReadFailure::HistoryLost
            }
            ErrorKind::Command(command) if TRANSIENT_READ_CODES.contains(&command.code) => {
                ReadFailure::Transient
            }
            ErrorKind::Command(_) => ReadFailure::Permanent,
            _ if err.contains_label("RetryableReadError")
                || err.contains_label("ResumableChangeStreamError") =>
            {
                ReadFailure::Transient
            }
            _ => ReadFailure::Permanent,
        }
    }
}

/// Whether a read failed in a way that passes (see [`ReadFailure::Transient`]).
pub fn is_transient(err: &Error) -> bool {
    ReadFailure::of(err) == ReadFailure::Transient
}

/// Whether a MongoDB error is a refused login rather than an unreachable server.
pub fn is_login_failure(err: &Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Authentication { .. } => true,
        // AuthenticationFailed, Unauthorized.
        ErrorKind::Command(command) => matches!(command.code, 18 | 13),
        _ => false,
    }
}

/// A MongoDB error in one line: server selection failures otherwise print the whole
/// topology description.
pub fn mongo_detail(err: &Error) -> String {
    match err.kind.as_ref() {
        ErrorKind::ServerSelection { message, .. } => match last_server_error(message) {
            Some(error) => format!("no server answered (server selection timed out): {error}"),
            None => "no server answered (server selection timed out)".to_string(),
        },
        ErrorKind::Authentication { message, .. } => message.clone(),
        ErrorKind::Command(command) => {
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
