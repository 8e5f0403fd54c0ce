//! A target table that exists already (made by hand, by another tool, by an older
//! mapping) checked against the plan before anything is copied into it.
//!
//! Binary COPY sends each value in its column's binary format: a column of another
//! type refuses every row with no more than "incorrect binary data format". And the
//! key from `_id` needs a unique index of its own: it is what lands each document
//! once whatever batches it travelled in (see [`crate::landing`]); without one a
//! document published twice would land twice. Both are found here, once per table,
//! and said in words.

use tokio_postgres::types::{Oid, Type};
use tokio_postgres::Client;

use crate::column_type::ColumnType;
use crate::identifier::{quote, quote_table};
use crate::mapping::TablePlan;
use crate::pg::{Doing, PgError};

/// Why a table cannot take the plan's rows.
#[derive(Debug, thiserror::Error)]
pub enum TableMismatch {
    /// A column of another type than the mapping writes.
    #[error("table {table:?} does not fit the mapping: column {column:?} is {found}, the mapping writes {expected}; alter the column, drop the table, or map the collection to another table")]
    ColumnType {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The column's type in the table.
        found: String,
        /// The type the mapping writes.
        expected: &'static str,
    },
    /// No unique index on the key column: a document published twice would land twice.
    #[error("table {table:?} has no unique index on {column:?} alone: without one a document published twice would land twice; add one (ALTER TABLE {table_sql} ADD PRIMARY KEY ({column_sql})) or map the collection to another table")]
    NoUniqueKey {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The table, quoted for SQL.
        table_sql: String,
        /// The column, quoted for SQL.
        column_sql: String,
    },
    /// The key waits for another run's snapshot: this run's documents would land
    /// beside that run's, and no build of this run would ever dedupe them.
    #[error("table {table:?} has no primary key yet: it is built once run {run:?}'s snapshot has landed (mongo2pg finish --run {run} builds it now); another run cannot land in it meanwhile")]
    KeyWaitsForAnotherRun {
        /// The table.
        table: String,
        /// The run whose snapshot the key waits for.
        run: String,
    },
}

/// Why a target table could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A statement failed.
    #[error(transparent)]
    Postgres(#[from] PgError),
    /// The table exists and does not fit.
    #[error(transparent)]
    Mismatch(#[from] TableMismatch),
}

impl TableError {
    /// Whether trying again later may succeed: a table that does not fit stays so
    /// until someone changes it.
    pub fn is_transient(&self) -> bool {
        match self {
            TableError::Postgres(err) => err.is_transient(),
            TableError::Mismatch(_) => false,
        }
    }
}

/// Checks the plan's table and child tables, which exist: every column the plan
/// writes has the plan's type (or one that reads the same bytes), and the key has a
/// unique index of its own, or is to be built after the load ([`crate::keys`]) of
/// `run` (of any run when `None`: a repair after the load).
pub async fn check(client: &Client, plan: &TablePlan, run: Option<&str>) -> Result<(), TableError> {
    let doing = format!("reading the columns of {}", plan.table);
    let columns: Vec<(&str, ColumnType)> = plan
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty))
        .collect();
    check_columns(client, &plan.table, &columns, &doing).await?;
    if let Some(pk) = plan.primary_key {
        let column = &plan.columns[pk].name;
        if !has_unique_index(client, &plan.table, column)
            .await
            .doing(&doing)?
        {
            match crate::keys::pending_for(client, &plan.table).await? {
                Some(waits_for) if run.is_none_or(|run| run == waits_for) => {}
                Some(waits_for) => {
                    return Err(TableMismatch::KeyWaitsForAnotherRun {
                        table: plan.table.clone(),
                        run: waits_for,
                    }
                    .into())
                }
                None => {
                    return Err(TableMismatch::NoUniqueKey {
                        table: plan.table.clone(),
                        column: column.clone(),
                        table_sql: quote_table(&plan.table),
                        column_sql: quote(column),
                    }
                    .into())
                }
            }
        }
    }
    for child in &plan.children {
        let columns: Vec<(&str, ColumnType)> = child
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty))
            .collect();
        let doing = format!("reading the columns of {}", child.table);
        check_columns(client, &child.table, &columns, &doing).await?;
    }
    Ok(())
}

async fn check_columns(
    client: &Client,
    table: &str,
    columns: &[(&str, ColumnType)],
    doing: &str,
) -> Result<(), TableError> {
    // A domain reads its base type's bytes.
    let found = client
        .query(
            "SELECT a.attname::text,
                    CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END,
                    format_type(a.atttypid, a.atttypmod)
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&quote_table(table)],
        )
        .await
        .doing(doing)?;
    for (name, ty) in columns {
        let Some(row) = found
            .iter()
            .find(|row| row.try_get::<_, &str>(0).is_ok_and(|found| found == *name))
        else {
            // Added by `ensure_table` a moment ago, or being added by another writer.
            continue;
        };
        let oid: Oid = row.try_get(1).doing(doing)?;
        if !reads_as(oid, *ty) {
            return Err(TableMismatch::ColumnType {
                table: table.to_string(),
                column: (*name).to_string(),
                found: row.try_get::<_, String>(2).doing(doing)?,
                expected: ty.sql(),
            }
            .into());
        }
    }
    Ok(())
}

/// Whether a column of type `oid` takes the binary values the plan sends for `ty`.
fn reads_as(oid: Oid, ty: ColumnType) -> bool {
    let sent = ty.pg_type();
    oid == sent.oid()
        // varchar and char read text's bytes (and check their length).
        || (sent == Type::TEXT && [Type::VARCHAR.oid(), Type::BPCHAR.oid()].contains(&oid))
        || (sent == Type::TEXT_ARRAY
            && [Type::VARCHAR_ARRAY.oid(), Type::BPCHAR_ARRAY.oid()].contains(&oid))
}

/// Whether `column` alone is the key of a unique index of `table` (its primary key,
/// or a plain unique index: not partial, not on an expression).
async fn has_unique_index(
    client: &Client,
    table: &str,
    column: &str,
) -> Result<bool, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT EXISTS (
                SELECT 1 FROM pg_index i
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1
                  AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2)",
            &[&quote_table(table), &column],
        )
        .await?
        .try_get(0)
}
