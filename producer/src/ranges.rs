//! Splitting a collection into `_id` ranges that several readers publish at once
//! (`--readers N`).
//!
//! **Planning.** `$sample` takes a few dozen `_id`s per range wanted, the server sorts
//! them (in its canonical order, across BSON types), and every k-th becomes a boundary.
//! The plan is recorded once per run in the state bucket, so a rerun reads the same
//! ranges its checkpoints refer to.
//!
//! **Reading.** A range is read as bounds of the `_id` index (`min`/`max` with a
//! `hint`), which hold every BSON type between the boundaries: `{_id: {$gt: a, $lt: b}}`
//! would match only the type of `a` and `b` and silently skip the others. `min` is
//! inclusive, `max` exclusive, so consecutive ranges share no document and miss none; a
//! range resumed from its checkpoint starts at the last `_id` published and skips it.

use bson::{doc, Bson, Document, RawDocumentBuf};
use common::run_state::{RangePlan, RunState};
use futures::TryStreamExt;
use mongodb::options::Hint;
use mongodb::Collection;

use crate::error::ProducerError;
use crate::source::{mongo_detail, SourceError};

/// Ranges per reader: more ranges than readers keeps every reader busy to the end when
/// ranges turn out uneven.
pub const RANGES_PER_READER: usize = 4;
/// `_id`s sampled per range wanted.
const SAMPLES_PER_RANGE: usize = 32;
/// A range holds at least this many documents (by the estimate); a smaller collection
/// gets fewer ranges, down to one.
const MIN_DOCS_PER_RANGE: u64 = 1000;

/// One range of a collection's `_id`s: from `min` (included; the start when `None`) to
/// `max` (excluded; the end when `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub index: usize,
    pub min: Option<Bson>,
    pub max: Option<Bson>,
}

/// The collection's ranges: the run's recorded plan, or a new one recorded now.
pub async fn ranges(
    collection: &Collection<Document>,
    state: &RunState,
    readers: usize,
    estimated: u64,
) -> Result<Vec<Range>, ProducerError> {
    let name = collection.name();
    let plan = match state.plan(name).await? {
        Some(plan) => plan,
        None => {
            let planned = plan(collection, readers, estimated).await?;
            state.record_plan(name, &planned).await?
        }
    };
    from_plan(&plan).map_err(|detail| ProducerError::BadCheckpoint {
        collection: name.to_string(),
        detail: format!("its range plan: {detail}"),
    })
}

/// Splits the collection into about `readers * RANGES_PER_READER` ranges.
async fn plan(
    collection: &Collection<Document>,
    readers: usize,
    estimated: u64,
) -> Result<RangePlan, ProducerError> {
    let by_size = usize::try_from(estimated / MIN_DOCS_PER_RANGE).unwrap_or(usize::MAX);
    let wanted = (readers * RANGES_PER_READER).min(by_size).max(1);
    if wanted == 1 {
        return Ok(RangePlan {
            boundaries: Vec::new(),
        });
    }
    let failed = |e: mongodb::error::Error| SourceError::Read {
        collection: collection.name().to_string(),
        detail: format!("sampling _id values to plan ranges: {}", mongo_detail(&e)),
    };
    let size = i64::try_from(wanted * SAMPLES_PER_RANGE).unwrap_or(i64::MAX);
    let sampled: Vec<Document> = collection
        .aggregate([
            doc! { "$sample": { "size": size } },
            doc! { "$project": { "_id": 1 } },
            doc! { "$sort": { "_id": 1 } },
        ])
        .await
        .map_err(failed)?
        .try_collect()
        .await
        .map_err(failed)?;
    let ids: Vec<Bson> = sampled
        .into_iter()
        .filter_map(|mut d| d.remove("_id"))
        .collect();
    Ok(RangePlan {
        boundaries: boundaries(&ids, wanted).into_iter().map(encode).collect(),
    })
}

/// An `_id` as the hex of `{_id: …}`: exact, key order included (range boundaries,
/// checkpoints).
pub fn encode(id: Bson) -> String {
    hex::encode(bson::serialize_to_vec(&doc! { "_id": id }).unwrap_or_default())
}

/// The `_id` [`encode`] wrote; the error says what is wrong with it.
pub fn decode(hex_bson: &str) -> Result<Bson, String> {
    let bytes = hex::decode(hex_bson).map_err(|e| e.to_string())?;
    let mut doc: Document = bson::deserialize_from_slice(&bytes).map_err(|e| e.to_string())?;
    doc.remove("_id")
        .ok_or_else(|| "a boundary without _id".to_string())
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

/// The ranges of a recorded plan; the error says what is unreadable in it.
fn from_plan(plan: &RangePlan) -> Result<Vec<Range>, String> {
    let mut bounds = Vec::with_capacity(plan.boundaries.len());
    for boundary in &plan.boundaries {
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
    cursor: Option<mongodb::Cursor<RawDocumentBuf>>,
    cursor_batch: u32,
}

impl RangePager {
    pub fn new(
        collection: Collection<RawDocumentBuf>,
        range: Range,
        resume_after: Option<Bson>,
        cursor_batch: u32,
    ) -> Self {
        RangePager {
            collection,
            range,
            resume_after,
            cursor: None,
            cursor_batch,
        }
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

    /// The next document, or `None` at the end of the range.
    pub async fn next(&mut self) -> mongodb::error::Result<Option<RawDocumentBuf>> {
        if self.cursor.is_none() {
            let lower = self.resume_after.clone().or_else(|| self.range.min.clone());
            let mut find = self
                .collection
                .find(doc! {})
                .hint(Hint::Keys(doc! { "_id": 1 }))
                .sort(doc! { "_id": 1 })
                .batch_size(self.cursor_batch);
            if let Some(lower) = lower {
                find = find.min(doc! { "_id": lower });
            }
            if let Some(upper) = &self.range.max {
                find = find.max(doc! { "_id": upper.clone() });
            }
            self.cursor = Some(find.await?);
        }
        let Some(cursor) = self.cursor.as_mut() else {
            return Ok(None);
        };
        loop {
            let Some(doc) = cursor.try_next().await? else {
                return Ok(None);
            };
            // `min` is inclusive: the document the checkpoint names was published.
            if let Some(last) = self.resume_after.take() {
                let id = doc
                    .get("_id")
                    .ok()
                    .flatten()
                    .and_then(|id| Bson::try_from(id).ok());
                if id.as_ref() == Some(&last) {
                    continue;
                }
            }
            return Ok(Some(doc));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ranges_cover_everything_once() {
        let plan = RangePlan {
            boundaries: vec![encode(Bson::Int32(10)), encode(Bson::String("m".into()))],
        };
        let ranges = from_plan(&plan).expect("ranges");
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[0].min, None);
        assert_eq!(ranges[0].max, Some(Bson::Int32(10)));
        assert_eq!(ranges[1].min, Some(Bson::Int32(10)));
        assert_eq!(ranges[1].max, Some(Bson::String("m".into())));
        assert_eq!(ranges[2].min, Some(Bson::String("m".into())));
        assert_eq!(ranges[2].max, None);
    }
}
