//! How the producer rides out a NATS restart: an operation that failed in a way that
//! may pass (a timeout, a lost connection, a server starting) is tried again after a
//! pause that doubles from 250 ms up to 4 s, for about two minutes in all; one that
//! will fail the same way every time is returned at once. Once a stop is asked, an
//! operation is still tried (a stopping producer saves what it can) and tried again
//! for [`STOP_GRACE`] at most: a NATS cluster electing a leader answers within it, and
//! a producer stopped while NATS is down ends seconds later, not two minutes.

use std::future::Future;
use std::time::{Duration, Instant};

use common::run_state::StateError;
use tokio_util::sync::CancellationToken;

use crate::error::ProducerError;

/// Tries per operation: with [`pause`], about 110 s before giving up, longer than a
/// NATS restart takes.
pub(crate) const ATTEMPTS: u32 = 30;
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(4);
/// How long failures that may pass are still tried again once a stop is asked,
/// counted from the first failure seen stopping.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// The pause after failed try number `attempt` (from 1): 250 ms, doubling, at most 4 s.
pub(crate) fn pause(attempt: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(1 << attempt.saturating_sub(1).min(8))
        .min(LONGEST_PAUSE)
}

/// An error that says whether trying again later may succeed.
pub(crate) trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Transient for StateError {
    fn is_transient(&self) -> bool {
        StateError::is_transient(self)
    }
}

/// Runs `operation` until it succeeds, fails permanently, or has failed [`ATTEMPTS`]
/// times; once `stop` is cancelled, a failure that may pass is tried again for
/// [`STOP_GRACE`], then ends the producer as stopped ([`ProducerError::Interrupted`]).
pub(crate) async fn with_retries<T, E, F, Fut>(
    what: &str,
    stop: &CancellationToken,
    mut operation: F,
) -> Result<T, ProducerError>
where
    E: Transient,
    ProducerError: From<E>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    let mut stopping = None;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(err) if attempt >= ATTEMPTS || !err.is_transient() => return Err(err.into()),
            Err(err) => {
                tracing::warn!(attempt, error = %err, "{what} failed; retrying");
                if !pause_to_retry(stop, attempt, &mut stopping).await {
                    tracing::warn!(error = %err, "{what} failed, and a stop was asked: not retrying");
                    return Err(ProducerError::Interrupted);
                }
                attempt += 1;
            }
        }
    }
}

/// The pause after failed try number `attempt`, cut short by a stop; whether to try
/// again: once `stop` is cancelled, only within [`STOP_GRACE`] of `stopping` (when
/// the first failure was seen stopping, set here).
pub(crate) async fn pause_to_retry(
    stop: &CancellationToken,
    attempt: u32,
    stopping: &mut Option<Instant>,
) -> bool {
    pause_within(stop, pause(attempt), STOP_GRACE, stopping).await
}

/// [`pause_to_retry`] with its pause and grace given.
async fn pause_within(
    stop: &CancellationToken,
    pause: Duration,
    grace: Duration,
    stopping: &mut Option<Instant>,
) -> bool {
    if !stop.is_cancelled() {
        tokio::select! {
            biased;
            // The pause ends at the stop: try again now, the grace counted from here.
            _ = stop.cancelled() => {
                stopping.get_or_insert_with(Instant::now);
                return true;
            }
            _ = tokio::time::sleep(pause) => return true,
        }
    }
    let since = *stopping.get_or_insert_with(Instant::now);
    let left = grace.saturating_sub(since.elapsed());
    if left.is_zero() {
        return false;
    }
    tokio::time::sleep(pause.min(left)).await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_cuts_the_pause_short_then_leaves_a_grace_to_try_again() {
        let stop = CancellationToken::new();
        let mut stopping = None;
        // Not stopping: the whole pause, then try again.
        assert!(
            pause_within(
                &stop,
                Duration::from_millis(20),
                Duration::from_secs(1),
                &mut stopping
            )
            .await
        );
        assert!(stopping.is_none());
        // A stop during a long pause ends it at once; the grace starts then.
        let later = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            later.cancel();
        });
        let started = Instant::now();
        let grace = Duration::from_millis(300);
        assert!(pause_within(&stop, Duration::from_secs(30), grace, &mut stopping).await);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert!(stopping.is_some());
        // Stopping: tried again within the grace, never after it.
        let mut tries = 1;
        while pause_within(&stop, Duration::from_millis(50), grace, &mut stopping).await {
            tries += 1;
            assert!(tries < 1_000, "the grace never ended");
        }
        assert!(tries >= 2, "{tries}");
        let since = stopping.map(|at| at.elapsed()).unwrap_or_default();
        assert!(since >= grace, "{since:?}");
    }

    #[test]
    fn pauses_double_up_to_a_bound_of_about_two_minutes_in_all() {
        assert_eq!(pause(1), Duration::from_millis(250));
        assert_eq!(pause(2), Duration::from_millis(500));
        assert_eq!(pause(5), Duration::from_secs(4));
        assert_eq!(pause(100), Duration::from_secs(4));
        let total: Duration = (1..ATTEMPTS).map(pause).sum();
        assert!(
            total > Duration::from_secs(90) && total < Duration::from_secs(150),
            "{total:?}"
        );
    }
}
