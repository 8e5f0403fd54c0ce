//! Counters every writer of a process adds to, read by the throughput log and the
//! final report.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    batches: AtomicU64,
    rows: AtomicU64,
    rejects: AtomicU64,
    duplicates: AtomicU64,
    dead_letters: AtomicU64,
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
    pub fn committed(&self, rows: u64, rejects: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.rejects.fetch_add(rejects, Ordering::Relaxed);
    }

    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dead_letter(&self) {
        self.dead_letters.fetch_add(1, Ordering::Relaxed);
    }

    pub fn totals(&self) -> Totals {
        Totals {
            batches: self.batches.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            rejects: self.rejects.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
        }
    }
}
