//! Splitting a collection into `_id` ranges that several readers publish at once
//! (`--readers N`).
//!
//! **Planning** ([`Planner`]): `$sample` takes a hundred or so `_id`s per range wanted, the
//! server sorts them (in its canonical order, across BSON types) and every k-th becomes
//! a boundary; where it fails, the server's `splitVector` on the `_id` index where the
//! user may run it (boundaries of equal data size, but it walks the whole index);
//! otherwise, for `_id`s that are all numbers or all ObjectIds, evenly spaced values
//! between the smallest and the largest.
//! Any of them splits every type bracket in proportion to its size.
//! The producer records the plan once per run, so a rerun reads the same ranges its
//! checkpoints refer to.
//!
//! **Reading.** A range is read as bounds of the `_id` index (`min`/`max` with a
//! `hint`), which hold every BSON type between the boundaries: `{_id: {$gt: a, $lt: b}}`
//! would match only the type of `a` and `b` and silently skip the others. `min` is
//! inclusive, `max` exclusive, so consecutive ranges share no document and miss none; a
//! range resumed from its checkpoint starts at the last `_id` published and skips it.

use bson::{doc, Bson, Document, RawDocumentBuf};
use common::run_state::ClusterTime;
use futures::TryStreamExt;
use mongodb::options::Hint;
use mongodb::raw_batch_cursor::SessionRawBatchCursor;
use mongodb::{ClientSession, Collection};

use crate::error::{mongo_detail, ReadFailure, SourceError};
use crate::reply::{self, Reply};

/// Ranges per reader: more ranges than readers keeps every reader busy to the end when
/// ranges turn out uneven.
pub const RANGES_PER_READER: usize = 4;
/// `_id`s sampled per range wanted, up to [`SAMPLES_FLAT`] in all; never fewer than
/// [`SAMPLES_PER_RANGE_AT_LEAST`] per range.
const SAMPLES_PER_RANGE: usize = 128;
/// How many `_id`s a `$sample` takes for about the same time as a few dozen: its cost
/// is WiredTiger's random cursor, about 25 ms whether it returns 300 `_id`s or 3,000
/// (measured on 1,000,000 documents; 10,000 took twice as long).
const SAMPLES_FLAT: usize = 4_096;
/// `_id`s sampled per range at least, however many ranges.
const SAMPLES_PER_RANGE_AT_LEAST: usize = 32;

/// How many `_id`s to sample for `wanted` ranges: the more per range, the more even
/// the ranges (with 32 per range, ten ranges of 1,000,000 documents held 64,000 to
/// 126,000; with 128, 82,000 to 115,000), as long as the sample costs no more.
fn sample_size(wanted: usize) -> usize {
    (wanted * SAMPLES_PER_RANGE)
        .min(SAMPLES_FLAT)
        .max(wanted * SAMPLES_PER_RANGE_AT_LEAST)
}
/// A range holds at least this many documents (by the estimate); a smaller collection
/// gets fewer ranges, down to one.
const MIN_DOCS_PER_RANGE: u64 = 1000;

/// One range of a collection's `_id`s: from `min` (included; the start when `None`) to
/// `max` (excluded; the end when `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// Its place among the collection's ranges, from 0.
    pub index: usize,
    /// Its first `_id` (included); the collection's start when `None`.
    pub min: Option<Bson>,
    /// The next range's first `_id` (excluded); the collection's end when `None`.
    pub max: Option<Bson>,
}

/// How a collection's range boundaries are found (`--planner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Planner {
    /// `$sample`, then `splitVector` where it fails, then arithmetic. `$sample` first:
    /// it reads a hundred or so documents per range whatever the collection's size, where
    /// `splitVector` walks the whole `_id` index (0.4 s of the server's time for
    /// 1,000,000 documents, a third of reading them).
    Auto,
    /// The server's `splitVector` on the `_id` index: boundaries of equal data size.
    /// Needs the `splitVector` privilege (clusterManager, or a custom role).
    SplitVector,
    /// `$sample` of `_id`s, sorted by the server: boundaries of about equal counts.
    Sample,
    /// Evenly spaced values between the smallest and largest `_id`, for a collection
    /// whose `_id`s are all numbers or all ObjectIds (by their creation time).
    Arithmetic,
}

