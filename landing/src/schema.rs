//! Tables: the bookkeeping the consumers keep, and the target tables they fill.
//!
//! Creation is serialized by an advisory lock: several writers (in several processes)
//! meeting a new collection at once would otherwise race inside `CREATE TABLE IF NOT
//! EXISTS` and one of them fail on a duplicate catalog entry.

use common::naming::{DEAD_LETTERS_TABLE, LEDGER_TABLE, REJECTS_TABLE, VERSIONS_TABLE};
use tokio_postgres::{Client, Transaction};

use crate::column_type::ColumnType;
use crate::identifier::quote;
use crate::mapping::{ChildPlan, TablePlan};
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
    let ddl = format!(
        "CREATE TABLE IF NOT EXISTS {ledger} (
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
        CREATE TABLE IF NOT EXISTS {versions} (
            target_table text NOT NULL,
            doc_key bytea NOT NULL,
            version bytea NOT NULL,
            deleted boolean NOT NULL,
            PRIMARY KEY (target_table, doc_key)
        );
        CREATE INDEX IF NOT EXISTS {rejects_run} ON {rejects} (run, collection);
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
        );",
        ledger = quote(LEDGER_TABLE),
        versions = quote(VERSIONS_TABLE),
        ledger_run = quote(&format!("{LEDGER_TABLE}_run")),
        rejects = quote(REJECTS_TABLE),
        rejects_run = quote(&format!("{REJECTS_TABLE}_run")),
        dead = quote(DEAD_LETTERS_TABLE),
    );
    locked(client, "creating the bookkeeping tables", &ddl).await
}

/// Creates a plan's target table (and child tables) when absent. A table that exists
/// already (created by hand, or by an earlier mapping) gets the plan's columns it
/// lacks, `_extra` among them, so that no field is dropped for want of a column; then
/// the tables are checked against the plan ([`table_check`]).
pub async fn ensure_table(client: &mut Client, plan: &TablePlan) -> Result<(), TableError> {
    let doing = format!("creating table {}", plan.table);
    let existing: Vec<String> = client
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&plan.table],
        )
        .await
        .doing(&doing)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut ddl = create_table_sql(plan);
    if !existing.is_empty() {
        for column in plan.columns.iter().filter(|c| !existing.contains(&c.name)) {
            ddl.push_str(&format!(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {};\n",
                quote(&plan.table),
                quote(&column.name),
                column.ty.sql()
            ));
        }
    }
    locked(client, &doing, &ddl).await?;
    table_check::check(client, plan).await
}

/// The `CREATE TABLE IF NOT EXISTS` statements of a plan's table and child tables.
pub fn create_table_sql(plan: &TablePlan) -> String {
    let mut columns: Vec<String> = plan
        .columns
        .iter()
        .map(|c| format!("{} {}", quote(&c.name), c.ty.sql()))
        .collect();
    if let Some(pk) = plan.primary_key {
        columns.push(format!("PRIMARY KEY ({})", quote(&plan.columns[pk].name)));
    }
    let mut ddl = format!(
        "CREATE TABLE IF NOT EXISTS {} (\n  {}\n);\n",
        quote(&plan.table),
        columns.join(",\n  ")
    );
    let parent_type = plan.primary_key_type().unwrap_or(ColumnType::Text);
    for child in &plan.children {
        let [parent, position, value] = ChildPlan::COLUMNS;
        ddl.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {} (\n  {} {} NOT NULL,\n  {} int4 NOT NULL,\n  {} {},\n  PRIMARY KEY ({}, {})\n);\n",
            quote(&child.table),
            quote(parent),
            parent_type.sql(),
            quote(position),
            quote(value),
            child.ty.sql(),
            quote(parent),
            quote(position),
        ));
    }
    ddl
}
