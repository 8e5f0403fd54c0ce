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
    // Ten documents whose v is no integer, ten without one: rejects by reason.
    let docs: Vec<Document> = (0..1000)
        .map(|i| match i % 100 {
            7 => doc! { "_id": i, "v": "seven" },
            8 => doc! { "_id": i },
            _ => doc! { "_id": i, "v": i },
        })
        .collect();
    let mapping = env.write_file(
        "mapping.toml",
        "[collections.things]\ncolumns = [ { path = \"_id\", type = \"int8\" }, { path = \"v\", type = \"int8\", required = true } ]\n",
    );
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
        .args([
            "run",
            "--mapping",
            &mapping,
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .spawn()
        .expect("consumer");
    let mut text = String::new();
    for _ in 0..300 {
        text = e2e::scrape::metrics(port).await;
        if metric(&text, "mongo2pg_batches_committed_total") == Some(10.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert_eq!(
        metric(&text, "mongo2pg_documents_committed_total"),
        Some(980.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "mongo2pg_batches_committed_total"),
        Some(10.0),
        "{text}"
    );
    for (reason, count) in [("type", 10), ("required", 10), ("transform", 0)] {
        assert!(
            text.contains(&format!(
                "mongo2pg_rejects_total{{run=\"r\",reason=\"{reason}\"}} {count}\n"
            )),
            "{text}"
        );
    }
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

/// The value of the sample line starting with `series` (a name and its labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Seconds of a duration as `status` writes it: `12 s`, `5 min`, `23.4 h`.
fn status_seconds(text: &str, after: &str) -> Option<f64> {
    let rest = &text[text.find(after)? + after.len()..];
    let mut words = rest.split_whitespace();
    let value: f64 = words.next()?.parse().ok()?;
    Some(match words.next()? {
        "h" => value * 3600.0,
        "min" => value * 60.0,
        _ => value,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_producer_serves_its_progress_lag_and_headroom() {
    let env = TestEnv::new("producer_metrics").await.expect("env");
    let items = env.db().collection::<Document>("items");
    items
        .insert_many((0..500).map(|i| doc! { "_id": i, "v": i }))
        .await
        .expect("insert");
    let port = free_port().expect("port");
    let mut producer = env
        .command("producer", "r")
        .args(["run", "--follow", "--batch-size", "100", "--readers", "2"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .spawn()
        .expect("producer");
    let consumer_port = free_port().expect("port");
    let mut consumer = env
        .command("consumer", "r")
        .args([
            "run",
            "--metrics-addr",
            &format!("127.0.0.1:{consumer_port}"),
        ])
        .spawn()
        .expect("consumer");
    let scrape_until = |wanted: &'static str, value: f64| async move {
        let mut text = String::new();
        for _ in 0..600 {
            text = e2e::scrape::metrics(port).await;
            if sample(&text, wanted).is_some_and(|v| v >= value) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{wanted} never reached {value}:\n{text}");
    };
    let text = scrape_until(
        "mongo2pg_producer_documents_published_total{run=\"r\",collection=\"items\"}",
        500.0,
    )
    .await;
    assert_eq!(
        sample(
            &text,
            "mongo2pg_producer_batches_published_total{run=\"r\",collection=\"items\"}"
        ),
        Some(5.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE mongo2pg_producer_bytes_published_total counter"),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "mongo2pg_producer_documents_estimated{run=\"r\",collection=\"items\"}"
        ),
        Some(500.0),
        "{text}"
    );
    // Every range done, none read any more; every batch acknowledged and timed. The
    // last batch is counted as published when it is sent, its range done once every
    // acknowledgement is in: a scrape between the two saw the range still reading.
    let text = scrape_until(
        "mongo2pg_producer_ranges{run=\"r\",collection=\"items\",state=\"done\"}",
        1.0,
    )
    .await;
    let ranges = |state: &str| {
        sample(
            &text,
            &format!(
                "mongo2pg_producer_ranges{{run=\"r\",collection=\"items\",state=\"{state}\"}}"
            ),
        )
    };
    assert!(
        ranges("done").is_some_and(|done| done >= 1.0)
            && ranges("reading") == Some(0.0)
            && ranges("waiting") == Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "mongo2pg_producer_publish_seconds_count{run=\"r\"}"),
        Some(5.0),
        "{text}"
    );

    for i in 0..200 {
        items
            // `-i - 1`: an update to the same value (0 for 0) is no event.
            .update_one(doc! { "_id": i }, doc! { "$set": { "v": -i - 1 } })
            .await
            .expect("update");
    }
    let text = scrape_until(
        "mongo2pg_producer_change_events_published_total{run=\"r\"}",
        200.0,
    )
    .await;
    assert_eq!(
        sample(&text, "mongo2pg_producer_following{run=\"r\"}"),
        Some(1.0),
        "{text}"
    );
    let text = scrape_until("mongo2pg_producer_oplog_headroom_seconds{run=\"r\"}", 1.0).await;
    let lag = sample(&text, "mongo2pg_producer_change_lag_seconds{run=\"r\"}").expect("lag");
    let headroom =
        sample(&text, "mongo2pg_producer_oplog_headroom_seconds{run=\"r\"}").expect("headroom");

    // The same figures `status` gives, measured a moment apart.
    let (_, status) = env.mongo2pg_report("r", &["status"]).await.expect("status");
    let status_lag = status_seconds(&status, "events published; lag ").expect("status lag");
    let status_headroom = status_seconds(&status, "oplog headroom: ").expect("status headroom");
    assert!(
        lag <= 10.0 && status_lag <= 10.0,
        "lag {lag} s, status {status_lag} s:\n{status}"
    );
    assert!(
        (headroom - status_headroom).abs() <= (0.05 * headroom).max(120.0),
        "headroom {headroom} s, status {status_headroom} s:\n{status}"
    );

    // finish's progress, as the consumers serve it once it has run.
    items
        .create_index(mongodb::IndexModel::builder().keys(doc! { "v": 1 }).build())
        .await
        .expect("index");
    let (code, finished) = env.mongo2pg_report("r", &["finish"]).await.expect("finish");
    assert_eq!(code, Some(0), "{finished}");
    let mut consumer_text = String::new();
    for _ in 0..300 {
        consumer_text = e2e::scrape::metrics(consumer_port).await;
        if consumer_text
            .contains("mongo2pg_finish_items{run=\"r\",kind=\"index\",state=\"built\"} 1\n")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        consumer_text
            .contains("mongo2pg_finish_items{run=\"r\",kind=\"index\",state=\"built\"} 1\n"),
        "{consumer_text}"
    );

    // Every metric the alert rules and the dashboard read is served, with the `run`
    // label they select and group by.
    let served = format!("{text}{consumer_text}");
    let monitoring = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring");
    let rules = ["alerts.yml", "dashboard.json"]
        .iter()
        .map(|f| std::fs::read_to_string(monitoring.join(f)).expect("monitoring file"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("mongo2pg_") && w.len() > "mongo2pg_".len())
        .collect();
    used.sort_unstable();
    used.dedup();
    assert!(used.len() >= 12, "{used:?}");
    for name in used {
        assert!(
            served
                .lines()
                .any(|l| l.starts_with(&format!("{name}{{run=\"r\""))),
            "{name}, read by an alert rule or the dashboard, is not served:\n{served}"
        );
    }

    // A real Prometheus scrapes both: every query of the dashboard returns data for
    // the run, and every alert rule's expression evaluates.
    let prometheus_port = free_port().expect("port");
    let dir = std::env::temp_dir().join(format!("{}-prometheus", env.name));
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: mongo2pg\n    static_configs:\n      - targets: ['127.0.0.1:{port}', '127.0.0.1:{consumer_port}']\n"
        ),
    )
    .expect("prometheus.yml");
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (scripts/tools.sh installs it)");
    // Two scrapes of each target at least, so that rates have two samples.
    let mut scraped = false;
    for _ in 0..300 {
        let counts = e2e::scrape::prometheus_query(
            prometheus_port,
            "count_over_time(up{job=\"mongo2pg\"}[1m]) >= 3",
        )
        .await;
        if counts.is_some_and(|r| r.len() == 2) {
            scraped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(scraped, "Prometheus never scraped both processes");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring.join("dashboard.json")).expect("dashboard"),
    )
    .expect("json");
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr").replace("$run", "r");
            let result = e2e::scrape::prometheus_query(prometheus_port, &expr).await;
            assert!(
                result.as_ref().is_some_and(|r| !r.is_empty()),
                "panel {:?}: {expr} returned {result:?}",
                panel["title"]
            );
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} queries");
    let alerts: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(monitoring.join("alerts.yml")).expect("alerts"),
    )
    .expect("yaml");
    let mut evaluated = 0;
    for group in alerts["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let expr = rule["expr"].as_str().expect("expr");
            assert!(
                e2e::scrape::prometheus_query(prometheus_port, expr)
                    .await
                    .is_some(),
                "alert rule expression {expr} does not evaluate"
            );
            evaluated += 1;
        }
    }
    assert_eq!(evaluated, 8, "every alert rule");
    let _ = prometheus.start_kill();
    let _ = prometheus.wait().await;
    let _ = std::fs::remove_dir_all(&dir);

    for child in [&mut producer, &mut consumer] {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