/// A collection's range boundaries and how they were found.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The `_id`s where ranges meet, in order; none for one range.
    pub boundaries: Vec<Bson>,
    /// How they were found (`splitVector`, `$sample`, `arithmetic`, `one range`).
    pub method: &'static str,
}

/// How many ranges a collection of about `estimated` documents is split into.
///
/// By its size first: a range of about `range_docs` documents, whoever plans it, so
/// that every producer of a run finds ranges to share, whatever its own `--readers`.
/// A planner with several readers asks for [`RANGES_PER_READER`] each at least, to
/// keep them all busy to the end. Never below [`MIN_DOCS_PER_RANGE`] documents per
/// range; a collection too small to split is one range.
pub fn ranges_wanted(readers: usize, estimated: u64, range_docs: u64) -> usize {
    let by_size = usize::try_from(estimated.div_ceil(range_docs.max(1))).unwrap_or(usize::MAX);
    let at_most = usize::try_from(estimated / MIN_DOCS_PER_RANGE).unwrap_or(usize::MAX);
    let for_readers = if readers > 1 {
        readers.saturating_mul(RANGES_PER_READER)
    } else {
        1
    };
    by_size.max(for_readers).min(at_most).max(1)
}

/// Splits the collection into [`ranges_wanted`] ranges.
pub async fn plan(
    collection: &Collection<Document>,
    readers: usize,
    range_docs: u64,
    planner: Planner,
    estimated: u64,
) -> Result<Plan, SourceError> {
    let wanted = ranges_wanted(readers, estimated, range_docs);
    let planned = |method: &'static str, boundaries: Vec<Bson>| Plan { boundaries, method };
    if wanted == 1 {
        return Ok(planned("one range", Vec::new()));
    }
    let failed = |doing: &str, e: mongodb::error::Error| SourceError::Read {
        collection: collection.name().to_string(),
        detail: format!("{doing} to plan ranges: {}", mongo_detail(&e)),
        failure: ReadFailure::of(&e),
    };
    if matches!(planner, Planner::Auto | Planner::Sample) {
        match sample(collection, wanted).await {
            Ok(ids) => return Ok(planned("$sample", ids)),
            Err(e) if planner == Planner::Sample => return Err(failed("sampling _ids", e)),
            Err(e) => tracing::info!(collection = %collection.name(), error = %mongo_detail(&e),
                "$sample is not available; planning ranges with splitVector"),
        }
    }
    if matches!(planner, Planner::Auto | Planner::SplitVector) {
        match split_vector(collection, wanted, estimated).await {
            Ok(ids) => return Ok(planned("splitVector", ids)),
            Err(e) if planner == Planner::SplitVector => return Err(failed("splitVector", e)),
            Err(e) => tracing::info!(collection = %collection.name(), error = %mongo_detail(&e),
                "splitVector is not available; planning ranges by arithmetic between the smallest and largest _id"),
        }
    }
    let ids = arithmetic(collection, wanted)
        .await
        .map_err(|e| failed("reading the smallest and largest _id", e))?;
    Ok(planned("arithmetic", ids))
}

/// Boundaries of about equal data size from the server's `splitVector` on `_id`.
async fn split_vector(
    collection: &Collection<Document>,
    wanted: usize,
    estimated: u64,
) -> mongodb::error::Result<Vec<Bson>> {
    let database = collection.client().database(&collection.namespace().db);
    let stats = database
        .run_command(doc! { "collStats": collection.name() })
        .await?;
    let size = match stats.get("size") {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    };
    let reply = database
        .run_command(doc! {
            "splitVector": collection.namespace().to_string(),
            "keyPattern": { "_id": 1 },
            // The server takes 1 MiB at least; below that, the count per range decides.
            "maxChunkSizeBytes": (size / wanted as i64).max(1 << 20),
            "maxChunkObjects": i64::try_from(estimated / wanted as u64).unwrap_or(i64::MAX).max(1),
        })
        .await?;
    let keys: Vec<Bson> = reply
        .get_array("splitKeys")
        .map(|keys| {
            keys.iter()
                .filter_map(|key| key.as_document().and_then(|k| k.get("_id")).cloned())
                .collect()
        })
        .unwrap_or_default();
    // splitVector cuts by size: take evenly among its keys when it gave more.
    if keys.len() < wanted {
        return Ok(keys);
    }
    Ok((1..wanted)
        .map(|k| keys[k * keys.len() / wanted].clone())
        .collect())
}

