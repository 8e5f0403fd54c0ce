//! Counters every writer of a process adds to, read by the throughput log and the
//! final report.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Stats {
    batches: AtomicU64,
    rows: AtomicU64,
    rejects: AtomicU64,
    duplicates: AtomicU64,
    dead_letters: AtomicU64,
    /// Batch write latency (ledger row, COPY, rejects, commit): a histogram.
    write_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    write_count: AtomicU64,
    write_micros: AtomicU64,
    /// Batches in the stream not yet delivered, as last read from the server.
    pending: AtomicU64,
    /// Change events applied (won, overtaken or already applied: accounted for).
    changes: AtomicU64,
    /// Milliseconds from the newest change's cluster time to its commit here.
    apply_lag_ms: AtomicU64,
}

/// Upper bounds, in seconds, of the write latency histogram's buckets.
pub(crate) const LATENCY_BUCKETS: [f64; 10] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The write latency histogram, cumulative as Prometheus counts buckets.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Latency {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

/// A reading of the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub batches: u64,
    pub rows: u64,
    pub rejects: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
}

impl Stats {
    pub(crate) fn committed(&self, rows: u64, rejects: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.rejects.fetch_add(rejects, Ordering::Relaxed);
    }

    /// Counts a committed change batch and the lag of its newest event, whose cluster
    /// time is `newest_seconds`.
    pub(crate) fn changes(&self, events: u64, newest_seconds: u32) {
        self.changes.fetch_add(events, Ordering::Relaxed);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.apply_lag_ms.store(
            now_ms.saturating_sub(u64::from(newest_seconds) * 1000),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn changes_applied(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Seconds between the newest change applied and its commit here.
    pub(crate) fn apply_lag_seconds(&self) -> f64 {
        self.apply_lag_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub(crate) fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dead_letter(&self) {
        self.dead_letters.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn write_latency(&self, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.write_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.write_count.fetch_add(1, Ordering::Relaxed);
        self.write_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_pending(&self, pending: u64) {
        self.pending.store(pending, Ordering::Relaxed);
    }

    pub(crate) fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    pub(crate) fn latency(&self) -> Latency {
        Latency {
            buckets: LATENCY_BUCKETS
                .iter()
                .zip(&self.write_buckets)
                .map(|(bound, count)| (*bound, count.load(Ordering::Relaxed)))
                .collect(),
            count: self.write_count.load(Ordering::Relaxed),
            sum_seconds: self.write_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            batches: self.batches.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            rejects: self.rejects.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
        }
    }
}
