//! What people watch: the real OTLP export of a migration, received by an in-test
//! collector, and each consumer's Prometheus metrics.

use std::time::Duration;

use bson::{doc, Document};
use e2e::otlp::{Collector, Received};
use e2e::private::free_port;
use e2e::{assert_success, TestEnv};

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_is_one_trace_from_mongodb_page_to_postgresql_commit() {
    let env = TestEnv::new("traces").await.expect("env");
    let docs: Vec<Document> = (0..2000)
        .map(|i| doc! { "_id": i, "name": format!("n{i}") })
        .collect();
    env.db()
        .collection::<Document>("items")
        .insert_many(&docs)
        .await
        .expect("insert");

    let (collector, endpoint, server) = Collector::serve().expect("collector");

    let mut consumer = env
        .command("consumer", "r")
        .args(["run", "--exit-when-done", "--writers", "2"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("consumer");
    let produced = env
        .command("producer", "r")
        .args(["run", "--batch-size", "500"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .output()
        .await
        .expect("producer");
    assert_success(&produced, "producer");
    let status = tokio::time::timeout(Duration::from_secs(120), consumer.wait())
        .await
        .expect("consumer finishes")
        .expect("status");
    assert!(status.success());

    // Both processes flush their spans before exiting.
    let spans: Vec<Received> = collector
        .spans
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    server.abort();
    let named = |service: &str, name: &str| -> Vec<&Received> {
        spans
            .iter()
            .filter(|s| s.service == service && s.name == name)
            .collect()
    };
    let batches = named("producer", "batch");
    assert_eq!(
        batches.len(),
        4,
        "one batch span per batch: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    for name in ["page", "publish", "ack", "collection", "run"] {
        assert!(
            !named("producer", name).is_empty(),
            "no producer {name} span"
        );
    }
    for name in ["decode", "plan", "map", "copy", "commit", "ack"] {
        assert!(
            !named("consumer", name).is_empty(),
            "no consumer {name} span"
        );
    }
    let run = named("producer", "run")[0];
    assert_eq!(
        run.attributes.get("documents").map(String::as_str),
        Some("2000")
    );
    assert!(
        run.attributes
            .get("docs_per_sec")
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n > 0)),
        "{run:?}"
    );
    assert!(named("producer", "collection")[0]
        .attributes
        .contains_key("docs_per_sec"));

    let consumes = named("consumer", "consume");
    let copies = named("consumer", "copy");
    for batch in batches {
        for key in ["run", "collection", "batch_id", "seq", "documents", "bytes"] {
            assert!(
                batch.attributes.contains_key(key),
                "producer batch span lacks {key}: {batch:?}"
            );
        }
        let id = &batch.attributes["batch_id"];
        let consume = consumes
            .iter()
            .find(|c| c.attributes.get("batch_id") == Some(id))
            .unwrap_or_else(|| panic!("no consume span for batch {id}"));
        assert_eq!(
            consume.trace_id, batch.trace_id,
            "the consumer joined the producer's trace"
        );
        for key in [
            "collection",
            "seq",
            "documents",
            "bytes",
            "rows",
            "rejects",
            "outcome",
        ] {
            assert!(
                consume.attributes.contains_key(key),
                "consume span lacks {key}: {consume:?}"
            );
        }
        assert_eq!(consume.attributes["rows"], "500");
        assert!(
            copies.iter().any(|c| c.trace_id == batch.trace_id),
            "the COPY of batch {id} is in its trace"
        );
    }
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_serve_prometheus_metrics() {
    let env = TestEnv::new("metrics").await.expect("env");
    let docs: Vec<Document> = (0..1000).map(|i| doc! { "_id": i, "v": i }).collect();
    env.db()
        .collection::<Document>("things")
        .insert_many(&docs)
        .await
        .expect("insert");
    assert_success(
        &env.producer("r", &["run", "--batch-size", "100"])
            .await
            .expect("run"),
        "producer",
    );

    let port = free_port().expect("port");
    let mut consumer = env
        .command("consumer", "r")
        .args(["run", "--metrics-addr", &format!("127.0.0.1:{port}")])
        .spawn()
        .expect("consumer");
    let mut text = String::new();
    for _ in 0..300 {
        text = e2e::scrape::metrics(port).await;
        if metric(&text, "mongo2pg_documents_committed_total") == Some(1000.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert_eq!(
        metric(&text, "mongo2pg_documents_committed_total"),
        Some(1000.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "mongo2pg_batches_committed_total"),
        Some(10.0),
        "{text}"
    );
    assert_eq!(metric(&text, "mongo2pg_rejects_total"), Some(0.0));
    assert_eq!(
        metric(&text, "mongo2pg_batch_write_seconds_count"),
        Some(10.0),
        "{text}"
    );
    assert!(
        text.contains("mongo2pg_batch_write_seconds_bucket{run=\"r\",le=\"+Inf\"} 10"),
        "{text}"
    );
    assert!(text.contains("# TYPE mongo2pg_stream_pending_batches gauge"));

    if let Some(pid) = consumer.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let status = tokio::time::timeout(Duration::from_secs(30), consumer.wait())
        .await
        .expect("stops")
        .expect("status");
    assert!(status.success(), "SIGTERM ends a consumer with status 0");
}
