//! How the producer rides out a NATS restart: an operation that failed in a way that
//! may pass (a timeout, a lost connection, a server starting) is tried again after a
//! pause that doubles from 250 ms up to 4 s, for about two minutes in all; one that
//! will fail the same way every time is returned at once.

use std::future::Future;
use std::time::Duration;

use common::run_state::StateError;

/// Tries per operation: with [`pause`], about 110 s before giving up, longer than a
/// NATS restart takes.
pub(crate) const ATTEMPTS: u32 = 30;
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(4);

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
/// times.
pub(crate) async fn with_retries<T, E, F, Fut>(what: &str, mut operation: F) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(err) if attempt >= ATTEMPTS || !err.is_transient() => return Err(err),
            Err(err) => {
                tracing::warn!(attempt, error = %err, "{what} failed; retrying");
                tokio::time::sleep(pause(attempt)).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
