//! Leases on `_id` ranges, so that several producer processes of one run share a
//! collection's ranges: a reader claims a range in the state bucket before reading it
//! and renews the claim while it reads. A producer killed -9 stops renewing; once
//! another producer has seen its lease unrenewed for [`LEASE_TTL`] (by its own clock:
//! hosts' clocks are never compared), it claims the range and resumes it from the
//! range's checkpoint. A reader that finds its lease taken over stops reading that
//! range. The follower lease (one follower per run) works the same way.
//!
//! Two readers on one range for a moment (a holder that stalled past its lease) publish
//! nothing twice that lands twice: batch ids come from content, and the consumers skip
//! documents whose key is landed. Every checkpoint either of them saves names a
//! position the stream has acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::run_state::{RangeLease, RunState};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::ProducerError;
use crate::retry;

/// How long a lease lasts without renewal: how long a range waits after its producer
/// was killed.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often a held lease is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// This process's name in the leases it holds: host, process id and a random part
/// (a restarted process with the same pid is another holder).
pub fn holder_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_string());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// A lease held, renewed by its own task until released or lost.
pub struct Held {
    /// Set once another producer took the lease over (or it expired unrenewed). Not
    /// the `stop` token, which a shutdown cancels too: a stopping producer still
    /// releases what it holds.
    taken: Arc<AtomicBool>,
    renewer: JoinHandle<()>,
    state: RunState,
    collection: String,
    index: usize,
    holder: String,
}

/// Claims range `index` of `collection` for `holder`; `None` when another producer
/// holds it. `stop` is cancelled when the lease is lost (taken over).
pub async fn claim(
    state: &RunState,
    collection: &str,
    index: usize,
    holder: &str,
    stop: CancellationToken,
) -> Result<Option<Held>, ProducerError> {
    let lease = lease_for(holder);
    // A NATS cluster electing a new leader times reads out for a moment: tried again,
    // not the end of the producer. Trying again is safe: a claim this holder made
    // already (its answer lost) is found as ours and renewed.
    let claimed = retry::with_retries("claiming a lease", &stop, || {
        state.claim_range(collection, index, &lease, LEASE_TTL)
    })
    .await?;
    let Some(mut revision) = claimed else {
        return Ok(None);
    };
    let taken = Arc::new(AtomicBool::new(false));
    let renewer = tokio::spawn({
        let (state, collection, holder, lost, taken) = (
            state.clone(),
            collection.to_string(),
            holder.to_string(),
            stop,
            taken.clone(),
        );
        async move {
            let mut renewed_at = std::time::Instant::now();
            loop {
                tokio::select! {
                    _ = lost.cancelled() => return,
                    _ = tokio::time::sleep(RENEW_EVERY) => {}
                }
                match state
                    .renew_range(&collection, index, &lease_for(&holder), revision)
                    .await
                {
                    Ok(Some(next)) => {
                        revision = next;
                        renewed_at = std::time::Instant::now();
                    }
                    Ok(None) => {
                        tracing::warn!(collection = %collection, range = index,
                            "another producer took this range over (its lease had expired); leaving it to them");
                        taken.store(true, Ordering::SeqCst);
                        lost.cancel();
                        return;
                    }
                    Err(err) if renewed_at.elapsed() >= LEASE_TTL => {
                        tracing::warn!(collection = %collection, range = index, error = %err,
                            "the range's lease could not be renewed before it expired; leaving the range");
                        taken.store(true, Ordering::SeqCst);
                        lost.cancel();
                        return;
                    }
                    Err(err) => {
                        tracing::debug!(collection = %collection, range = index, error = %err,
                            "renewing the range's lease failed; will retry");
                    }
                }
            }
        }
    });
    Ok(Some(Held {
        taken,
        renewer,
        state: state.clone(),
        collection: collection.to_string(),
        index,
        holder: holder.to_string(),
    }))
}

impl Held {
    /// Whether another producer took the range over.
    pub fn is_lost(&self) -> bool {
        self.taken.load(Ordering::SeqCst)
    }

    /// Stops renewing and lets the lease expire at once, so that no producer waits
    /// on it (the range is done, or this process stops).
    pub async fn release(self) {
        self.renewer.abort();
        let expired = RangeLease {
            holder: self.holder.clone(),
            expires_ms: 0,
        };
        if !self.is_lost() {
            let _ = self
                .state
                .claim_range(&self.collection, self.index, &expired, LEASE_TTL)
                .await;
        }
    }
}

fn lease_for(holder: &str) -> RangeLease {
    RangeLease {
        holder: holder.to_string(),
        expires_ms: common::crash::now_ms() + LEASE_TTL.as_millis() as u64,
    }
}
