//! Reading a consumer's Prometheus endpoint the way a scraper does.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The whole HTTP response of `GET /metrics` on loopback `port`; empty when nothing
/// answers yet.
pub async fn metrics(port: u16) -> String {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
}
