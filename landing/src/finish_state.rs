//! Where `mongo2pg finish` stands for a run, counted from the rows it keeps in
//! `_migrate_finish`: what the consumers serve as a gauge, so the phase after the load
//! shows on the dashboard while `finish` (or `cutover`) builds indexes and validates
//! foreign keys.

use common::naming::{bookkeeping_table, FINISH_TABLE};

/// The run's finish items counted by kind (`index`, `foreign key`) and state
/// (`waiting`, `building`, `built`, `failed`, ...); empty before `finish` runs.
///
/// # Errors
/// PostgreSQL's, when the table cannot be read.
pub async fn counts(
    client: &tokio_postgres::Client,
    run: &str,
) -> Result<Vec<(String, String, u64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT kind, state, count(*) FROM {} WHERE run = $1 GROUP BY kind, state ORDER BY kind, state",
                bookkeeping_table(FINISH_TABLE)
            ),
            &[&run],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get::<_, i64>(2) as u64))
        .collect())
}
