//! Crash points for the fault tests: `MIGRATE_CRASH_AT=<point>[:<n>]` makes the
//! process kill itself with SIGKILL the n-th time (default: first) it passes the named
//! point, exactly as `kill -9` would at that moment. Unset, a point costs one load of
//! a cached value. The points are named where they are placed:
//!
//! | point | where |
//! |---|---|
//! | `start-recorded` | producer: the start position is in the state bucket, no batch published |
//! | `snapshot-batch` | producer: a snapshot batch was acknowledged by the stream |
//! | `snapshot-done` | producer: every snapshot batch acknowledged, the change stream not yet opened |
//! | `change-published` | producer: a change batch was published, its acknowledgement not awaited |
//! | `snapshot-committed`, `change-committed` | consumer: a batch committed in PostgreSQL, not yet acknowledged |
//!
//! Pause points widen a race for a test the same way: `MIGRATE_PAUSE_AT=<point>:<ms>`
//! makes the process sleep that long when it passes the named point.
//!
//! | point | where |
//! |---|---|
//! | `repair-read` | `verify --repair`: the documents to repair were read from MongoDB, not yet landed |
//! | `change-landing` | consumer: a change batch is about to be landed (a slow PostgreSQL, as a test needs it) |
//!
//! `MIGRATE_CLOCK_SKEW_MS=<ms>` runs the process's wall clock that far ahead (as a
//! host whose clock is off would), for the leases' tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a crash point.
pub const CRASH_AT: &str = "MIGRATE_CRASH_AT";

/// The environment variable that arms a pause point.
pub const PAUSE_AT: &str = "MIGRATE_PAUSE_AT";

static PAUSE: OnceLock<Option<(String, u64)>> = OnceLock::new();

/// The environment variable that runs the wall clock ahead.
pub const CLOCK_SKEW: &str = "MIGRATE_CLOCK_SKEW_MS";

/// Milliseconds `MIGRATE_CLOCK_SKEW_MS` puts the wall clock ahead; 0 unset.
pub fn clock_skew_ms() -> u64 {
    static SKEW: OnceLock<u64> = OnceLock::new();
    *SKEW.get_or_init(|| {
        std::env::var(CLOCK_SKEW)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0)
    })
}

/// Milliseconds since the Unix epoch by this host's wall clock (run ahead by
/// `MIGRATE_CLOCK_SKEW_MS` in tests), for what leases show. Taking a lease over never
/// compares hosts' clocks: see [`crate::run_state::RunState::claim_range`].
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        + clock_skew_ms()
}

/// Sleeps here if `MIGRATE_PAUSE_AT` names this point (and how many milliseconds).
pub async fn pause(name: &str) {
    let armed = PAUSE.get_or_init(|| {
        let value = std::env::var(PAUSE_AT).ok()?;
        let (point, ms) = value.split_once(':')?;
        Some((point.to_string(), ms.parse().ok()?))
    });
    if let Some((point, ms)) = armed {
        if point == name {
            eprintln!("{PAUSE_AT}={point}: pausing {ms} ms");
            tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
        }
    }
}

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static PASSED: AtomicU64 = AtomicU64::new(0);

/// Kills the process here if `MIGRATE_CRASH_AT` names this point and this is the
/// pass it names.
pub fn point(name: &str) {
    let armed = ARMED.get_or_init(|| {
        let value = std::env::var(CRASH_AT).ok()?;
        let (point, nth) = match value.split_once(':') {
            Some((point, nth)) => (point.to_string(), nth.parse().unwrap_or(1)),
            None => (value, 1),
        };
        Some((point, nth))
    });
    let Some((point, nth)) = armed else { return };
    if point != name || PASSED.fetch_add(1, Ordering::SeqCst) + 1 != *nth {
        return;
    }
    eprintln!("{CRASH_AT}={point}: killing this process (pass {nth})");
    let _ = std::process::Command::new("kill")
        .args(["-9", &std::process::id().to_string()])
        .status();
    std::process::abort();
}
