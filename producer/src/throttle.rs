//! `--max-read-rate`: at most so many documents, or megabytes, read from MongoDB per
//! second by this process's snapshot readers, so that a migration never takes all of
//! a production primary's capacity. The change stream is never held back: it must
//! keep up with the writes.
//!
//! A virtual clock (as GCRA does): each document read moves the earliest time the next
//! may be read by its cost (1 / documents per second, its bytes / bytes per second,
//! whichever is longer); a reader ahead of that clock by more than [`SLACK`] sleeps
//! until it. Shared by the process's readers, so the limit holds for the process
//! whatever its `--readers`, and over a run it holds to the rate exactly, short bursts
//! of [`SLACK`] aside.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead of the clock a reader may run before it sleeps: sleeping per document
/// would cost more than the reading.
const SLACK: Duration = Duration::from_millis(20);

/// The limits, as given: documents per second, bytes per second, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReadRate {
    /// Documents per second.
    pub documents: Option<f64>,
    /// Bytes per second.
    pub bytes: Option<f64>,
}

/// A `--max-read-rate` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--max-read-rate {0:?}: give documents per second (5000), megabytes per second (20MB), or both (5000,20MB), each above zero")]
pub struct BadReadRate(String);

impl FromStr for ReadRate {
    type Err = BadReadRate;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadReadRate(text.to_string());
        let mut rate = ReadRate::default();
        for part in text.split(',').map(str::trim) {
            let (number, megabytes) = match part.strip_suffix("MB").or(part.strip_suffix("mb")) {
                Some(number) => (number.trim(), true),
                None => (part, false),
            };
            let value: f64 = number.parse().map_err(|_| bad())?;
            if !(value.is_finite() && value > 0.0) {
                return Err(bad());
            }
            let slot = if megabytes {
                &mut rate.bytes
            } else {
                &mut rate.documents
            };
            if slot.is_some() {
                return Err(bad());
            }
            *slot = Some(if megabytes { value * 1e6 } else { value });
        }
        Ok(rate)
    }
}

impl fmt::Display for ReadRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.documents, self.bytes) {
            (Some(d), Some(b)) => write!(f, "{d} documents/s and {} MB/s", b / 1e6),
            (Some(d), None) => write!(f, "{d} documents/s"),
            (None, Some(b)) => write!(f, "{} MB/s", b / 1e6),
            (None, None) => write!(f, "no limit"),
        }
    }
}

/// The process's read limiter; without a limit, it never waits.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    rate: ReadRate,
    /// The earliest time the next document may be read.
    next: Mutex<Option<Instant>>,
    /// What was read under the limit: from the first read to the last.
    read: Mutex<Option<Read>>,
}

/// Documents and bytes read, and when the first and the last were.
#[derive(Debug, Clone, Copy)]
struct Read {
    first: Instant,
    last: Instant,
    documents: u64,
    bytes: u64,
}

/// The rate the process read at under its limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Achieved {
    /// The limit.
    pub limit: ReadRate,
    /// Documents per second, from the first read to the last.
    pub documents: f64,
    /// Bytes per second, likewise.
    pub bytes: f64,
}

impl fmt::Display for Achieved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "read from MongoDB at {:.0} documents/s, {:.1} MB/s (--max-read-rate {})",
            self.documents,
            self.bytes / 1e6,
            self.limit
        )
    }
}

impl Throttle {
    pub(crate) fn new(rate: Option<ReadRate>) -> Self {
        Throttle {
            rate: rate.unwrap_or_default(),
            next: Mutex::new(None),
            read: Mutex::new(None),
        }
    }

    /// The rate read at, when there is a limit and more than one document was read.
    pub(crate) fn achieved(&self) -> Option<Achieved> {
        let read = (*self.read.lock().ok()?)?;
        let seconds = read.last.duration_since(read.first).as_secs_f64();
        if self.rate == ReadRate::default() || read.documents < 2 || seconds <= 0.0 {
            return None;
        }
        // n documents span n - 1 intervals.
        Some(Achieved {
            limit: self.rate,
            documents: (read.documents - 1) as f64 / seconds,
            bytes: read.bytes as f64 * (read.documents - 1) as f64
                / read.documents as f64
                / seconds,
        })
    }

    /// Accounts for one document of `bytes` read; waits while this process reads ahead
    /// of its limit.
    pub(crate) async fn read(&self, bytes: usize) {
        let cost = self.cost(bytes);
        if cost.is_zero() {
            return;
        }
        let due = {
            let Ok(mut next) = self.next.lock() else {
                return;
            };
            let now = Instant::now();
            // Idle time is not saved up: a reader back from a pause starts from now.
            let due = next.map_or(now, |n| n.max(now));
            *next = Some(due + cost);
            due
        };
        if due > Instant::now() + SLACK {
            tokio::time::sleep_until(due).await;
        }
        if let Ok(mut read) = self.read.lock() {
            let now = Instant::now();
            let read = read.get_or_insert(Read {
                first: now,
                last: now,
                documents: 0,
                bytes: 0,
            });
            read.last = now;
            read.documents += 1;
            read.bytes += bytes as u64;
        }
    }

    /// The time one document of `bytes` takes at the limit.
    fn cost(&self, bytes: usize) -> Duration {
        let documents = self.rate.documents.map_or(0.0, |rate| 1.0 / rate);
        let size = self.rate.bytes.map_or(0.0, |rate| bytes as f64 / rate);
        Duration::from_secs_f64(documents.max(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_documents_megabytes_or_both() {
        let rate: ReadRate = "5000".parse().expect("documents");
        assert_eq!(rate.documents, Some(5000.0));
        assert_eq!(rate.bytes, None);
        let rate: ReadRate = "20MB".parse().expect("megabytes");
        assert_eq!(rate.bytes, Some(20e6));
        let rate: ReadRate = "5000, 2.5MB".parse().expect("both");
        assert_eq!((rate.documents, rate.bytes), (Some(5000.0), Some(2.5e6)));
        assert_eq!(rate.to_string(), "5000 documents/s and 2.5 MB/s");
        for bad in ["", "0", "-3", "fast", "1,2", "3MB,4MB", "inf"] {
            assert!(bad.parse::<ReadRate>().is_err(), "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_limited_reader_reads_at_the_rate_and_an_unlimited_one_never_waits() {
        let throttle = Throttle::new(Some("1000".parse().expect("rate")));
        let started = tokio::time::Instant::now();
        for _ in 0..3000 {
            throttle.read(100).await;
        }
        // 3000 documents at 1000/s: the last may be read at 2.999 s, less the slack.
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(2979) && elapsed <= Duration::from_millis(3000),
            "{elapsed:?}"
        );
        let achieved = throttle.achieved().expect("achieved");
        assert!((achieved.documents - 1000.0).abs() < 10.0, "{achieved:?}");
        let bytes = Throttle::new(Some("1MB".parse().expect("rate")));
        let started = tokio::time::Instant::now();
        for _ in 0..100 {
            bytes.read(100_000).await;
        }
        // 10 MB at 1 MB/s.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(9880), "{elapsed:?}");
        let achieved = bytes.achieved().expect("achieved");
        assert!((achieved.bytes - 1e6).abs() < 0.05e6, "{achieved:?}");
        let free = Throttle::new(None);
        let started = tokio::time::Instant::now();
        for _ in 0..100_000 {
            free.read(1_000_000).await;
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
