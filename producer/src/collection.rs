//! Publishing one collection: in one pass with one reader, or in `_id` ranges read at
//! once with `--readers` ([`crate::range_readers`]); either way, part by part
//! ([`crate::part`]), each under its own checkpoint.

use crate::context::RunContext;
use crate::error::ProducerError;
use crate::part::{publish_part, summary, CollectionSummary, Part};

/// Publishes the documents of `name` after its checkpoint: with one reader, in one
/// pass over the collection; with `--readers N`, in `_id` ranges read at once.
pub(crate) async fn publish_collection(
    ctx: &RunContext,
    name: &str,
    estimated: u64,
) -> Result<CollectionSummary, ProducerError> {
    if let Some(done) = ctx.state.checkpoint(name).await?.filter(|c| c.complete) {
        tracing::info!(collection = %name, documents = done.documents, batches = done.batches,
            "already published by an earlier producer of this run; skipping (use --restart to publish again)");
        return Ok(summary(name, &done, 0, true));
    }
    if ctx.config.readers.get() > 1 {
        return crate::range_readers::publish_ranges(ctx, name, estimated).await;
    }
    publish_part(ctx, name, Part::Whole, estimated).await
}