/// Boundaries of about equal counts from a `$sample` of `_id`s sorted by the server.
async fn sample(
    collection: &Collection<Document>,
    wanted: usize,
) -> mongodb::error::Result<Vec<Bson>> {
    let size = i64::try_from(sample_size(wanted)).unwrap_or(i64::MAX);
    let sampled: Vec<Document> = collection
        .aggregate([
            doc! { "$sample": { "size": size } },
            doc! { "$project": { "_id": 1 } },
            doc! { "$sort": { "_id": 1 } },
        ])
        .await?
        .try_collect()
        .await?;
    let ids: Vec<Bson> = sampled
        .into_iter()
        .filter_map(|mut d| d.remove("_id"))
        .collect();
    Ok(boundaries(&ids, wanted))
}

/// Evenly spaced boundaries between the smallest and largest `_id` when both are
/// numbers or both ObjectIds (then every `_id` between them is too); none otherwise.
async fn arithmetic(
    collection: &Collection<Document>,
    wanted: usize,
) -> mongodb::error::Result<Vec<Bson>> {
    let end = |order: i32| async move {
        collection
            .find_one(doc! {})
            .sort(doc! { "_id": order })
            .projection(doc! { "_id": 1 })
            .await
            .map(|doc| doc.and_then(|mut d| d.remove("_id")))
    };
    let (Some(first), Some(last)) = (end(1).await?, end(-1).await?) else {
        return Ok(Vec::new());
    };
    Ok(spaced(&first, &last, wanted))
}

fn spaced(first: &Bson, last: &Bson, wanted: usize) -> Vec<Bson> {
    let number = |b: &Bson| match b {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) if n.is_finite() => Some(*n),
        _ => None,
    };
    let mut out: Vec<Bson> = Vec::new();
    let mut push = |id: Bson| {
        if out.last() != Some(&id) {
            out.push(id);
        }
    };
    match (first, last) {
        (Bson::ObjectId(lo), Bson::ObjectId(hi)) => {
            let (lo, hi) = (
                lo.timestamp().timestamp_millis() / 1000,
                hi.timestamp().timestamp_millis() / 1000,
            );
            for k in 1..wanted as i64 {
                let t = lo + (hi - lo) * k / wanted as i64;
                if t > lo && t <= hi {
                    let mut bytes = [0u8; 12];
                    bytes[..4].copy_from_slice(&(t as u32).to_be_bytes());
                    push(Bson::ObjectId(bson::oid::ObjectId::from_bytes(bytes)));
                }
            }
        }
        _ => {
            let (Some(lo), Some(hi)) = (number(first), number(last)) else {
                return out;
            };
            let integers = !matches!(first, Bson::Double(_)) && !matches!(last, Bson::Double(_));
            for k in 1..wanted {
                let x = lo + (hi - lo) * k as f64 / wanted as f64;
                if x > lo && x <= hi {
                    push(if integers {
                        Bson::Int64(x.round() as i64)
                    } else {
                        Bson::Double(x)
                    });
                }
            }
        }
    }
    out
}

/// An `_id` as the hex of `{_id: …}`: exact, key order included (range boundaries,
/// checkpoints).
pub fn encode(id: Bson) -> String {
    hex::encode(bson::serialize_to_vec(&doc! { "_id": id }).unwrap_or_default())
}

/// The `_id` [`encode`] wrote.
pub fn decode(hex_bson: &str) -> Result<Bson, SourceError> {
    let bad = |detail: String| SourceError::BadBoundary(format!("{hex_bson:?}: {detail}"));
    let bytes = hex::decode(hex_bson).map_err(|e| bad(e.to_string()))?;
    let mut doc: Document = bson::deserialize_from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    doc.remove("_id")
        .ok_or_else(|| bad("a boundary without _id".to_string()))
}

