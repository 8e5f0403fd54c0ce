//! A connection the landing writes through, with the statements it has prepared on it.
//!
//! Why: tokio-postgres runs a statement given as text in two round trips (Parse and
//! Describe, then Bind and Execute), and PostgreSQL parses and plans it each time. A
//! change batch is seven such statements (claim, arbitration, the table's check,
//! rejects, rows, counts; then commit). Prepared once per connection, a statement is
//! one round trip, and after five runs PostgreSQL keeps a generic plan: change batches
//! landed 10-20% faster (docs/performance.md), and the gain is the plans (forcing a
//! plan for every run's values, prepared still, gained nothing).
//!
//! A generic plan is made once, for any values and for the tables as they stood: the
//! statements prepared here are keyed writes and lookups by a unique index (the
//! ledger's, the versions', the target's key, the rejects' `(collection, doc_id)`),
//! whose plan is the same on an empty table and on a full one. A statement whose
//! best plan depends on a table's size (a join of a batch's keys with the target)
//! runs unprepared ([`Tx::query_unprepared`]): made while the table was empty, its
//! generic plan would scan the table whole once it holds millions of rows.
//!
//! A statement's text names everything it touches (table, columns, casts), so a table
//! that changes shape gets a statement of its own; one whose text is unchanged is
//! planned again by PostgreSQL itself when a table it reads changed.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use bytes::Bytes;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, CopyInSink, Error, Row, Statement, Transaction};

/// How many statements a connection keeps prepared. A run's statements are a few per
/// table, so this is reached only by runs over many tables, or tables whose columns
/// keep growing; the cache is then emptied and fills again.
const PREPARED_MAX: usize = 256;

/// A PostgreSQL connection and the statements prepared on it. It derefs to its
/// [`Client`] for everything else.
pub struct Session {
    client: Client,
    prepared: Prepared,
}

impl Session {
    /// A session over a connection just made: nothing prepared yet.
    pub fn new(client: Client) -> Self {
        Session {
            client,
            prepared: Prepared::default(),
        }
    }

    /// Begins a transaction whose statements are prepared once per connection.
    pub(crate) async fn begin(&mut self) -> Result<Tx<'_>, Error> {
        let Session { client, prepared } = self;
        Ok(Tx {
            tx: client.transaction().await?,
            prepared,
        })
    }
}

impl Deref for Session {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("closed", &self.client.is_closed())
            .finish_non_exhaustive()
    }
}

/// The statements prepared on one connection, by their text. Behind a mutex only so
/// that a [`Tx`] can be shared by the statements it runs at once; it is never held
/// across a wait.
#[derive(Default)]
struct Prepared(Mutex<HashMap<String, Statement>>);

impl Prepared {
    fn get(&self, sql: &str) -> Option<Statement> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(sql)
            .cloned()
    }

    fn keep(&self, sql: &str, statement: Statement) {
        let mut prepared = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if prepared.len() >= PREPARED_MAX {
            // Dropping a statement closes it on the server.
            prepared.clear();
        }
        prepared.insert(sql.to_string(), statement);
    }
}

/// A transaction of a [`Session`]: the statements it runs by text are prepared on the
/// first use and reused after.
pub(crate) struct Tx<'c> {
    tx: Transaction<'c>,
    prepared: &'c Prepared,
}

impl Tx<'_> {
    /// The statement of this text, prepared on the connection (once).
    async fn statement(&self, sql: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement);
        }
        let statement = self.tx.prepare(sql).await?;
        self.prepared.keep(sql, statement.clone());
        Ok(statement)
    }

    /// Runs a statement; returns the rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let statement = self.statement(sql).await?;
        self.tx.execute(&statement, params).await
    }

    /// Runs a statement; returns its rows.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let statement = self.statement(sql).await?;
        self.tx.query(&statement, params).await
    }

    /// Runs a statement that returns one row.
    pub(crate) async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        let statement = self.statement(sql).await?;
        self.tx.query_one(&statement, params).await
    }

    /// Runs a statement that returns at most one row.
    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let statement = self.statement(sql).await?;
        self.tx.query_opt(&statement, params).await
    }

    /// Runs a statement without preparing it: parsed and planned for these values, for
    /// a statement whose best plan depends on how much its tables hold.
    pub(crate) async fn query_unprepared(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        self.tx.query(sql, params).await
    }

    /// Starts a `COPY … FROM STDIN`.
    pub(crate) async fn copy_in(&self, sql: &str) -> Result<CopyInSink<Bytes>, Error> {
        let statement = self.statement(sql).await?;
        self.tx.copy_in(&statement).await
    }

    /// Runs statements without parameters, as one simple query (savepoints).
    pub(crate) async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        self.tx.batch_execute(sql).await
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await
    }

    /// Rolls back.
    pub(crate) async fn rollback(self) -> Result<(), Error> {
        self.tx.rollback().await
    }
}
