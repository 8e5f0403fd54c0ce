//! Tables: the bookkeeping the consumers keep, and the target tables they fill.
//!
//! Creation is serialized by an advisory lock: several writers (in several processes)
//! meeting a new collection at once would otherwise race inside `CREATE TABLE IF NOT
//! EXISTS` and one of them fail on a duplicate catalog entry.

use common::naming::{
    bookkeeping_schema, bookkeeping_table, DEAD_LETTERS_TABLE, FINISH_TABLE, KEYS_TABLE,
    LEDGER_TABLE, REJECTS_TABLE, VERSIONS_TABLE,
};
use tokio_postgres::{Client, Transaction};

use crate::column_type::ColumnType;
use crate::identifier::{quote, quote_table, split_table};
use crate::keys::KeyAfterLoad;
use crate::mapping::TablePlan;
use crate::pg::{Doing, PgError};
use crate::table_check::{self, TableError};

/// Advisory lock key of schema changes (an arbitrary constant, "m2p" + 1).
const SCHEMA_LOCK: i64 = 0x6d32_7001;

/// Takes the schema lock until the end of `tx`: schema changes happen one at a time,
/// across every process writing to the database.
pub async fn lock(tx: &Transaction<'_>) -> Result<(), PgError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .doing("waiting for the schema lock")?;
    Ok(())
}

async fn locked(client: &mut Client, doing: &str, ddl: &str) -> Result<(), PgError> {
    let tx = client.transaction().await.doing(doing)?;
    lock(&tx).await?;
    tx.batch_execute(ddl).await.doing(doing)?;
    tx.commit().await.doing(doing)
}

/// Creates the ledger, rejects and dead-letter tables when absent.
pub async fn ensure_bookkeeping(client: &mut Client) -> Result<(), PgError> {
    let schema = match bookkeeping_schema() {
        Some(schema) => format!("CREATE SCHEMA IF NOT EXISTS {};\n", quote(schema)),
        None => String::new(),
    };
    let ddl = format!(
        "{schema}CREATE TABLE IF NOT EXISTS {ledger} (
            batch_id text PRIMARY KEY,
            run text NOT NULL,
            collection text NOT NULL,
            seq bigint NOT NULL,
            target_table text NOT NULL,
            rows_written integer NOT NULL,
            rows_rejected integer NOT NULL,
            committed_at timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE {ledger} ADD COLUMN IF NOT EXISTS rows_already integer NOT NULL DEFAULT 0;
        ALTER TABLE {ledger} ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'snapshot';
        ALTER TABLE {ledger} ADD COLUMN IF NOT EXISTS events integer NOT NULL DEFAULT 0;
        CREATE INDEX IF NOT EXISTS {ledger_run} ON {ledger} (run, collection);
        CREATE TABLE IF NOT EXISTS {rejects} (
            id bigserial PRIMARY KEY,
            run text NOT NULL,
            collection text NOT NULL,
            batch_id text NOT NULL,
            doc_id text,
            field text,
            expected_type text,
            found_type text,
            error text NOT NULL,
            document jsonb,
            raw_bson bytea NOT NULL,
            rejected_at timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE {rejects} ADD COLUMN IF NOT EXISTS excerpt text;
        ALTER TABLE {rejects} ADD COLUMN IF NOT EXISTS operation text;
        ALTER TABLE {rejects} ADD COLUMN IF NOT EXISTS withheld text[];
        CREATE TABLE IF NOT EXISTS {versions} (
            target_table text NOT NULL,
            doc_key bytea NOT NULL,
            version bytea NOT NULL,
            deleted boolean NOT NULL,
            PRIMARY KEY (target_table, doc_key)
        );
        CREATE INDEX IF NOT EXISTS {rejects_run} ON {rejects} (run, collection);
        CREATE INDEX IF NOT EXISTS {rejects_doc} ON {rejects} (collection, doc_id);
        CREATE TABLE IF NOT EXISTS {dead} (
            id bigserial PRIMARY KEY,
            stream text NOT NULL,
            stream_seq bigint NOT NULL,
            subject text NOT NULL,
            run text,
            collection text,
            batch_id text,
            deliveries bigint NOT NULL,
            reason text NOT NULL,
            payload bytea NOT NULL,
            dead_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (stream, stream_seq)
        );
        ALTER TABLE {dead} ADD COLUMN IF NOT EXISTS withheld text[];
        CREATE TABLE IF NOT EXISTS {finish} (
            run text NOT NULL,
            item text NOT NULL,
            kind text NOT NULL,
            state text NOT NULL,
            detail text NOT NULL DEFAULT '',
            seconds float8,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (run, item)
        );",
        finish = bookkeeping_table(FINISH_TABLE),
        ledger = bookkeeping_table(LEDGER_TABLE),
        versions = bookkeeping_table(VERSIONS_TABLE),
        ledger_run = quote(&format!("{LEDGER_TABLE}_run")),
        rejects = bookkeeping_table(REJECTS_TABLE),
        rejects_run = quote(&format!("{REJECTS_TABLE}_run")),
        // Each change batch deletes the rejects of the documents it replaces: without
        // this index, a scan of every reject per batch (1 s per batch at 200,000).
        rejects_doc = quote(&format!("{REJECTS_TABLE}_doc")),
        dead = bookkeeping_table(DEAD_LETTERS_TABLE),
    );
    locked(client, "creating the bookkeeping tables", &ddl).await
}

/// Creates the registry of primary keys built after the load when absent: only a run
/// with `--key-after-load` has one ([`crate::keys`]).
pub async fn ensure_keys_table(client: &mut Client) -> Result<(), PgError> {
    let ddl = format!(
        "CREATE TABLE IF NOT EXISTS {} (
            target_table text PRIMARY KEY,
            key_column text NOT NULL,
            run text NOT NULL,
            collection text NOT NULL,
            state text NOT NULL DEFAULT 'pending',
            duplicates bigint NOT NULL DEFAULT 0,
            seconds float8,
            built_at timestamptz
        )",
        bookkeeping_table(KEYS_TABLE)
    );
    locked(
        client,
        "creating the registry of keys built after the load",
        &ddl,
    )
    .await
}

