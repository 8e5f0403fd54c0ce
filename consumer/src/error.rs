//! What stops a consumer process, each saying what to do about it.

use common::broker::BrokerError;

use crate::mapping::MappingError;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("cannot reach PostgreSQL at {url}: {detail}; is it running? Set --database-url or DATABASE_URL")]
    PgConnect { url: String, detail: String },
    #[error("preparing tables in PostgreSQL: {0}")]
    Schema(String),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("binding the durable consumer {name:?}: {detail}")]
    Consumer { name: String, detail: String },
    #[error("metrics endpoint: {0}; choose another --metrics-addr")]
    Metrics(String),
    #[error("a writer task failed: {0}")]
    Writer(String),
}

/// Whether a PostgreSQL error is worth retrying on the same batch later: connection
/// loss, server shutdown or restart, lack of resources, serialization conflicts. Other
/// errors (a constraint, bad data) fail the same way every time.
pub fn is_retriable(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources
                || code.starts_with("57P") // operator intervention: shutdown, restart
                || code == "40001" // serialization failure
                || code == "40P01" // deadlock
                || code == "55P03" // lock not available
        }
        // No SQLSTATE: an I/O error on the connection.
        None => true,
    }
}

/// A PostgreSQL error in one line, with the server's detail when it gave one.
pub fn pg_detail(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(context) = db.where_() {
                text.push_str(&format!(" [{}]", context.replace('\n', "; ")));
            }
            text
        }
        None => err.to_string(),
    }
}
