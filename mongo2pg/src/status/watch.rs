//! `mongo2pg status --watch`: the status refreshed on a terminal, with the rates since
//! the reading before, for people without Grafana. The servers are connected once (and
//! again after a failed reading); a reading that fails is said in the frame, and the
//! next one tries again, so a server restarting does not end the watch.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{read, RunStatus, Servers, Verdict};
use crate::config::StatusConfig;

/// What a reading adds up to, for the rates between two.
#[derive(Debug, Clone, Copy)]
struct Totals {
    at: Instant,
    published: u64,
    landed: u64,
    events: u64,
}

impl Totals {
    fn of(status: &RunStatus) -> Self {
        let collections = status.collections.values();
        Totals {
            at: Instant::now(),
            published: collections.clone().map(|c| c.published).sum(),
            landed: collections.map(|c| c.committed + c.rejected).sum(),
            events: status.live.as_ref().map_or(0, |l| l.events_published),
        }
    }

    /// The rates from `before` to this reading, in words.
    fn rates_since(&self, before: &Totals) -> String {
        let seconds = self.at.duration_since(before.at).as_secs_f64().max(1e-3);
        let rate = |now: u64, then: u64| (now.saturating_sub(then) as f64 / seconds).round();
        format!(
            "since the last reading: {} documents/s published, {} rows/s landed, {} change events/s",
            rate(self.published, before.published),
            rate(self.landed, before.landed),
            rate(self.events, before.events),
        )
    }
}

/// Reads the status every `every` and writes it to stdout (clearing the screen first
/// on a terminal) until `stop`; returns the last verdict, `None` when no reading
/// succeeded.
pub async fn watch(
    config: &StatusConfig,
    every: Duration,
    stop: CancellationToken,
) -> Option<Verdict> {
    let terminal = std::io::stdout().is_terminal();
    let mut servers: Option<Servers> = None;
    let mut before: Option<Totals> = None;
    let mut verdict = None;
    loop {
        let mut frame = String::new();
        if terminal {
            // Home and clear: the frame replaces the one before.
            frame.push_str("\x1b[H\x1b[2J");
        }
        let _ = writeln!(
            frame,
            "mongo2pg status --run {}, every {every:?} (Ctrl-C to stop): {}",
            config.run.run,
            bson::DateTime::now()
                .try_to_rfc3339_string()
                .unwrap_or_default()
        );
        if servers.is_none() {
            match Servers::connect(config).await {
                Ok(connected) => servers = Some(connected),
                Err(err) => {
                    let _ = writeln!(frame, "cannot read the run now: {err}");
                }
            }
        }
        if let Some(connected) = &servers {
            match read(connected, config).await {
                Ok(status) => {
                    let _ = write!(frame, "{status}");
                    let now = Totals::of(&status);
                    if let Some(before) = &before {
                        let _ = writeln!(frame, "{}", now.rates_since(before));
                    }
                    before = Some(now);
                    verdict = Some(status.verdict());
                }
                Err(err) => {
                    let _ = writeln!(frame, "cannot read the run now: {err}");
                    // Connected again at the next reading.
                    servers = None;
                }
            }
        }
        if !terminal {
            frame.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout
            .write_all(frame.as_bytes())
            .and_then(|()| stdout.flush());
        drop(stdout);
        tokio::select! {
            _ = stop.cancelled() => return verdict,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