/// Every `len / wanted`-th of the sorted sample, without repeats.
fn boundaries(sorted: &[Bson], wanted: usize) -> Vec<Bson> {
    let mut out: Vec<Bson> = Vec::new();
    if sorted.is_empty() {
        return out;
    }
    for k in 1..wanted {
        let id = &sorted[k * sorted.len() / wanted];
        if out.last() != Some(id) && Some(id) != sorted.first() {
            out.push(id.clone());
        }
    }
    out
}

/// The ranges between recorded boundaries (written by [`encode`]).
pub fn between(boundaries: &[String]) -> Result<Vec<Range>, SourceError> {
    let mut bounds = Vec::with_capacity(boundaries.len());
    for boundary in boundaries {
        bounds.push(decode(boundary)?);
    }
    Ok((0..=bounds.len())
        .map(|index| Range {
            index,
            min: index.checked_sub(1).map(|i| bounds[i].clone()),
            max: bounds.get(index).cloned(),
        })
        .collect())
}

/// Reads one range in `_id` order, after `resume_after` when given.
pub struct RangePager {
    collection: Collection<RawDocumentBuf>,
    range: Range,
    resume_after: Option<Bson>,
    /// Only the documents it matches are read (the mapping's `filter`).
    filter: Option<Document>,
    /// Read as of this cluster time at least (see [`crate::clock::session_as_of`]).
    as_of: Option<ClusterTime>,
    session: Option<ClientSession>,
    cursor: Option<SessionRawBatchCursor>,
    cursor_batch: u32,
}

impl RangePager {
    /// A pager over `range`, reading `cursor_batch` documents per round trip.
    pub fn new(
        collection: Collection<RawDocumentBuf>,
        range: Range,
        resume_after: Option<Bson>,
        filter: Option<Document>,
        cursor_batch: u32,
    ) -> Self {
        RangePager {
            collection,
            range,
            resume_after,
            filter,
            as_of: None,
            session: None,
            cursor: None,
            cursor_batch,
        }
    }

    /// Reads as of `time` at least, on whichever member serves the reads: a followed
    /// run's start position.
    pub fn as_of(mut self, time: Option<ClusterTime>) -> Self {
        self.as_of = time;
        self
    }

    /// The range and where it resumed, for messages.
    pub fn describe(&self) -> String {
        let show = |b: &Option<Bson>| {
            b.as_ref().map_or("-".to_string(), |b| {
                b.clone().into_relaxed_extjson().to_string()
            })
        };
        format!(
            "range {} [{}, {}) resumed after {}",
            self.range.index,
            show(&self.range.min),
            show(&self.range.max),
            show(&self.resume_after)
        )
    }

