//! A Prometheus `/metrics` endpoint (`--metrics-addr`), served by each daemon.
//!
//! The exposition format is a few lines of text, written by each daemon; serving one
//! GET is a few lines more, written here rather than pulling in an HTTP framework.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A scrape that has not sent its request within this long is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves scrapes one at a time, each answered with `render()`, until `stop` is
/// cancelled.
pub async fn serve(listener: TcpListener, render: impl Fn() -> String, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &render)).await;
            }
            Err(err) => tracing::debug!(error = %err, "metrics connection failed"),
        }
    }
}

async fn answer(mut stream: TcpStream, render: &impl Fn() -> String) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let (status, body) = if request.starts_with(b"GET /metrics ") {
        ("200 OK", render())
    } else {
        (
            "404 Not Found",
            "only /metrics is served here\n".to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// A label value as the exposition format writes it: backslash, quote and newline
/// escaped.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one metric's `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A latency histogram shared by a process's tasks: fixed buckets of seconds, counted
/// lock-free, written cumulatively as Prometheus reads them.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    micros: AtomicU64,
}

/// Bucket bounds, in seconds, for a round trip to a server (a batch written, a publish
/// acknowledged).
pub const ROUND_TRIP_BUCKETS: [f64; 10] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(&ROUND_TRIP_BUCKETS)
    }
}

impl Histogram {
    /// An empty histogram with these bucket bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            micros: AtomicU64::new(0),
        }
    }

    /// Counts one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Writes the histogram as `name` with the `run` label (escaped already).
    pub fn render(&self, out: &mut String, name: &str, help: &str, run: &str) {
        header(out, name, "histogram", help);
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{run=\"{run}\",le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{run=\"{run}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum{{run=\"{run}\"}} {}",
            self.micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{run=\"{run}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histograms_count_cumulatively() {
        let histogram = Histogram::new(&ROUND_TRIP_BUCKETS);
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_millis(300));
        let mut out = String::new();
        histogram.render(&mut out, "x_seconds", "X.", "r");
        assert!(
            out.contains("x_seconds_bucket{run=\"r\",le=\"0.005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{run=\"r\",le=\"0.25\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{run=\"r\",le=\"0.5\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{run=\"r\",le=\"+Inf\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_sum{run=\"r\"} 0.303\n"), "{out}");
        assert!(out.contains("x_seconds_count{run=\"r\"} 2\n"), "{out}");
    }
}
