//! Publishing one collection: in `_id` ranges shared by every producer of the run
//! ([`crate::range_readers`]), or in one pass when it is too small to split; either
//! way, part by part ([`crate::part`]), each under its own checkpoint.

use crate::context::RunContext;
use crate::error::ProducerError;
use crate::part::{publish_part, summary, CollectionSummary, Part};

/// Publishes the documents of `name` after its checkpoint: in the run's `_id` ranges
/// (planned now by the first producer to reach it), or in one pass when the plan is
/// one range.
pub(crate) async fn publish_collection(
    ctx: &RunContext,
    name: &str,
    estimated: u64,
) -> Result<CollectionSummary, ProducerError> {
    let checkpoint = ctx.state.checkpoint(name).await?;
    if let Some(done) = checkpoint.as_ref().filter(|c| c.complete) {
        tracing::info!(collection = %name, documents = done.documents, batches = done.batches,
            "already published by an earlier producer of this run; skipping (use --restart to publish again)");
        return Ok(summary(name, done, 0, true));
    }
    // A pass begun over the whole collection (by a build that read one-reader runs so)
    // goes on from its checkpoint: its batches would not be the ranges' batches.
    if checkpoint.is_some_and(|c| c.batches > 0) {
        return publish_part(ctx, name, Part::Whole, estimated).await;
    }
    let ranges = crate::ranges::ranges(
        &ctx.source.collection(name),
        &ctx.state,
        ctx.config.readers.get(),
        ctx.config.range_docs.get(),
        ctx.config.planner,
        estimated,
    )
    .await?;
    if ranges.len() == 1 {
        // One range, read in one pass: shown as one range all the same.
        ctx.metrics.ranges(name, 1, 0);
        ctx.metrics.reading_range(name, true);
        let published = publish_part(ctx, name, Part::Whole, estimated).await;
        ctx.metrics.reading_range(name, false);
        ctx.metrics.ranges(name, 1, u64::from(published.is_ok()));
        return published;
    }
    crate::range_readers::publish_ranges(ctx, name, ranges, estimated).await
}
