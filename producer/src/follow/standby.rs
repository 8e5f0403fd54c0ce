//! Following as one of several producers of a run: the follower lease decides which
//! streams the changes; the others stand by and take over once it stops renewing.

use std::time::{Duration, Instant};

use crate::context::RunContext;
use crate::error::ProducerError;
use crate::{lease, retry};

use super::{follow, Followed, Scope, FOLLOWER};

/// How long a standby producer waits between looks at the follower's lease.
const STANDBY_POLL: Duration = Duration::from_secs(1);

/// Follows the change stream while holding the run's follower lease, so that of several
/// producers of a run only one streams the changes; the others stand by and take over
/// once the follower stops renewing (killed), until `shutdown`.
pub(crate) async fn follow_as_one(
    ctx: &RunContext,
    collections: &[String],
    scope: &Scope,
    start: &common::run_state::StartPosition,
) -> Result<Followed, ProducerError> {
    let RunContext {
        state, shutdown, ..
    } = ctx;
    let holder = lease::holder_id();
    let mut said = false;
    let mut interruptions = 0;
    loop {
        let lost = shutdown.child_token();
        let held = lease::claim(state, FOLLOWER, 0, &holder, lost.clone()).await?;
        let Some(held) = held else {
            if !said {
                tracing::info!(
                    "another producer follows this run's change stream; standing by to take over if it stops"
                );
                said = true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Followed::default()),
                _ = tokio::time::sleep(STANDBY_POLL) => continue,
            }
        };
        if said {
            tracing::info!("the follower stopped renewing its lease; this producer follows the change stream now");
        }
        let stint = Instant::now();
        ctx.metrics.following(true);
        let followed = follow(ctx, collections, scope, start, &lost).await;
        ctx.metrics.following(false);
        let lost_lease = held.is_lost() && !shutdown.is_cancelled();
        held.release().await;
        if let Err(ProducerError::FollowInterrupted { detail }) = &followed {
            // A primary stepping down or killed: follow again from the checkpoint once
            // the replica set has a new one, as long as that keeps working now and then.
            if stint.elapsed() > Duration::from_secs(60) {
                interruptions = 0;
            }
            interruptions += 1;
            if interruptions < retry::ATTEMPTS && !shutdown.is_cancelled() {
                tracing::warn!(attempt = interruptions, error = %detail,
                    "the change stream failed; following again from the checkpoint");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(Followed::default()),
                    _ = tokio::time::sleep(retry::pause(interruptions)) => continue,
                }
            }
        }
        if !lost_lease {
            return followed;
        }
        // Another producer took over (this one stalled past its lease): stand by again.
        followed?;
        said = false;
    }
}
