//! The producer's Prometheus metrics (`--metrics-addr`), served by
//! [`common::exposition`]: what this process published per collection, and for a
//! followed run the change stream's progress, how far behind MongoDB it reads, and
//! the oplog headroom left before its position falls out of the oplog.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use common::exposition::{header, label};

/// What this producer did, shared by its tasks.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    published: Mutex<BTreeMap<String, Published>>,
    change_events: AtomicU64,
    change_batches: AtomicU64,
    following: AtomicBool,
    /// Seconds between MongoDB's cluster time and the last change read, and the oplog
    /// headroom, when last measured.
    position: Mutex<Option<(u64, Option<i64>)>>,
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

    /// Change batches acknowledged by the stream, with their events.
    pub(crate) fn changes(&self, events: u64, batches: u64) {
        self.change_events.fetch_add(events, Ordering::Relaxed);
        self.change_batches.fetch_add(batches, Ordering::Relaxed);
    }

    /// Whether this process follows the change stream (holds the follower lease).
    pub(crate) fn following(&self, yes: bool) {
        self.following.store(yes, Ordering::Relaxed);
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
