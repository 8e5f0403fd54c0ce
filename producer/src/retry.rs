//! How the producer rides out a NATS restart: an operation that failed in a way that
//! may pass (a timeout, a lost connection, a server starting) is tried again after a
//! pause, for about two minutes; one that will fail the same way every time is
//! returned at once.

use std::future::Future;
use std::time::Duration;

use common::run_state::StateError;

/// Tries per operation, and the pause between tries.
pub const ATTEMPTS: u32 = 30;
pub const PAUSE: Duration = Duration::from_secs(4);

/// An error that says whether trying again later may succeed.
pub trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Transient for StateError {
    fn is_transient(&self) -> bool {
        StateError::is_transient(self)
    }
}

/// Runs `operation` until it succeeds, fails permanently, or has failed [`ATTEMPTS`]
/// times.
pub async fn with_retries<T, E, F, Fut>(what: &str, mut operation: F) -> Result<T, E>
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
                tokio::time::sleep(PAUSE).await;
                attempt += 1;
            }
        }
    }
}
