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

/// The body of `GET path` on loopback `port`, asked as HTTP/1.0 so that the answer is
/// neither chunked nor kept alive; empty when nothing answers.
pub async fn get(port: u16, path: &str) -> String {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// The result of PromQL `query` from the Prometheus API on `port`: `None` when the
/// query failed, else its series (empty when nothing matched).
pub async fn prometheus_query(port: u16, query: &str) -> Option<Vec<serde_json::Value>> {
    let encoded: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let body = get(port, &format!("/api/v1/query?query={encoded}")).await;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    if json["status"] != "success" {
        return None;
    }
    json["data"]["result"].as_array().cloned()
}
