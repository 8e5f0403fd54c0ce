//! Reading one collection's `_id` ranges with `--readers` tasks, shared with the run's
//! other producer processes through leases ([`crate::lease`]); each range is published
//! like a whole collection ([`crate::part`]), under its own checkpoint.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::run_state::Checkpoint;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::context::RunContext;
use crate::error::ProducerError;
use crate::lease;
use crate::part::{publish_part, summary, CollectionSummary, Part};
use source::ranges::Range;

/// Publishes the collection's `ranges` with `--readers` tasks. Each task claims a
/// range not yet complete and not leased by another producer (of this process or
/// another), reads it from its checkpoint, and takes the next, until every range is
/// complete: ranges leased elsewhere are waited for, and taken over if their lease
/// expires. Then the collection's checkpoint holds the ranges' totals, complete.
pub(crate) async fn publish_ranges(
    ctx: &RunContext,
    name: &str,
    ranges: Vec<Range>,
    estimated: u64,
) -> Result<CollectionSummary, ProducerError> {
    let readers = ctx.config.readers.get();
    let count = ranges.len();
    // No more readers than ranges: a reader without a range has nothing to do, and a
    // huge --readers spawned a task each (1.6 GB in 12 s, deaf to SIGTERM).
    let readers = readers.min(count.max(1));
    tracing::info!(collection = %name, ranges = count, readers, "reading the collection in _id ranges");
    let shared = Arc::new(RangeWork {
        ranges,
        taken: Mutex::new(HashSet::new()),
        holder: lease::holder_id(),
    });
    // A reader that fails stops the others: the run ends with its error.
    let stop = ctx.shutdown.child_token();
    let per_range = estimated / count.max(1) as u64;
    let mut tasks = JoinSet::new();
    for _ in 0..readers {
        let reader = RunContext {
            shutdown: stop.clone(),
            ..ctx.clone()
        };
        let (shared, stop, name) = (shared.clone(), stop.clone(), name.to_string());
        tasks.spawn(
            async move {
                let read = read_ranges(&reader, &name, &shared, per_range).await;
                if read.is_err() {
                    stop.cancel();
                }
                read
            }
            .instrument(tracing::Span::current()),
        );
    }
    let mut duplicates = 0;
    let mut resumed = false;
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(parts)) => {
                duplicates += parts.iter().map(|p| p.duplicates).sum::<u64>();
                resumed |= parts.iter().any(|p| p.resumed);
            }
            Ok(Err(err)) => {
                // The first real cause, not the interruptions it caused in the others.
                if failure.is_none() || matches!(failure, Some(ProducerError::Interrupted)) {
                    failure = Some(err);
                }
            }
            Err(err) => failure = Some(ProducerError::Checkpointer(err)),
        }
    }
    if let Some(err) = failure {
        return Err(err);
    }
    // Every range is complete, whoever read it: the totals are the ranges' own.
    let mut total = Checkpoint {
        complete: true,
        ..Checkpoint::default()
    };
    for index in 0..count {
        let part = ctx
            .state
            .checkpoint(&common::naming::range_part(name, index))
            .await?
            .unwrap_or_default();
        total.batches += part.batches;
        total.documents += part.documents;
        total.bytes += part.bytes;
    }
    ctx.state.save_checkpoint(name, &total).await?;
    Ok(summary(name, &total, duplicates, resumed))
}

/// The ranges of one collection and which of them this process's readers hold.
struct RangeWork {
    ranges: Vec<Range>,
    taken: Mutex<HashSet<usize>>,
    holder: String,
}

/// How long a reader waits before looking again for a range to claim, while every
/// range left is leased by another producer.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// One reader: claims and publishes ranges until all are complete, or `ctx.shutdown`.
async fn read_ranges(
    ctx: &RunContext,
    name: &str,
    work: &RangeWork,
    estimated: u64,
) -> Result<Vec<CollectionSummary>, ProducerError> {
    let (state, stop) = (&ctx.state, &ctx.shutdown);
    let mut published = Vec::new();
    loop {
        let mut left = 0;
        let mut claimed = None;
        for range in &work.ranges {
            let key = common::naming::range_part(name, range.index);
            if state.checkpoint(&key).await?.is_some_and(|c| c.complete) {
                continue;
            }
            left += 1;
            // Taken by another reader of this process (same holder): not ours to claim.
            let mine = work
                .taken
                .lock()
                .map(|mut taken| taken.insert(range.index))
                .unwrap_or(false);
            if !mine {
                continue;
            }
            let lost = stop.child_token();
            match lease::claim(state, name, range.index, &work.holder, lost.clone()).await {
                Ok(Some(held)) => {
                    claimed = Some((range.clone(), held, lost));
                    break;
                }
                other => {
                    if let Ok(mut taken) = work.taken.lock() {
                        taken.remove(&range.index);
                    }
                    other?;
                }
            }
        }
        let total = work.ranges.len() as u64;
        ctx.metrics.ranges(name, total, total - left);
        let Some((range, held, lost)) = claimed else {
            if left == 0 {
                return Ok(published);
            }
            tokio::select! {
                _ = stop.cancelled() => return Err(ProducerError::Interrupted),
                _ = tokio::time::sleep(CLAIM_RETRY) => continue,
            }
        };
        let index = range.index;
        let part = Part::Range(Box::new(range));
        let range_ctx = RunContext {
            shutdown: lost,
            ..ctx.clone()
        };
        ctx.metrics.reading_range(name, true);
        let result = publish_part(&range_ctx, name, part, estimated).await;
        ctx.metrics.reading_range(name, false);
        let lost_lease = held.is_lost();
        held.release().await;
        if let Ok(mut taken) = work.taken.lock() {
            taken.remove(&index);
        }
        match result {
            Ok(summary) => published.push(summary),
            // Another producer has the range now: look for another.
            Err(ProducerError::Interrupted) if lost_lease && !stop.is_cancelled() => {}
            Err(err) => return Err(err),
        }
    }
}
