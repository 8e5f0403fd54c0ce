//! Deleting what the target holds of some documents: their rows, child rows and
//! rejects. What `verify --repair` replaces, and what a change that won replaces.

use common::naming::{bookkeeping_table, REJECTS_TABLE};
use tokio_postgres::types::ToSql;

use crate::identifier::{quote, quote_table};
use crate::mapping::TablePlan;
use crate::pg::{Doing, PgError};
use crate::session::Tx;

/// Deletes what the target holds of some documents: their rows and child rows (by
/// their key cells, `keys`: a slice of [`Cell`]s of the key's type) and their rejects
/// (by `_id` text). What `verify --repair` replaces, and what a change that won
/// replaces ([`crate::changes`]).
pub(crate) async fn delete_documents(
    tx: &Tx<'_>,
    plan: &TablePlan,
    collection: &str,
    keys: &(dyn ToSql + Sync),
    doc_ids: &[&str],
) -> Result<(), PgError> {
    if let Some(pk) = plan.primary_key {
        let pk_type = plan.columns[pk].ty.sql();
        let tables = std::iter::once((&plan.table, plan.columns[pk].name.as_str())).chain(
            plan.children
                .iter()
                .map(|child| (&child.table, child.document_key())),
        );
        for (table, key_column) in tables {
            tx.execute(
                &format!(
                    "DELETE FROM {} WHERE {} = ANY($1::{pk_type}[])",
                    quote_table(table),
                    quote(key_column)
                ),
                &[keys],
            )
            .await
            .doing(&format!("deleting the rows to replace from {table}"))?;
        }
    }
    delete_rejects(tx, collection, doc_ids).await
}

/// Deletes the rejects of some documents of `collection` (by `_id` text).
pub(crate) async fn delete_rejects(
    tx: &Tx<'_>,
    collection: &str,
    doc_ids: &[&str],
) -> Result<(), PgError> {
    tx.execute(
        &format!(
            "DELETE FROM {} WHERE collection = $1 AND doc_id = ANY($2)",
            bookkeeping_table(REJECTS_TABLE)
        ),
        &[&collection, &doc_ids],
    )
    .await
    .doing("deleting the rejects to replace")?;
    Ok(())
}