    /// The next reply's documents, or `None` at the end of the range.
    pub async fn next_reply(&mut self) -> mongodb::error::Result<Option<Reply>> {
        if self.cursor.is_none() {
            let lower = self.resume_after.clone().or_else(|| self.range.min.clone());
            let mut find = self
                .collection
                .find(self.filter.clone().unwrap_or_default())
                .hint(Hint::Keys(doc! { "_id": 1 }))
                .sort(doc! { "_id": 1 })
                .batch_size(self.cursor_batch);
            if let Some(lower) = lower {
                find = find.min(doc! { "_id": lower });
            }
            if let Some(upper) = &self.range.max {
                find = find.max(doc! { "_id": upper.clone() });
            }
            let session = match &mut self.session {
                Some(session) => session,
                None => self.session.insert(
                    crate::clock::session_as_of(self.collection.client(), self.as_of).await?,
                ),
            };
            self.cursor = Some(find.session(&mut *session).batch().await?);
        }
        let (Some(cursor), Some(session)) = (self.cursor.as_mut(), self.session.as_mut()) else {
            return Ok(None);
        };
        loop {
            let Some(mut reply) = reply::next_reply(cursor, session).await? else {
                return Ok(None);
            };
            // `min` is inclusive: the document the checkpoint names was published.
            if let Some(last) = self.resume_after.take() {
                let first = reply
                    .peek()
                    .and_then(|doc| doc.get("_id").ok().flatten())
                    .and_then(|id| Bson::try_from(id).ok());
                if first.as_ref() == Some(&last) {
                    reply.next_document();
                }
            }
            if reply.remaining() > 0 {
                return Ok(Some(reply));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_the_size_whatever_the_readers() {
        // One reader: by size alone, so other producers find ranges to share.
        assert_eq!(ranges_wanted(1, 1_000_000, 100_000), 10);
        assert_eq!(ranges_wanted(1, 1_000_001, 100_000), 11);
        // Too small to split.
        assert_eq!(ranges_wanted(1, 100_000, 100_000), 1);
        assert_eq!(ranges_wanted(1, 0, 100_000), 1);
        // Several readers: four each at least, never under 1,000 documents a range.
        assert_eq!(ranges_wanted(4, 1_000_000, 100_000), 16);
        assert_eq!(ranges_wanted(4, 3_500, 100_000), 3);
        assert_eq!(ranges_wanted(2, 10_000_000, 100_000), 100);
        assert_eq!(ranges_wanted(1, 5_000, 1_000), 5);
    }

    #[test]
    fn the_sample_grows_with_the_ranges_within_its_flat_cost() {
        assert_eq!(sample_size(2), 256);
        assert_eq!(sample_size(10), 1_280);
        // Past the flat cost, fewer per range, down to the least.
        assert_eq!(sample_size(100), 4_096);
        assert_eq!(sample_size(1_000), 32_000);
    }

    #[test]
    fn boundaries_split_the_sample_evenly_without_repeats() {
        let ids: Vec<Bson> = (0..100).map(Bson::Int32).collect();
        assert_eq!(
            boundaries(&ids, 4),
            vec![Bson::Int32(25), Bson::Int32(50), Bson::Int32(75)]
        );
        let few: Vec<Bson> = vec![Bson::Int32(1), Bson::Int32(1), Bson::Int32(2)];
        assert_eq!(boundaries(&few, 3), vec![Bson::Int32(2)]);
        assert!(boundaries(&[], 4).is_empty());
    }

    #[test]
    fn boundaries_keep_the_key_order_of_subdocuments() {
        let id = Bson::Document(doc! { "tenant": 1, "n": 22413 });
        let back = decode(&encode(id.clone())).expect("decodes");
        assert_eq!(back, id);
        let Bson::Document(back) = back else {
            panic!("not a document")
        };
        assert_eq!(back.keys().collect::<Vec<_>>(), ["tenant", "n"]);
    }

    #[test]
    fn arithmetic_spaces_numbers_and_object_ids_and_nothing_else() {
        assert_eq!(
            spaced(&Bson::Int32(0), &Bson::Int64(100), 4),
            vec![Bson::Int64(25), Bson::Int64(50), Bson::Int64(75)]
        );
        assert_eq!(
            spaced(&Bson::Double(0.0), &Bson::Double(1.0), 2),
            vec![Bson::Double(0.5)]
        );
        let oid = |t: u32| {
            let mut bytes = [0u8; 12];
            bytes[..4].copy_from_slice(&t.to_be_bytes());
            bytes[11] = 7;
            Bson::ObjectId(bson::oid::ObjectId::from_bytes(bytes))
        };
        let spaced_ids = spaced(&oid(1000), &oid(2000), 2);
        assert_eq!(spaced_ids.len(), 1);
        assert!(
            matches!(&spaced_ids[0], Bson::ObjectId(id) if id.timestamp().timestamp_millis() == 1_500_000)
        );
        assert!(spaced(&Bson::Int32(1), &Bson::String("z".into()), 4).is_empty());
        assert!(spaced(&Bson::Int32(5), &Bson::Int32(5), 4).is_empty());
    }

    #[test]
    fn ranges_cover_everything_once() {
        let boundaries = [encode(Bson::Int32(10)), encode(Bson::String("m".into()))];
        let ranges = between(&boundaries).expect("ranges");
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[0].min, None);
        assert_eq!(ranges[0].max, Some(Bson::Int32(10)));
        assert_eq!(ranges[1].min, Some(Bson::Int32(10)));
        assert_eq!(ranges[1].max, Some(Bson::String("m".into())));
        assert_eq!(ranges[2].min, Some(Bson::String("m".into())));
        assert_eq!(ranges[2].max, None);
    }
}
