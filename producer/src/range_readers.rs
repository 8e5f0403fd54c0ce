//! Reading one collection's `_id` ranges with `--readers` tasks, shared with the run's
//! other producer processes through leases ([`crate::lease`]); each range is published
//! like a whole collection ([`crate::part`]), under its own checkpoint.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::run_state::Checkpoint;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use crate::context::RunContext;
use crate::error::ProducerError;
use crate::part::{open_part, read_part, summary, CollectionSummary, OpenedPart, Part};
use crate::{lease, retry};
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
        complete: Mutex::new(HashSet::new()),
        holder: lease::holder_id(),
        per_range: estimated / count.max(1) as u64,
    });
    // A reader that fails stops the others: the run ends with its error.
    let stop = ctx.shutdown.child_token();
    let mut tasks = JoinSet::new();
    for _ in 0..readers {
        let reader = RunContext {
            shutdown: stop.clone(),
            ..ctx.clone()
        };
        let (shared, stop, name) = (shared.clone(), stop.clone(), name.to_string());
        tasks.spawn(
            async move {
                let read = read_ranges(&reader, &name, &shared).await;
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
    /// Ranges known complete (a complete range stays so): not looked up again, so a
    /// claim reads the checkpoints of the ranges left only.
    complete: Mutex<HashSet<usize>>,
    holder: String,
    /// How many documents a range likely holds: the collection's estimate over its
    /// ranges.
    per_range: u64,
}

impl RangeWork {
    fn is_complete(&self, index: usize) -> bool {
        self.complete.lock().is_ok_and(|done| done.contains(&index))
    }

    fn completed(&self, index: usize) {
        if let Ok(mut done) = self.complete.lock() {
            done.insert(index);
        }
    }

    fn complete_count(&self) -> u64 {
        self.complete.lock().map_or(0, |done| done.len() as u64)
    }
}

/// How long a reader waits before looking again for a range to claim, while every
/// range left is leased by another producer.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// One reader: claims and publishes ranges until all are complete, or `ctx.shutdown`.
async fn read_ranges(
    ctx: &RunContext,
    name: &str,
    work: &RangeWork,
) -> Result<Vec<CollectionSummary>, ProducerError> {
    let mut turn = Turn::default();
    let read = claim_and_read(ctx, name, work, &mut turn).await;
    // What reading stopped in the middle of (an error) is ended all the same: a range
    // still being acknowledged is waited for, a range opened ahead is given back. The
    // first error is the one told.
    if let Some(pending) = turn.finishing {
        let _ = settle(pending, work, &ctx.shutdown, &mut Vec::new()).await;
    }
    if let Some(ahead) = turn.ahead {
        ahead.give_back(work).await;
    }
    read
}

/// The ranges a reader holds besides the one it reads: the one before, still being
/// acknowledged, and the one after, opened ahead.
#[derive(Default)]
struct Turn {
    finishing: Option<Finishing>,
    ahead: Option<Claimed>,
}

/// A range this reader holds the lease of, its reading begun.
struct Claimed {
    index: usize,
    held: lease::Held,
    /// Its context: stopped when the lease is lost.
    ctx: RunContext,
    opened: OpenedPart,
}

impl Claimed {
    /// Releases the range unread (its lease, and this process's claim).
    async fn give_back(self, work: &RangeWork) {
        self.held.release().await;
        release(work, self.index);
    }
}

/// Claims and opens the next range to read: `None` when none can be claimed now, with
/// how many ranges are left (not complete; counted only then).
async fn claim_next(
    ctx: &RunContext,
    name: &str,
    work: &RangeWork,
) -> Result<(Option<Claimed>, u64), ProducerError> {
    let (state, stop) = (&ctx.state, &ctx.shutdown);
    let mut left = 0;
    let mut claimed = None;
    for range in &work.ranges {
        if work.is_complete(range.index) {
            continue;
        }
        let key = common::naming::range_part(name, range.index);
        let checkpoint = retry::with_retries("reading a range's checkpoint", stop, || {
            state.checkpoint(&key)
        })
        .await?;
        if checkpoint.is_some_and(|c| c.complete) {
            work.completed(range.index);
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
                release(work, range.index);
                other?;
            }
        }
    }
    let total = work.ranges.len() as u64;
    ctx.metrics.ranges(name, total, work.complete_count());
    let Some((range, held, lost)) = claimed else {
        return Ok((None, left));
    };
    let index = range.index;
    let range_ctx = RunContext {
        shutdown: lost,
        ..ctx.clone()
    };
    match open_part(
        &range_ctx,
        name,
        Part::Range(Box::new(range)),
        work.per_range,
    )
    .await
    {
        Ok(opened) => Ok((
            Some(Claimed {
                index,
                held,
                ctx: range_ctx,
                opened,
            }),
            left,
        )),
        Err(err) => {
            held.release().await;
            release(work, index);
            Err(err)
        }
    }
}

/// Claims ranges one after the other and reads each. The range before is acknowledged
/// while the next is read, and the range after is claimed and opened while this one's
/// last reply is read: at the turn from one range to the next, MongoDB has the next
/// range's replies to read and the stream the last range's batches to acknowledge.
async fn claim_and_read(
    ctx: &RunContext,
    name: &str,
    work: &RangeWork,
    turn: &mut Turn,
) -> Result<Vec<CollectionSummary>, ProducerError> {
    let stop = &ctx.shutdown;
    let mut published = Vec::new();
    loop {
        let current = match turn.ahead.take() {
            Some(ahead) => ahead,
            None => match claim_next(ctx, name, work).await? {
                (Some(claimed), _) => claimed,
                (None, left) => {
                    // The range still being acknowledged counts as left: settle it first.
                    if let Some(pending) = turn.finishing.take() {
                        settle(pending, work, stop, &mut published).await?;
                        continue;
                    }
                    if left == 0 {
                        return Ok(published);
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return Err(ProducerError::Interrupted),
                        _ = tokio::time::sleep(CLAIM_RETRY) => continue,
                    }
                }
            },
        };
        let Claimed {
            index,
            held,
            ctx: range_ctx,
            mut opened,
        } = current;
        // Once this range's last reply is likely the one MongoDB is reading (by the
        // documents read against the range's estimate), or is read, the next range is
        // claimed and opened while its last replies are read and published: the claim
        // (a lease written in NATS) and the next cursor's opening no longer leave
        // MongoDB idle at each turn. Not before: a reader holding two ranges for long
        // leaves another producer without one.
        let nearly_read = opened.nearly_read();
        let claim_ahead = async {
            if let Some(read) = nearly_read {
                let _ = read.await;
            }
            claim_next(ctx, name, work).await
        };
        ctx.metrics.reading_range(name, true);
        let (read, ahead) = tokio::join!(
            read_part(&range_ctx, name, opened, work.per_range),
            claim_ahead
        );
        ctx.metrics.reading_range(name, false);
        match ahead {
            Ok((ahead, _)) => turn.ahead = ahead,
            Err(err) => {
                if let Ok(sent) = read {
                    // Sent whole: wait for it before telling the error.
                    let _ = sent.finish().await;
                }
                held.release().await;
                release(work, index);
                return Err(err);
            }
        }
        // The range before this one has had this range's reading to be acknowledged.
        if let Some(pending) = turn.finishing.take() {
            settle(pending, work, stop, &mut published).await?;
        }
        match read {
            // Its acknowledgements are awaited while the next range is read; its lease
            // is held until then.
            Ok(sent) => {
                turn.finishing = Some(Finishing {
                    index,
                    task: tokio::spawn(async move {
                        let finished = sent.finish().await;
                        let lost_lease = held.is_lost();
                        held.release().await;
                        (finished, lost_lease)
                    }),
                });
            }
            Err(err) => {
                let lost_lease = held.is_lost();
                held.release().await;
                release(work, index);
                match err {
                    // Another producer has the range now: look for another.
                    ProducerError::Interrupted if lost_lease && !stop.is_cancelled() => {}
                    err => return Err(err),
                }
            }
        }
    }
}

/// A range read and sent, whose acknowledgements a task awaits.
struct Finishing {
    index: usize,
    task: JoinHandle<(Result<CollectionSummary, ProducerError>, bool)>,
}

/// Waits for a range's acknowledgements and its checkpoint marked complete.
async fn settle(
    pending: Finishing,
    work: &RangeWork,
    stop: &tokio_util::sync::CancellationToken,
    published: &mut Vec<CollectionSummary>,
) -> Result<(), ProducerError> {
    let joined = pending.task.await;
    release(work, pending.index);
    match joined {
        Ok((Ok(summary), _)) => {
            work.completed(pending.index);
            published.push(summary);
            Ok(())
        }
        // Another producer has the range now; it finishes it.
        Ok((Err(ProducerError::Interrupted), true)) if !stop.is_cancelled() => Ok(()),
        Ok((Err(err), _)) => Err(err),
        Err(err) => Err(ProducerError::Checkpointer(err)),
    }
}

/// The range is no longer this process's to read.
fn release(work: &RangeWork, index: usize) {
    if let Ok(mut taken) = work.taken.lock() {
        taken.remove(&index);
    }
}
