//! The collections a followed run takes ([`Known`]): those it started with, those of a
//! whole-database run created since that its patterns choose, and those renamed onto a
//! chosen name, whose documents are read when the rename is met ([`adopt`]).

use std::collections::HashSet;
use tokio_util::sync::CancellationToken;

use bson::RawDocumentBuf;
use common::batch::ChangeOp;
use common::run_state::{
    ClusterTime, CollectionTotals, RunState, SelectionPatterns, StreamCheckpoint,
};
use futures::TryStreamExt;
use source::change::Event;
use source::{mongo_detail, Source};

use super::batches::ChangeBatches;
use super::start::Scope;
use crate::context::RunContext;
use crate::error::ProducerError;

/// Makes a collection renamed onto a chosen name part of the run: its documents never
/// passed through the stream, so they are read now and published as its inserts at
/// the rename's cluster time. Every change after the rename follows in the stream with
/// a later version and wins over what this read, so reading after the rename (rather
/// than at it) changes nothing; read again after a restart, the same versions land
/// once.
pub(super) async fn adopt(
    mongo: &Source,
    batches: &mut ChangeBatches<'_>,
    checkpoint: &mut StreamCheckpoint,
    followed: &mut Known<'_>,
    collection: &str,
    at: ClusterTime,
    state: &RunState,
) -> Result<(), ProducerError> {
    followed.names.insert(collection.to_string());
    followed.joined(collection, state).await?;
    let failed = |e: mongodb::error::Error| ProducerError::Follow {
        detail: format!(
            "reading {collection:?}, renamed onto a chosen name: {}",
            mongo_detail(&e)
        ),
    };
    let mut cursor = mongo
        .collection::<RawDocumentBuf>(collection)
        .find(bson::doc! {})
        .sort(bson::doc! { "_id": 1 })
        .await
        .map_err(failed)?;
    let mut documents = 0u64;
    while let Some(document) = cursor.try_next().await.map_err(failed)? {
        batches
            .add(Event::Change {
                collection: collection.to_string(),
                op: ChangeOp::Insert,
                document: Some(document),
                reread: None,
                cluster_time: at,
            })
            .await?;
        documents += 1;
        if batches.is_full() {
            batches.flush(checkpoint, None).await?;
        }
    }
    tracing::info!(
        collection,
        documents,
        "a collection renamed onto a chosen name joined the run: its documents were read and published"
    );
    Ok(())
}

/// The collections a run of the whole database follows: those it started with, and
/// those created since that its patterns choose (added to the run's manifest as they
/// are first seen, so the run never lacks them).
pub(super) struct Known<'a> {
    source: &'a Source,
    scope: &'a Scope,
    selection: source::Selection,
    pub(super) names: HashSet<String>,
    /// The producer's stop: the manifest's updates are not retried once it is asked.
    stop: &'a CancellationToken,
}

impl<'a> Known<'a> {
    pub(super) fn new(
        ctx: &'a RunContext,
        collections: &[String],
        scope: &'a Scope,
    ) -> Result<Self, ProducerError> {
        Ok(Known {
            source: &ctx.source,
            scope,
            selection: source::Selection::new(SelectionPatterns {
                include: ctx.config.include.clone(),
                exclude: ctx.config.exclude.clone(),
            })?,
            names: collections.iter().cloned().collect(),
            stop: &ctx.shutdown,
        })
    }

    pub(super) fn chosen(&self, collection: &str) -> bool {
        !collection.starts_with("system.")
            && self.selection.verdict_on(self.source, collection).is_ok()
    }

    /// Whether a change of `collection` is the run's; a collection seen for the first
    /// time and chosen joins the run.
    pub(super) async fn takes(
        &mut self,
        collection: &str,
        state: &RunState,
    ) -> Result<bool, ProducerError> {
        if self.names.contains(collection) {
            return Ok(true);
        }
        if *self.scope != Scope::Database || !self.chosen(collection) {
            return Ok(false);
        }
        self.joined(collection, state).await?;
        tracing::info!(collection, "a collection created after the run started: its changes are followed (every document it holds was written since)");
        self.names.insert(collection.to_string());
        Ok(true)
    }

    /// Records in the run's manifest a collection that joined it while followed.
    async fn joined(&self, collection: &str, state: &RunState) -> Result<(), ProducerError> {
        crate::update_manifest(state, self.stop, |manifest| {
            manifest
                .collections
                .entry(collection.to_string())
                .or_insert_with(|| CollectionTotals {
                    complete: true,
                    ..CollectionTotals::default()
                });
            manifest.dropped.remove(collection);
        })
        .await?;
        Ok(())
    }

    /// Whether an event ending changes concerns none of the run's collections.
    pub(super) fn passes(
        &self,
        collection: Option<&str>,
        renamed_to: Option<&str>,
        operation: &str,
    ) -> bool {
        if *self.scope != Scope::Database {
            return false;
        }
        match (operation, collection) {
            ("drop" | "rename", Some(from)) => {
                !self.names.contains(from) && !renamed_to.is_some_and(|to| self.chosen(to))
            }
            _ => false,
        }
    }

    /// Records a followed collection gone from MongoDB (dropped, or renamed away), and
    /// why: its table keeps its rows.
    pub(super) async fn gone(
        &mut self,
        collection: &str,
        why: String,
        state: &RunState,
    ) -> Result<(), ProducerError> {
        crate::update_manifest(state, self.stop, |manifest| {
            manifest.dropped.insert(collection.to_string(), why.clone());
        })
        .await?;
        tracing::warn!(collection, why, "a followed collection is gone from MongoDB; its table keeps the rows it had, and the run goes on");
        self.names.remove(collection);
        Ok(())
    }
}
