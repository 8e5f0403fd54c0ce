//! The primary keys of a run's tables that wait for its snapshot (`--key-after-load`,
//! see `landing::keys`), as the consumer's watchers build them: each collection's as
//! soon as its own snapshot has landed, while the run's other collections still load;
//! every one left once the whole snapshot has landed, before a followed run's changes
//! and before `--exit-when-done` exits.

use std::collections::{BTreeSet, HashMap};

use common::run_state::RunManifest;
use landing::keys::Key;
use landing::ledger::accounted_batches;

/// Builds the primary keys of `run`'s tables that wait for its snapshot; true once none
/// is left waiting. A failure is logged and tried again at the next tick.
pub(crate) async fn build_keys(client: &mut tokio_postgres::Client, run: &str) -> bool {
    match landing::keys::build_pending(client, run).await {
        Ok(built) => {
            log_built(&built);
            true
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot build the primary keys yet; will retry");
            false
        }
    }
}

/// The collections whose keys a consumer builds before the run's end: those whose own
/// snapshot has landed, each taken once.
///
/// Why: built at the run's end, every table's key waits for the last collection to
/// land, and the builds (four at most at once) make the run's tail; built as each
/// collection lands, they overlap the loading of the others, and the tail is the last
/// collection's key alone.
#[derive(Debug, Default)]
pub(crate) struct LandedCollections {
    /// Collections whose keys this consumer built, or found built or being built.
    taken: BTreeSet<String>,
}

impl LandedCollections {
    /// Builds the keys of the collections of `manifest` that have landed since the last
    /// call. Asks PostgreSQL nothing until the producer has marked a collection not yet
    /// taken as published. A build that fails is left for [`build_keys`] at the run's
    /// end, so a failing table does not make a build every look.
    pub(crate) async fn build(
        &mut self,
        client: &mut tokio_postgres::Client,
        run: &str,
        manifest: &RunManifest,
    ) {
        if !self.published_untaken(manifest) {
            return;
        }
        let accounted = match accounted_batches(client, run).await {
            Ok(accounted) => accounted,
            Err(err) => {
                tracing::debug!(error = %err, "cannot count the landed batches; will retry");
                return;
            }
        };
        let landed = self.landed(manifest, &accounted);
        if landed.is_empty() {
            return;
        }
        let names: Vec<&str> = landed.iter().map(String::as_str).collect();
        match landing::keys::build_landed(client, run, &names).await {
            Ok(built) => log_built(&built),
            Err(err) => tracing::warn!(error = %err,
                "cannot build the primary key of a landed collection yet; it is built at the run's end"),
        }
        self.taken.extend(landed);
    }

    /// Whether the producer has published the whole of a collection not yet taken:
    /// only then is there something to ask PostgreSQL.
    pub(crate) fn published_untaken(&self, manifest: &RunManifest) -> bool {
        manifest
            .collections
            .iter()
            .any(|(name, totals)| totals.complete && !self.taken.contains(name))
    }

    /// The collections not yet taken whose every published batch is landed or
    /// dead-lettered. The counts may include batches of an earlier publication of the
    /// run (a `--restart`): a key built while batches of this one still land only makes
    /// them land against it, as a key kept during the load does.
    fn landed(&self, manifest: &RunManifest, accounted: &HashMap<String, u64>) -> Vec<String> {
        manifest
            .collections
            .iter()
            .filter(|(name, totals)| {
                totals.complete
                    && !self.taken.contains(*name)
                    && accounted.get(*name).copied().unwrap_or(0) >= totals.batches
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

fn log_built(built: &[Key]) {
    for key in built {
        tracing::info!(table = %key.table, seconds = key.seconds.unwrap_or_default(),
            duplicates = key.duplicates, "built the primary key after the load");
        if key.duplicates > 0 {
            tracing::warn!(table = %key.table, documents = key.duplicates,
                "documents published twice had landed twice before the key was built; each is kept once (counted as already landed)");
        }
    }
}

#[cfg(test)]
mod tests {
    use common::run_state::CollectionTotals;

    use super::*;

    fn manifest(collections: &[(&str, u64, bool)]) -> RunManifest {
        let mut manifest = RunManifest::default();
        for &(name, batches, complete) in collections {
            manifest.collections.insert(
                name.to_string(),
                CollectionTotals {
                    batches,
                    complete,
                    ..CollectionTotals::default()
                },
            );
        }
        manifest
    }

    #[test]
    fn a_collection_lands_once_published_and_every_batch_accounted_for() {
        let manifest = manifest(&[("orders", 3, true), ("users", 5, false), ("items", 2, true)]);
        let accounted = HashMap::from([
            ("orders".to_string(), 3),
            ("users".to_string(), 5),
            ("items".to_string(), 1),
        ]);
        let mut landed = LandedCollections::default();
        assert!(landed.published_untaken(&manifest));
        // users is still publishing (its count is a floor); items has a batch to land.
        assert_eq!(landed.landed(&manifest, &accounted), vec!["orders"]);
        landed.taken.insert("orders".to_string());
        assert!(landed.landed(&manifest, &accounted).is_empty());
        // items is published and not taken: PostgreSQL is asked again.
        assert!(landed.published_untaken(&manifest));
        landed.taken.insert("items".to_string());
        assert!(!landed.published_untaken(&manifest));
    }
}
