//! The primary keys of a run's tables that wait for its snapshot (`--key-after-load`,
//! see `landing::keys`), as the consumer's watchers build them: once the snapshot has
//! landed, before a followed run's changes and before `--exit-when-done` exits.

/// Builds the primary keys of `run`'s tables that wait for its snapshot; true once none
/// is left waiting. A failure is logged and tried again at the next tick.
pub(crate) async fn build_keys(client: &mut tokio_postgres::Client, run: &str) -> bool {
    match landing::keys::build_pending(client, run).await {
        Ok(built) => {
            for key in built {
                tracing::info!(table = %key.table, seconds = key.seconds.unwrap_or_default(),
                    duplicates = key.duplicates, "built the primary key after the load");
                if key.duplicates > 0 {
                    tracing::warn!(table = %key.table, documents = key.duplicates,
                        "documents published twice had landed twice before the key was built; each is kept once (counted as already landed)");
                }
            }
            true
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot build the primary keys yet; will retry");
            false
        }
    }
}
