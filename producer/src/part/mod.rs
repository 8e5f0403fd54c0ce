//! Publishing one part of a collection (the whole of it, or one `_id` range): documents
//! from the pager become batches, batches become messages, and each acknowledged
//! message moves the part's checkpoint. The batch being filled is in [`batches`].

use std::time::{Duration, Instant};

use bson::{Bson, RawDocumentBuf};
use common::batch::BatchLimits;
use common::run_state::Checkpoint;

mod batches;

use batches::Batches;

use crate::context::RunContext;
use crate::error::ProducerError;
use crate::publisher::Publisher;
use crate::read_ahead::{ReadAhead, Reader};
use crate::retry::{pause, ATTEMPTS};
use source::pager::Pager;
use source::ranges::{self, Range, RangePager};
use source::{mongo_detail, ReadFailure, SourceError};

/// How often a progress line is logged while a collection is published.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What was published of one collection, over the whole run (a resumed run included).
#[derive(Debug, Clone)]
pub struct CollectionSummary {
    /// The collection.
    pub name: String,
    /// Documents published, over the whole run.
    pub documents: u64,
    /// Batches published, over the whole run.
    pub batches: u64,
    /// Bytes of documents published, over the whole run.
    pub bytes: u64,
    /// Batches the stream already held (a rerun within the duplicate window).
    pub duplicates: u64,
    /// Whether this run picked up a checkpoint left by an earlier one.
    pub resumed: bool,
}

/// What one publishing pass reads: the whole collection, or one of its ranges.
pub(crate) enum Part {
    Whole,
    Range(Box<Range>),
}

/// Publishes one part of `name` (the whole collection, or one range) after its
/// checkpoint.
pub(crate) async fn publish_part(
    ctx: &RunContext,
    name: &str,
    part: Part,
    estimated: u64,
) -> Result<CollectionSummary, ProducerError> {
    let opened = open_part(ctx, name, part, estimated).await?;
    read_part(ctx, name, opened, estimated)
        .await?
        .finish()
        .await
}

/// A part whose reading has begun: its checkpoint read, its first replies on their
/// way from MongoDB.
pub(crate) enum OpenedPart {
    /// Complete already (an earlier producer's checkpoint says so).
    Complete(CollectionSummary),
    /// Being read after its checkpoint.
    Reading(Box<Opened>),
}

impl OpenedPart {
    /// Resolves once the part's last reply is being read from MongoDB, or read (see
    /// [`ReadAhead::nearly_read`]); at once for a complete part.
    pub(crate) fn nearly_read(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        match self {
            OpenedPart::Complete(_) => None,
            OpenedPart::Reading(opened) => opened.reader.nearly_read(),
        }
    }
}

/// What [`read_part`] goes on with.
pub(crate) struct Opened {
    part: Part,
    key: String,
    checkpoint: Checkpoint,
    last_id: Option<Bson>,
    reader: ReadAhead,
}

/// Reads the part's checkpoint and starts reading after it. A range reader opens its
/// next range so while MongoDB reads the current one's last reply: MongoDB reads on
/// while the reader turns from one range to the next. `expected`: how many documents
/// the part likely holds (the collection's estimate over its ranges).
pub(crate) async fn open_part(
    ctx: &RunContext,
    name: &str,
    part: Part,
    expected: u64,
) -> Result<OpenedPart, ProducerError> {
    // A range is checkpointed under its own name; the collection under its own.
    let key = match &part {
        Part::Whole => name.to_string(),
        Part::Range(range) => common::naming::range_part(name, range.index),
    };
    let checkpoint = ctx.state.checkpoint(&key).await?.unwrap_or_default();
    if checkpoint.complete {
        return Ok(OpenedPart::Complete(summary(name, &checkpoint, 0, true)));
    }
    let bad = |detail: String| ProducerError::BadCheckpoint {
        collection: name.to_string(),
        detail,
    };
    let exact = checkpoint
        .last_id_bson
        .as_deref()
        .map(ranges::decode)
        .transpose()
        .map_err(|err| bad(err.to_string()))?;
    let last_id = match (&checkpoint.last_id, exact) {
        (_, Some(exact)) => Some(exact),
        (Some(json), None) => Some(Bson::try_from(json.clone()).map_err(|e| bad(e.to_string()))?),
        (None, None) => None,
    };
    let left = expected.saturating_sub(checkpoint.documents);
    let reader = start_reader(ctx, name, &part, last_id.as_ref(), left);
    Ok(OpenedPart::Reading(Box::new(Opened {
        part,
        key,
        checkpoint,
        last_id,
        reader,
    })))
}

