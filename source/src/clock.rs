//! MongoDB's clock: the cluster time now, and how far back the oplog reaches.
//!
//! The follower records positions in cluster time; `status` and `cutover` compare them
//! with the time now, and the oplog's oldest entry says how long a stopped follower
//! may wait before its position is lost.

use std::time::Duration;

use bson::{doc, Document, RawBsonRef, RawDocumentBuf};
use common::run_state::ClusterTime;

use crate::error::SourceError;

/// Below this much oplog left before a run's position, the follower and `status` warn.
pub const SHORT_HEADROOM: Duration = Duration::from_secs(3600);

/// A session whose reads see MongoDB as of `time` at least, on whichever member serves
/// them: reading from secondaries (a `readPreference` in the URI), a member behind the
/// one `time` came from waits until it holds it, as a causally consistent majority
/// read does (`readConcern.afterClusterTime`). A followed run's snapshot read as of its
/// start position misses no document written before it, and a change checked against
/// its filter is checked as of the change at least. Without `time`, a plain session.
pub async fn session_as_of(
    client: &mongodb::Client,
    time: Option<ClusterTime>,
) -> mongodb::error::Result<mongodb::ClientSession> {
    let mut session = client.start_session().causal_consistency(true).await?;
    if let Some(time) = time {
        session.advance_operation_time(bson::Timestamp {
            time: time.time,
            increment: time.increment,
        });
    }
    Ok(session)
}

/// MongoDB's cluster time now: the operation time of a `hello`.
pub async fn cluster_time(database: &mongodb::Database) -> Result<ClusterTime, SourceError> {
    let reply = database
        .run_command(doc! { "hello": 1 })
        .await
        .map_err(|e| SourceError::read("(hello)", &e))?;
    let reply = RawDocumentBuf::try_from(&reply).map_err(|e| SourceError::Read {
        collection: "(hello)".to_string(),
        detail: e.to_string(),
        failure: crate::error::ReadFailure::Permanent,
    })?;
    match reply.get("operationTime") {
        Ok(Some(RawBsonRef::Timestamp(ts))) => Ok(ClusterTime {
            time: ts.time,
            increment: ts.increment,
        }),
        _ => Err(SourceError::NoClusterTime),
    }
}

/// The oplog's window (seconds from its oldest entry to `now`) and the headroom
/// before `position` (seconds from the oldest entry to it; negative once the position
/// has left the oplog). `None` when the oplog cannot be read.
pub async fn oplog_window(
    database: &mongodb::Database,
    now: ClusterTime,
    position: ClusterTime,
) -> Option<(u32, i64)> {
    let oldest = database
        .client()
        .database("local")
        .collection::<Document>("oplog.rs")
        .find_one(doc! {})
        .sort(doc! { "$natural": 1 })
        .projection(doc! { "ts": 1 })
        .await
        .ok()??;
    let ts = oldest.get_timestamp("ts").ok()?;
    Some((
        now.time.saturating_sub(ts.time),
        i64::from(position.time) - i64::from(ts.time),
    ))
}
