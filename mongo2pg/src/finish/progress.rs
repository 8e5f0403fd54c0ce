//! The finish table: each index's and foreign key's state as `finish` goes, which
//! `mongo2pg status` shows of the phase after the load.

use common::naming::{bookkeeping_table, FINISH_TABLE};
use landing::pg::PgError;

use crate::error::OperatorError;

/// Records an item's state in the finish table, for `status`.
pub(super) async fn record(
    client: &tokio_postgres::Client,
    run: &str,
    item: &str,
    kind: &str,
    state: &str,
    detail: &str,
    seconds: Option<f64>,
) -> Result<(), OperatorError> {
    client
        .execute(
            &format!(
                "INSERT INTO {} (run, item, kind, state, detail, seconds) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (run, item) DO UPDATE SET kind = $3, state = $4, detail = $5, seconds = $6, updated_at = now()",
                bookkeeping_table(FINISH_TABLE)
            ),
            &[&run, &item, &kind, &state, &detail, &seconds],
        )
        .await
        .map_err(|e| OperatorError::Pg(PgError::new("recording finish's progress", e)))?;
    Ok(())
}
