//! A collection's `_id` ranges for `--readers`: planned once per run (see
//! [`source::ranges`] for how) and recorded in the state bucket, so a rerun, or
//! another producer of the run, reads the same ranges the checkpoints refer to.

use bson::Document;
use common::run_state::{RangePlan, RunState};
use mongodb::Collection;
use source::ranges::{self, Planner, Range};

use crate::error::ProducerError;

/// The collection's ranges: the run's recorded plan, or a new one recorded now.
pub(crate) async fn ranges(
    collection: &Collection<Document>,
    state: &RunState,
    readers: usize,
    range_docs: u64,
    planner: Planner,
    estimated: u64,
) -> Result<Vec<Range>, ProducerError> {
    let name = collection.name();
    let plan = match state.plan(name).await? {
        Some(plan) => plan,
        None => {
            let planned = ranges::plan(collection, readers, range_docs, planner, estimated).await?;
            let planned = RangePlan {
                boundaries: planned.boundaries.into_iter().map(ranges::encode).collect(),
                method: planned.method.to_string(),
            };
            let held = state.record_plan(name, &planned).await?;
            // Of producers racing to plan, one plan is recorded: say which one is used.
            if held == planned {
                tracing::info!(collection = %name, ranges = held.ranges(), method = %held.method,
                    "planned the collection's _id ranges");
            } else {
                tracing::info!(collection = %name, ranges = held.ranges(), method = %held.method,
                    "another producer planned the collection's _id ranges first; reading its ranges");
            }
            held
        }
    };
    ranges::between(&plan.boundaries).map_err(|err| ProducerError::BadCheckpoint {
        collection: name.to_string(),
        detail: format!("its range plan: {err}"),
    })
}
