//! Counters every writer of a process adds to, read by the throughput log and the
//! final report.

use std::sync::atomic::{AtomicU64, Ordering};

use common::exposition::Histogram;
use landing::mapping::RejectKind;
use landing::reject::RejectCounts;

#[derive(Debug, Default)]
pub(crate) struct Stats {
    batches: AtomicU64,
    rows: AtomicU64,
    rejects: AtomicU64,
    /// Rejects by kind, in [`RejectKind::ALL`]'s order.
    rejects_by_kind: [AtomicU64; RejectKind::ALL.len()],
    duplicates: AtomicU64,
    dead_letters: AtomicU64,
    /// Batch write latency (ledger row, COPY, rejects, commit).
    pub(crate) write_latency: Histogram,
    /// `mongo2pg finish`'s items by kind and state, as last read.
    finish: std::sync::Mutex<Vec<(String, String, u64)>>,
    /// Batches in the stream not yet delivered, as last read from the server.
    pending: AtomicU64,
    /// Change events applied (won, overtaken or already applied: accounted for).
    changes: AtomicU64,
    /// Milliseconds from the newest change's cluster time to its commit here.
    apply_lag_ms: AtomicU64,
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
    pub(crate) fn committed(&self, rows: u64, rejects: RejectCounts) {
        for (count, by_kind) in rejects.0.iter().zip(&self.rejects_by_kind) {
            by_kind.fetch_add(*count, Ordering::Relaxed);
        }
        let rejects = rejects.total();
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

    /// Rejects so far, by kind.
    pub(crate) fn rejects_by_kind(&self) -> impl Iterator<Item = (RejectKind, u64)> + '_ {
        RejectKind::ALL
            .iter()
            .zip(&self.rejects_by_kind)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
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

    pub(crate) fn set_finish(&self, counts: Vec<(String, String, u64)>) {
        if let Ok(mut finish) = self.finish.lock() {
            *finish = counts;
        }
    }

    /// `mongo2pg finish`'s items by kind and state, as last read.
    pub(crate) fn finish(&self) -> Vec<(String, String, u64)> {
        self.finish.lock().map(|f| f.clone()).unwrap_or_default()
    }

    pub(crate) fn set_pending(&self, pending: u64) {
        self.pending.store(pending, Ordering::Relaxed);
    }

    pub(crate) fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
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
