//! Fields that appear after the mapping was written, as columns of their own.
//!
//! By default a field no column reads lands in `_extra`. With `new_fields = "columns"`
//! in a collection's mapping, a top-level field the mapping does not name becomes a
//! column the first time a writer meets it, typed after its first non-null value (the
//! table is in [`crate::mapping::new_fields`]).
//!
//! A value lands in the column only when it is of the same kind as the value that
//! made it (and the column type can hold it); anything else, null included, stays in
//! `_extra` under the field's name. So a document lands the same whichever writer took
//! it and whenever, and `verify` can rebuild each row from the source.
//!
//! Several writers in several processes may meet the same field at once. Adding is
//! serialized by the schema advisory lock and recorded in a registry table
//! ([`ADDED_COLUMNS_TABLE`]) in the same transaction as the `ALTER TABLE`: the first
//! writer decides the name and type, the others read them from the registry. At most `max_new_columns` (default 100) are added to a table; later new fields land
//! in `_extra`, so a collection using keys as data cannot grow the table to PostgreSQL's
//! 1,600-column limit. Which fields got columns is in the registry, so that too is the
//! same for every writer.
//!
//! The `ALTER TABLE` runs outside any batch transaction; it waits for COPYs in flight on
//! the table to commit and holds new ones back for the moment it takes.

use common::naming::{bookkeeping_table, ADDED_COLUMNS_TABLE, VERSIONS_TABLE};
use tokio_postgres::{Client, GenericClient};

use crate::identifier::{quote, quote_table, split_table, Taken};
use crate::mapping::{AddedColumn, FieldKind, NewField, TablePlan};
use crate::pg::{Doing, PgError};
use crate::schema;
use crate::table_check::TableError;

/// Why the registry of added columns could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A statement failed.
    #[error(transparent)]
    Postgres(#[from] PgError),
    /// The table exists and does not fit the plan.
    #[error(transparent)]
    Table(#[from] TableError),
    /// A collection mapped to a bookkeeping table's name.
    #[error("collection {collection:?} would land in {table:?}, a name the migration keeps for its bookkeeping; map the collection to another table in the mapping file")]
    Reserved {
        /// The collection.
        collection: String,
        /// The table it would land in.
        table: String,
    },
    /// A table the run landed rows in was dropped.
    #[error("table {table:?} is gone although run {run:?} landed rows in it (dropped in PostgreSQL mid-run?): recreated, it would hold only what lands from now on; land the collection again under a new --run, after `DELETE FROM {VERSIONS_TABLE} WHERE target_table = '{table}'`")]
    Dropped {
        /// The table.
        table: String,
        /// The run that landed rows in it.
        run: String,
    },
    /// An added column of a kind this version does not know.
    #[error("{ADDED_COLUMNS_TABLE} lists column {column:?} of {table:?} with kind {kind:?}, which this version does not know; upgrade the consumer")]
    UnknownKind {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The kind recorded.
        kind: String,
    },
}

impl RegistryError {
    /// Whether every delivery of the batch would fail the same way, for a reason no
    /// retry changes (a name the migration keeps, a table dropped under a run): the
    /// batch goes to the dead letters at once.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            RegistryError::Reserved { .. } | RegistryError::Dropped { .. }
        )
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Postgres(err) => err.is_transient(),
            RegistryError::Table(err) => err.is_transient(),
            RegistryError::UnknownKind { .. }
            | RegistryError::Reserved { .. }
            | RegistryError::Dropped { .. } => false,
        }
    }
}

/// The columns added to `table` so far, in the order they were added; none when the
/// registry does not exist yet.
pub async fn load(
    client: &impl GenericClient,
    table: &str,
) -> Result<Vec<AddedColumn>, RegistryError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&bookkeeping_table(ADDED_COLUMNS_TABLE)],
        )
        .await
        .doing("reading the registry of added columns")?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            &format!(
                "SELECT field, column_name, kind FROM {} WHERE target_table = $1 ORDER BY id",
                bookkeeping_table(ADDED_COLUMNS_TABLE)
            ),
            &[&table],
        )
        .await
        .doing("reading the registry of added columns")?;
    rows.iter()
        .map(|row| {
            let kind: String = row.get(2);
            let name: String = row.get(1);
            Ok(AddedColumn {
                field: row.get(0),
                kind: FieldKind::parse(&kind).ok_or_else(|| RegistryError::UnknownKind {
                    table: table.to_string(),
                    column: name.clone(),
                    kind: kind.clone(),
                })?,
                name,
            })
        })
        .collect()
}

/// Adds columns for `fields` to the plan's table, unless another writer already did,
/// and returns every column added to the table so far.
pub async fn add(
    client: &mut Client,
    plan: &TablePlan,
    fields: &[NewField],
) -> Result<Vec<AddedColumn>, RegistryError> {
    let tx = client
        .transaction()
        .await
        .doing("adding columns for new fields")?;
    schema::lock(&tx).await?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (
            id bigserial PRIMARY KEY,
            target_table text NOT NULL,
            field text NOT NULL,
            column_name text NOT NULL,
            kind text NOT NULL,
            added_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (target_table, field),
            UNIQUE (target_table, column_name)
        )",
        bookkeeping_table(ADDED_COLUMNS_TABLE)
    ))
    .await
    .doing("adding columns for new fields")?;
    let mut added = load(&tx, &plan.table).await?;
    // Names to avoid: the plan's, the registry's, and any the table has besides
    // (a column added by hand).
    let mut taken = Taken::default();
    for name in plan.columns.iter().map(|c| c.name.as_str()) {
        taken.claim(name);
    }
    for column in &added {
        taken.claim(&column.name);
    }
    for row in tx
        .query(
            "SELECT column_name::text FROM information_schema.columns
             WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2",
            &[&split_table(&plan.table).0, &split_table(&plan.table).1],
        )
        .await
        .doing("adding columns for new fields")?
    {
        taken.claim(row.get(0));
    }
    for new in fields {
        if added.len() >= plan.max_new_columns {
            tracing::warn!(
                table = %plan.table,
                limit = plan.max_new_columns,
                "max_new_columns reached: further new fields land in _extra"
            );
            break;
        }
        if added.iter().any(|a| a.field == new.field) {
            continue;
        }
        let column = AddedColumn {
            field: new.field.clone(),
            name: taken.generate(&plan.naming.apply(&new.field)),
            kind: new.kind,
        };
        tx.execute(
            &format!(
                "INSERT INTO {} (target_table, field, column_name, kind) VALUES ($1, $2, $3, $4)",
                bookkeeping_table(ADDED_COLUMNS_TABLE)
            ),
            &[
                &plan.table,
                &column.field,
                &column.name,
                &column.kind.as_str(),
            ],
        )
        .await
        .doing("adding columns for new fields")?;
        tx.batch_execute(&format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            quote_table(&plan.table),
            quote(&column.name),
            column.kind.column_type().sql()
        ))
        .await
        .doing("adding columns for new fields")?;
        tracing::info!(
            table = %plan.table,
            field = %column.field,
            column = %column.name,
            r#type = column.kind.column_type().sql(),
            "new field: column added"
        );
        added.push(column);
    }
    tx.commit().await.doing("adding columns for new fields")?;
    Ok(added)
}
