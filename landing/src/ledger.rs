//! Questions about the ledger, the table with one row per landed batch (made in
//! [`crate::schema`], written by [`crate::landing`]).

use common::naming::{DEAD_LETTERS_TABLE, LEDGER_TABLE, REJECTS_TABLE};
use tokio_postgres::Client;

use crate::identifier::quote;
use crate::pg::{Doing, PgError};

/// Whether anything of `run` (of `collection`, when given) reached this database: a
/// landed batch, a reject or a dead letter. No means a mistyped run or collection
/// name, or another database.
pub async fn has_run(
    client: &Client,
    run: &str,
    collection: Option<&str>,
) -> Result<bool, PgError> {
    let filter = "run = $1 AND ($2::text IS NULL OR collection = $2)";
    client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE {filter})
                     OR EXISTS (SELECT 1 FROM {} WHERE {filter})
                     OR EXISTS (SELECT 1 FROM {} WHERE {filter})",
                quote(LEDGER_TABLE),
                quote(REJECTS_TABLE),
                quote(DEAD_LETTERS_TABLE),
            ),
            &[&run, &collection],
        )
        .await
        .doing("looking for the run in the ledger")?
        .try_get(0)
        .doing("looking for the run in the ledger")
}