/// Reading `part` of `name` after `last` (from its start with `None`), a reply ahead.
/// A range is said nearly read once the documents read leave less than one reply of
/// the `left` it likely holds: its next reply is then likely its last. A guess only
/// decides when the next range is claimed (a range larger than planned holds two
/// ranges a while longer; a smaller one is told at its end, as a whole collection).
fn start_reader(
    ctx: &RunContext,
    name: &str,
    part: &Part,
    last: Option<&Bson>,
    left: u64,
) -> ReadAhead {
    let filter = ctx.filters.get(name).cloned();
    // Four batches per round trip to MongoDB: few round trips, and memory that does not
    // depend on the collection.
    let cursor_batch =
        u32::try_from(ctx.config.batch_size.get().saturating_mul(4)).unwrap_or(u32::MAX);
    let source = ctx.source.collection::<RawDocumentBuf>(name);
    let nearly_after = match part {
        Part::Whole => None,
        Part::Range(_) => Some(left.saturating_sub(u64::from(cursor_batch))),
    };
    let reader = match part {
        Part::Whole => Reader::Whole(Box::new(
            Pager::new(source, last, filter, cursor_batch).as_of(ctx.as_of),
        )),
        Part::Range(range) => Reader::Range(Box::new(
            RangePager::new(
                source,
                (**range).clone(),
                last.cloned(),
                filter,
                cursor_batch,
            )
            .as_of(ctx.as_of),
        )),
    };
    ReadAhead::start(reader, nearly_after)
}

/// A part read and sent whole, its last acknowledgements still awaited.
///
/// A range reader starts its next range meanwhile: waiting for them first left
/// MongoDB idle at the end of every range (about 20 ms a range, a tenth of one
/// reader's rate with ranges of 100,000 documents).
pub(crate) enum SentPart {
    /// Complete already (an earlier producer's checkpoint says so).
    Complete(CollectionSummary),
    /// Sent; its last acknowledgements are awaited by [`SentPart::finish`].
    Sent(Box<Unacknowledged>),
}

/// What finishing a sent part needs.
pub(crate) struct Unacknowledged {
    publisher: Publisher,
    progress: Checkpoint,
    progress_bar: Option<indicatif::ProgressBar>,
    state: common::run_state::RunState,
    key: String,
    name: String,
    resumed: bool,
}

impl SentPart {
    /// Waits for every batch to be acknowledged, then marks the part complete.
    pub(crate) async fn finish(self) -> Result<CollectionSummary, ProducerError> {
        let part = match self {
            SentPart::Complete(summary) => return Ok(summary),
            SentPart::Sent(part) => *part,
        };
        let published = part.publisher.finish().await?;
        if let Some(bar) = &part.progress_bar {
            bar.finish_and_clear();
        }
        let mut progress = part.progress;
        progress.complete = true;
        part.state.save_checkpoint(&part.key, &progress).await?;
        Ok(summary(
            &part.name,
            &progress,
            published.duplicates,
            part.resumed,
        ))
    }
}

