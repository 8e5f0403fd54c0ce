//! The producer's Prometheus metrics (`--metrics-addr`), served by
//! [`common::exposition`]: what this process published per collection against the
//! collection's estimate, its ranges, how long the stream took to acknowledge a
//! publish and how often one was sent again; for a followed run the change stream's
//! progress, how far behind MongoDB it reads, and the oplog headroom left before its
//! position falls out of the oplog (from the start position while the snapshot is
//! read, then from the follower's checkpoint).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use common::exposition::{header, label, Histogram};

/// What this producer did, shared by its tasks.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    published: Mutex<BTreeMap<String, Published>>,
    /// MongoDB's estimate of each collection's documents, at the run's start.
    estimated: Mutex<BTreeMap<String, u64>>,
    /// Per collection read in ranges: how many, how many complete (as last seen), and
    /// how many this process reads now.
    ranges: Mutex<BTreeMap<String, Ranges>>,
    /// From sending a batch to the stream's acknowledgement.
    publish_latency: Histogram,
    /// Batches sent again after a failed or missing acknowledgement.
    publish_retries: AtomicU64,
    change_events: AtomicU64,
    change_batches: AtomicU64,
    following: AtomicBool,
    /// Seconds between MongoDB's cluster time and the last change read, and the oplog
    /// headroom, when last measured.
    position: Mutex<Option<(u64, Option<i64>)>>,
}

/// A collection's ranges, as this process sees them.
#[derive(Debug, Default, Clone, Copy)]
struct Ranges {
    total: u64,
    done: u64,
    reading: u64,
}

/// A collection's snapshot batches sent by this process.
#[derive(Debug, Default, Clone, Copy)]
struct Published {
    documents: u64,
    bytes: u64,
    batches: u64,
}

impl Metrics {
    /// A snapshot batch of `documents` (`bytes` on the wire) sent.
    pub(crate) fn published(&self, collection: &str, documents: u64, bytes: u64) {
        if let Ok(mut published) = self.published.lock() {
            let entry = published.entry(collection.to_string()).or_default();
            entry.documents += documents;
            entry.bytes += bytes;
            entry.batches += 1;
        }
    }

    /// A collection of the run and MongoDB's estimate of its documents; its published
    /// counters start at zero, so that what is left to read is known before it starts.
    pub(crate) fn estimated(&self, collection: &str, documents: u64) {
        if let Ok(mut estimated) = self.estimated.lock() {
            estimated.insert(collection.to_string(), documents);
        }
        if let Ok(mut published) = self.published.lock() {
            published.entry(collection.to_string()).or_default();
        }
    }

    /// A collection's ranges: `total`, `done` complete as last seen.
    pub(crate) fn ranges(&self, collection: &str, total: u64, done: u64) {
        if let Ok(mut ranges) = self.ranges.lock() {
            let entry = ranges.entry(collection.to_string()).or_default();
            entry.total = total;
            entry.done = done;
        }
    }

    /// A range of `collection` taken (`true`) or left (`false`) by a reader here.
    pub(crate) fn reading_range(&self, collection: &str, taken: bool) {
        if let Ok(mut ranges) = self.ranges.lock() {
            let entry = ranges.entry(collection.to_string()).or_default();
            if taken {
                entry.reading += 1;
            } else {
                entry.reading = entry.reading.saturating_sub(1);
            }
        }
    }

    /// A publish acknowledged `elapsed` after it was first sent.
    pub(crate) fn acknowledged(&self, elapsed: std::time::Duration) {
        self.publish_latency.observe(elapsed);
    }

