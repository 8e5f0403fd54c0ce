//! How the producer rides out a NATS restart: the same operation tried again after a
//! pause, for about two minutes, before it gives up with the last error.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Tries per operation, and the pause between tries.
pub const ATTEMPTS: u32 = 30;
pub const PAUSE: Duration = Duration::from_secs(4);

/// Runs `operation` until it succeeds or has failed [`ATTEMPTS`] times.
pub async fn with_retries<T, E, F, Fut>(what: &str, mut operation: F) -> Result<T, E>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(err) if attempt >= ATTEMPTS => return Err(err),
            Err(err) => {
                tracing::warn!(attempt, error = %err, "{what} failed; retrying");
                tokio::time::sleep(PAUSE).await;
                attempt += 1;
            }
        }
    }
}