/// Reads one part and sends its batches; [`SentPart::finish`] waits for them.
pub(crate) async fn read_part(
    ctx: &RunContext,
    name: &str,
    opened: OpenedPart,
    estimated: u64,
) -> Result<SentPart, ProducerError> {
    let RunContext {
        broker,
        state,
        config,
        shutdown,
        metrics,
        throttle,
        ..
    } = ctx;
    let Opened {
        part,
        key,
        checkpoint,
        last_id,
        mut reader,
    } = match opened {
        OpenedPart::Complete(summary) => return Ok(SentPart::Complete(summary)),
        OpenedPart::Reading(opened) => *opened,
    };
    let run = config.run.run.as_str();
    let resumed = checkpoint.batches > 0;
    if resumed {
        tracing::info!(collection = %name, part = %key, batches = checkpoint.batches, documents = checkpoint.documents,
            "resuming from the checkpoint of an earlier producer of this run");
    }
    let ranged = matches!(part, Part::Range(_));

    let limits = BatchLimits::new(config.batch_size.get(), broker.max_payload(), run, name);
    let publisher = Publisher::new(
        broker.jetstream.clone(),
        state.clone(),
        broker.names.batch_subject(&config.run.run, name),
        key.clone(),
        config.max_in_flight.get(),
        shutdown.clone(),
        metrics.clone(),
    );
    // Ranges read at once would draw over each other: they log instead.
    let progress_bar = if ranged {
        None
    } else {
        crate::progress::bar(name, estimated)
    };
    let progress = Checkpoint {
        complete: false,
        ..checkpoint
    };
    let mut batches = Batches::new(
        broker,
        (run, name),
        (limits, config.compression),
        publisher,
        progress,
        metrics,
    );
    batches.progress_bar = progress_bar;
    let mut read_failures = 0;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let start_documents = batches.progress.documents;

    loop {
        if shutdown.is_cancelled() {
            // Keep what was sent: wait for its acknowledgements so the checkpoint is exact.
            batches.publisher.finish().await?;
            return Err(ProducerError::Interrupted);
        }
        let next = match reader.next().await {
            Ok(next) => next,
            // A replica set electing a new primary, a network blip: read again after
            // the last document taken (it is in the batch being filled, or published).
            Err(e) if source::error::is_transient(&e) && read_failures < ATTEMPTS => {
                read_failures += 1;
                tracing::warn!(collection = %name, attempt = read_failures, error = %mongo_detail(&e),
                    "reading MongoDB failed; reading again after the last document read");
                // A stop asked meanwhile is taken at the top of the loop.
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(pause(read_failures)) => {}
                }
                let after = batches.last_read().or_else(|| last_id.clone());
                let left = estimated.saturating_sub(batches.progress.documents);
                reader = start_reader(ctx, name, &part, after.as_ref(), left);
                continue;
            }
            Err(e) => {
                return Err(SourceError::Read {
                    collection: name.to_string(),
                    detail: match reader.describe() {
                        None => mongo_detail(&e),
                        Some(range) => format!("{range}: {}", mongo_detail(&e)),
                    },
                    failure: ReadFailure::of(&e),
                }
                .into())
            }
        };
        let Some(mut reply) = next else { break };
        read_failures = 0;
        while let Some(document) = reply.next_document() {
            throttle.read(document.as_bytes().len()).await;
            batches.add(document).await?;
        }
        if batches.progress_bar.is_none() && last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let done = batches.progress.documents;
            let rate = (done - start_documents) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(collection = %name, documents = done, estimated, docs_per_sec = rate as u64, "publishing");
        }
    }
    batches.flush().await?;
    // An empty collection still gets its table: one batch of no documents, which the
    // consumers land as such (and count like any other).
    let whole = match &part {
        Part::Whole => true,
        Part::Range(range) => range.min.is_none() && range.max.is_none(),
    };
    if whole && batches.progress.batches == 0 {
        batches.flush_empty().await?;
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let span = tracing::Span::current();
    span.record("documents", batches.progress.documents);
    span.record(
        "docs_per_sec",
        ((batches.progress.documents - start_documents) as f64 / seconds) as u64,
    );
    Ok(SentPart::Sent(Box::new(Unacknowledged {
        publisher: batches.publisher,
        progress: batches.progress,
        progress_bar: batches.progress_bar,
        state: state.clone(),
        key,
        name: name.to_string(),
        resumed,
    })))
}

pub(crate) fn summary(
    name: &str,
    progress: &Checkpoint,
    duplicates: u64,
    resumed: bool,
) -> CollectionSummary {
    CollectionSummary {
        name: name.to_string(),
        documents: progress.documents,
        batches: progress.batches,
        bytes: progress.bytes,
        duplicates,
        resumed,
    }
}