/// Creates a plan's target table (and child tables, and their schema) when absent.
/// A table that exists already (created by hand, or by an earlier mapping) gets the
/// plan's columns it lacks, `_extra` among them, so that no field is dropped for want
/// of a column; then the tables are checked against the plan ([`table_check`]).
///
/// With `key_after_load` (a run's consumers with `--key-after-load`), a table created
/// here for a plan without child tables gets no primary key yet: it is registered as
/// pending in the keys table, in the same transaction, and built once the run's
/// snapshot has landed ([`crate::keys`]). `run` is the run landing here: a table whose
/// key waits for another run's snapshot is refused (`None`, a repair after the load,
/// takes any).
pub async fn ensure_table(
    client: &mut Client,
    plan: &TablePlan,
    run: Option<&str>,
    key_after_load: Option<&KeyAfterLoad<'_>>,
) -> Result<(), TableError> {
    let doing = format!("creating table {}", plan.table);
    let deferred = match key_after_load {
        Some(load)
            if crate::keys::can_wait(plan)
                && !table_exists(client, &plan.table, &doing).await? =>
        {
            Some(load)
        }
        _ => None,
    };
    let mut ddl = if deferred.is_some() {
        create_table_sql_without_key(plan)
    } else {
        create_table_sql(plan)
    };

    for (table, columns) in tables(plan) {
        let (schema, name) = split_table(table);
        let existing: Vec<String> = client
            .query(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2",
                &[&schema, &name],
            )
            .await
            .doing(&doing)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if existing.is_empty() {
            continue;
        }
        for (column, ty) in columns.iter().filter(|(c, _)| !existing.contains(c)) {
            ddl.push_str(&format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {};\n",
                quote_table(table),
                quote(column),
                ty.sql()
            ));
        }
    }
    let tx = client.transaction().await.doing(&doing)?;
    lock(&tx).await?;
    tx.batch_execute(&ddl).await.doing(&doing)?;
    if let (Some(load), Some(pk)) = (deferred, plan.primary_key) {
        crate::keys::register(&tx, &plan.table, &plan.columns[pk].name, load)
            .await
            .doing(&doing)?;
    }
    tx.commit().await.doing(&doing)?;
    table_check::check(client, plan, run).await
}

async fn table_exists(client: &Client, table: &str, doing: &str) -> Result<bool, PgError> {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quote_table(table)])
        .await
        .and_then(|row| row.try_get(0))
        .doing(doing)
}

/// Each table of a plan (its own, then its child tables) with its columns' names and
/// types.
pub fn tables(plan: &TablePlan) -> Vec<(&str, Vec<(String, ColumnType)>)> {
    let mut tables = vec![(
        plan.table.as_str(),
        plan.columns
            .iter()
            .map(|c| (c.name.clone(), c.ty))
            .collect(),
    )];
    for child in &plan.children {
        tables.push((
            child.table.as_str(),
            child
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.ty))
                .collect(),
        ));
    }
    tables
}

/// The `CREATE SCHEMA` and `CREATE TABLE IF NOT EXISTS` statements of a plan's table
/// and child tables.
pub fn create_table_sql(plan: &TablePlan) -> String {
    create_sql(plan, true)
}

/// [`create_table_sql`] with the table's own primary key left out (the key column is
/// still `NOT NULL`): for a key built after the load.
fn create_table_sql_without_key(plan: &TablePlan) -> String {
    create_sql(plan, false)
}

fn create_sql(plan: &TablePlan, with_key: bool) -> String {
    let mut ddl = String::new();
    let mut schemas: Vec<&str> = std::iter::once(plan.table.as_str())
        .chain(plan.children.iter().map(|c| c.table.as_str()))
        .filter_map(|t| split_table(t).0)
        .collect();
    schemas.dedup();
    for schema in schemas {
        ddl.push_str(&format!("CREATE SCHEMA IF NOT EXISTS {};\n", quote(schema)));
    }
    let not_null = |required: bool| if required { " NOT NULL" } else { "" };
    let mut columns: Vec<String> = plan
        .columns
        .iter()
        .map(|c| format!("{} {}{}", quote(&c.name), c.ty.sql(), not_null(c.required)))
        .collect();
    if let Some(pk) = plan.primary_key {
        if with_key {
            columns.push(format!("PRIMARY KEY ({})", quote(&plan.columns[pk].name)));
        } else if !plan.columns[pk].required {
            columns[pk].push_str(" NOT NULL");
        }
    }
    ddl.push_str(&format!(
        "CREATE TABLE IF NOT EXISTS {} (\n  {}\n);\n",
        quote_table(&plan.table),
        columns.join(",\n  ")
    ));
    for child in &plan.children {
        let mut columns: Vec<String> = child
            .columns
            .iter()
            .map(|c| format!("{} {}{}", quote(&c.name), c.ty.sql(), not_null(c.required)))
            .collect();
        let key: Vec<String> = child
            .primary_key
            .iter()
            .map(|&k| quote(&child.columns[k].name))
            .collect();
        columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
        ddl.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  {}\n);\n",
            quote_table(&child.table),
            columns.join(",\n  ")
        ));
    }
    ddl
}
