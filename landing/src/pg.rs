//! Connecting to PostgreSQL, and what its errors mean for the caller.
//!
//! Every connection of every binary is made here, so they all get the same bound on
//! how long a connection attempt may take, and the same reading of what went wrong:
//! a wrong password or an unknown database is said at once and never retried; a
//! server that is down or restarting is worth another try.

use std::time::Duration;

use common::config::redact_url;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::tls::{self, TlsError};

/// How long a connection attempt (TCP, TLS, startup and login) may take, unless the
/// URL sets `connect_timeout`. tokio-postgres bounds only the TCP connect with it; a
/// server that accepts and never answers would otherwise hang the caller.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse.
    #[error("the PostgreSQL URL {url} is malformed: {detail}; fix --database-url or DATABASE_URL")]
    Malformed {
        /// The URL, without its password.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The server refused the credentials.
    #[error("PostgreSQL at {url} refused the login: {detail}; check the user and password in --database-url or DATABASE_URL")]
    Login {
        /// The URL, without its password.
        url: String,
        /// What the server or driver said.
        detail: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database does not exist.
    #[error("PostgreSQL at {url}: {detail}; create it or name another database in --database-url or DATABASE_URL")]
    UnknownDatabase {
        /// The URL, without its password.
        url: String,
        /// What the server or driver said.
        detail: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No server answered.
    #[error("cannot reach PostgreSQL at {url}: {detail}; is it running? Set --database-url or DATABASE_URL")]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// What the server or driver said.
        detail: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS to PostgreSQL at {url}: {detail}; {hint}")]
    Tls {
        /// The URL, without its password.
        url: String,
        /// What the server or driver said.
        detail: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// A server that accepted the connection and never answered.
    #[error("PostgreSQL at {url} did not complete a connection within {} s; is something else listening on that port?", .timeout.as_secs_f64())]
    Timeout {
        /// The URL, without its password.
        url: String,
        /// How long it waited.
        timeout: Duration,
    },
}

impl ConnectError {
    /// Whether trying again later may succeed: the server is down, starting or busy.
    /// A malformed URL, a refused login or an unknown database fail the same way
    /// every time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Unreachable { .. } | ConnectError::Timeout { .. }
        )
    }
}

/// Connects to PostgreSQL; the connection task ends when the client is dropped.
///
/// # Errors
/// [`ConnectError`], classified: see [`ConnectError::is_transient`].
pub async fn connect(url: &str) -> Result<Client, ConnectError> {
    let shown = redact_url(url);
    let tls_failed = |e: TlsError| ConnectError::Tls {
        url: shown.clone(),
        detail: e.to_string(),
        hint: "fix sslmode, sslrootcert, sslcert or sslkey in --database-url or DATABASE_URL",
    };
    let (rest, settings) = tls::split(url).map_err(tls_failed)?;
    let connector = tls::connector(&settings).map_err(tls_failed)?;
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e: tokio_postgres::Error| {
        ConnectError::Malformed {
            url: shown.clone(),
            // The parser's message names the bad key, never its value.
            detail: e.to_string(),
        }
    })?;
    config.ssl_mode(settings.mode);
    let timeout = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT);
    let connected = tokio::time::timeout(timeout, config.connect(connector))
        .await
        .map_err(|_| ConnectError::Timeout {
            url: shown.clone(),
            timeout,
        })?;
    let (client, connection) = connected.map_err(|source| classify(shown, source))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

fn classify(url: String, source: tokio_postgres::Error) -> ConnectError {
    let detail = detail(&source);
    if let Some(hint) = tls_hint(&source, &detail) {
        return ConnectError::Tls { url, detail, hint };
    }
    match source.code() {
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            ConnectError::Login {
                url,
                detail,
                source,
            }
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => ConnectError::UnknownDatabase {
            url,
            detail,
            source,
        },
        _ => ConnectError::Unreachable {
            url,
            detail,
            source,
        },
    }
}