    /// A batch sent again.
    pub(crate) fn retried(&self) {
        self.publish_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Change batches acknowledged by the stream, with their events.
    pub(crate) fn changes(&self, events: u64, batches: u64) {
        self.change_events.fetch_add(events, Ordering::Relaxed);
        self.change_batches.fetch_add(batches, Ordering::Relaxed);
    }

    /// Whether this process follows the change stream (holds the follower lease).
    pub(crate) fn following(&self, yes: bool) {
        self.following.store(yes, Ordering::Relaxed);
    }

    /// No position measured: this process neither reads the snapshot of a followed run
    /// nor follows.
    pub(crate) fn forget_position(&self) {
        if let Ok(mut position) = self.position.lock() {
            *position = None;
        }
    }

    /// Whether this process follows the change stream.
    pub(crate) fn is_following(&self) -> bool {
        self.following.load(Ordering::Relaxed)
    }

    /// The follower's lag and oplog headroom, as last measured.
    pub(crate) fn position(&self, lag_seconds: u64, headroom_seconds: Option<i64>) {
        if let Ok(mut position) = self.position.lock() {
            *position = Some((lag_seconds, headroom_seconds));
        }
    }

    /// The exposition text.
    pub(crate) fn render(&self, run: &str) -> String {
        let run = label(run);
        let mut out = String::new();
        let published = self.published.lock().map(|p| p.clone()).unwrap_or_default();
        let per_collection = [
            (
                "mongo2pg_producer_documents_published_total",
                "Snapshot documents this process sent to the stream.",
                (|p: &Published| p.documents) as fn(&Published) -> u64,
            ),
            (
                "mongo2pg_producer_bytes_published_total",
                "Bytes of snapshot batches this process sent to the stream.",
                |p: &Published| p.bytes,
            ),
            (
                "mongo2pg_producer_batches_published_total",
                "Snapshot batches this process sent to the stream.",
                |p: &Published| p.batches,
            ),
        ];
        for (name, help, value) in per_collection {
            header(&mut out, name, "counter", help);
            for (collection, p) in &published {
                let _ = writeln!(
                    out,
                    "{name}{{run=\"{run}\",collection=\"{}\"}} {}",
                    label(collection),
                    value(p)
                );
            }
        }
        let estimated = self.estimated.lock().map(|e| e.clone()).unwrap_or_default();
        let name = "mongo2pg_producer_documents_estimated";
        header(
            &mut out,
            name,
            "gauge",
            "MongoDB's estimate of the collection's documents when the run started.",
        );
        for (collection, documents) in &estimated {
            let _ = writeln!(
                out,
                "{name}{{run=\"{run}\",collection=\"{}\"}} {documents}",
                label(collection)
            );
        }
        let ranges = self.ranges.lock().map(|r| r.clone()).unwrap_or_default();
        let name = "mongo2pg_producer_ranges";
        header(
            &mut out,
            name,
            "gauge",
            "A collection's _id ranges by state: done (complete, as this process last saw), reading (by this process), waiting (the rest: left, or read by another producer).",
        );
        for (collection, r) in &ranges {
            let waiting = r.total.saturating_sub(r.done + r.reading);
            for (state, value) in [
                ("done", r.done),
                ("reading", r.reading),
                ("waiting", waiting),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{run=\"{run}\",collection=\"{}\",state=\"{state}\"}} {value}",
                    label(collection)
                );
            }
        }
        self.publish_latency.render(
            &mut out,
            "mongo2pg_producer_publish_seconds",
            "From sending a batch (snapshot or changes) to the stream's acknowledgement.",
            &run,
        );
        let mut single = |name: &str, kind: &str, help: &str, value: String| {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name}{{run=\"{run}\"}} {value}");
        };
        single(
            "mongo2pg_producer_change_events_published_total",
            "counter",
            "Change events this process published and the stream acknowledged.",
            self.change_events.load(Ordering::Relaxed).to_string(),
        );
        single(
            "mongo2pg_producer_change_batches_published_total",
            "counter",
            "Change batches this process published and the stream acknowledged.",
            self.change_batches.load(Ordering::Relaxed).to_string(),
        );
        single(
            "mongo2pg_producer_publish_retries_total",
            "counter",
            "Batches sent again after the stream failed to acknowledge them (NATS restarting, a timeout).",
            self.publish_retries.load(Ordering::Relaxed).to_string(),
        );
        single(
            "mongo2pg_producer_following",
            "gauge",
            "1 while this process follows the change stream (holds the follower lease).",
            u8::from(self.following.load(Ordering::Relaxed)).to_string(),
        );
        let position = self.position.lock().map(|p| *p).unwrap_or_default();
        if let Some((lag, headroom)) = position {
            single(
                "mongo2pg_producer_change_lag_seconds",
                "gauge",
                "Seconds between MongoDB's cluster time and the last change read, when last measured.",
                lag.to_string(),
            );
            if let Some(headroom) = headroom {
                single(
                    "mongo2pg_producer_oplog_headroom_seconds",
                    "gauge",
                    "Seconds left before the run's position falls out of the oplog, when last measured.",
                    headroom.to_string(),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_per_collection_counters_and_the_follower_gauges() {
        let metrics = Metrics::default();
        metrics.published("users", 5000, 1_000_000);
        metrics.published("users", 10, 2_000);
        metrics.published("a\"b", 1, 10);
        metrics.changes(7, 2);
        metrics.following(true);
        metrics.position(3, Some(86_000));
        let text = metrics.render("r1");
        for line in [
            "mongo2pg_producer_documents_published_total{run=\"r1\",collection=\"users\"} 5010",
            "mongo2pg_producer_bytes_published_total{run=\"r1\",collection=\"users\"} 1002000",
            "mongo2pg_producer_batches_published_total{run=\"r1\",collection=\"a\\\"b\"} 1",
            "mongo2pg_producer_change_events_published_total{run=\"r1\"} 7",
            "mongo2pg_producer_following{run=\"r1\"} 1",
            "mongo2pg_producer_change_lag_seconds{run=\"r1\"} 3",
            "mongo2pg_producer_oplog_headroom_seconds{run=\"r1\"} 86000",
            "# TYPE mongo2pg_producer_documents_published_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
