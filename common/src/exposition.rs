//! A Prometheus `/metrics` endpoint (`--metrics-addr`), served by each daemon.
//!
//! The exposition format is a few lines of text, written by each daemon; serving one
//! GET is a few lines more, written here rather than pulling in an HTTP framework.

use std::fmt::Write as _;
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

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