/// What to do about a connection that failed for TLS: the handshake, or a server
/// that takes only encrypted connections.
fn tls_hint(err: &tokio_postgres::Error, detail: &str) -> Option<&'static str> {
    if err.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
        && detail.contains("no encryption")
    {
        return Some("the server accepts only encrypted connections: set sslmode=require, verify-ca or verify-full");
    }
    if err.code().is_some() || !detail.starts_with("error performing TLS handshake") {
        return None;
    }
    if let Some(advice) = common::certificate::advice(detail) {
        return Some(advice);
    }
    Some(if detail.contains("does not support TLS") {
        "the server does not offer TLS: turn ssl on at the server, or use sslmode=prefer"
    } else {
        "check sslrootcert (the CA that signed the server's certificate), the host name in the URL (verify-full compares it with the certificate), and sslmode"
    })
}

/// Whether a PostgreSQL error is worth retrying on the same batch later: connection
/// loss, server shutdown or restart, lack of resources, serialization conflicts. Other
/// errors (a constraint, bad data, a missing table) fail the same way every time.
pub fn is_transient(err: &tokio_postgres::Error) -> bool {
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

/// Whether PostgreSQL refused one row (rather than the batch, the connection or the
/// table): a value out of range or a constraint (SQLSTATE classes 22 and 23), or any
/// other error raised while COPY was at a given line of its input (a trigger raising
/// an exception for that row), unless it is the server's own trouble (connection,
/// conflict, resources, shutdown, internal error), which no row causes.
pub fn is_row_error(err: &tokio_postgres::Error) -> bool {
    let Some(db) = err.as_db_error() else {
        return false;
    };
    let code = db.code().code();
    if code.starts_with("22") || code.starts_with("23") {
        return true;
    }
    const NOT_THE_ROW: [&str; 7] = ["08", "40", "53", "55", "57", "58", "XX"];
    at_copy_line(db.where_()) && !NOT_THE_ROW.iter().any(|class| code.starts_with(class))
}

/// Whether an error's context places it at a line of a COPY's input ("COPY t, line 3"),
/// as PostgreSQL does for any error while it inserts a row, triggers included.
fn at_copy_line(context: Option<&str>) -> bool {
    context.is_some_and(|context| {
        context
            .lines()
            .any(|line| line.starts_with("COPY ") && line.contains(", line "))
    })
}

/// A PostgreSQL error in one line: the SQLSTATE, the message, the server's detail and
/// context when it gave them.
pub fn detail(err: &tokio_postgres::Error) -> String {
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
        // The cause is in the sources ("error performing TLS handshake: invalid peer
        // certificate: …"); no URL or password is among them.
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                let said = cause.to_string();
                if !text.contains(&said) {
                    text.push_str(&format!(": {said}"));
                }
                source = cause.source();
            }
            text
        }
    }
}

/// A failed PostgreSQL operation, saying what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{doing}: {}", detail(.source))]
pub struct PgError {
    /// What was being done.
    pub doing: String,
    /// The driver's error.
    #[source]
    pub source: tokio_postgres::Error,
}

impl PgError {
    /// The failure `source` of the operation `doing`.
    pub fn new(doing: impl Into<String>, source: tokio_postgres::Error) -> Self {
        PgError {
            doing: doing.into(),
            source,
        }
    }

    /// See [`is_transient`].
    pub fn is_transient(&self) -> bool {
        is_transient(&self.source)
    }
}

/// Adds what was being done to a PostgreSQL result.
pub trait Doing<T> {
    /// # Errors
    /// The error, as a [`PgError`] saying what was being done.
    fn doing(self, what: &str) -> Result<T, PgError>;
}

impl<T> Doing<T> for Result<T, tokio_postgres::Error> {
    fn doing(self, what: &str) -> Result<T, PgError> {
        self.map_err(|source| PgError::new(what, source))
    }
}

#[cfg(test)]
mod tests {
    use super::at_copy_line;

    #[test]
    fn errors_at_a_copy_line_are_told_from_errors_of_the_statement() {
        // A row trigger raising: PL/pgSQL's context, then COPY's.
        assert!(at_copy_line(Some(
            "PL/pgSQL function refuse_odd() line 3 at RAISE\nCOPY events, line 4"
        )));
        assert!(at_copy_line(Some("COPY events, line 1, column doc")));
        // A statement trigger after the rows, or no context at all.
        assert!(!at_copy_line(Some(
            "PL/pgSQL function refuse_bad() line 4 at RAISE"
        )));
        assert!(!at_copy_line(None));
    }
}
