//! The alert rules in deploy/monitoring: valid for Prometheus, and right on recorded
//! metric values (`promtool test rules`: a falling headroom, a growing lag, dead
//! letters, no follower, stalled or absent consumers fire; a healthy run fires none).
//! That every metric they read is served, with its `run` label, is checked against a
//! real run by `telemetry::the_producer_serves_its_progress_lag_and_headroom`.

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring");
    let output = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("promtool (scripts/tools.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_fire_when_they_should() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS: 8 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// `docker compose --profile monitoring up` starts Prometheus (scraping the consumers
/// and the producer, with the alert rules) and Grafana (the data source and the
/// dashboard provisioned): every file they mount exists, and Prometheus' own check
/// passes on its configuration. The Kubernetes pods carry the scrape annotations.
#[test]
fn compose_and_kubernetes_are_ready_to_be_scraped() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let compose: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root.join("compose.yaml")).expect("compose"),
    )
    .expect("yaml");
    for name in ["prometheus", "grafana"] {
        let service = &compose["services"][name];
        assert_eq!(
            service["profiles"][0].as_str(),
            Some("monitoring"),
            "{name} runs under the monitoring profile"
        );
        for volume in service["volumes"].as_sequence().expect("volumes") {
            let source = volume
                .as_str()
                .expect("a bind mount")
                .split(':')
                .next()
                .expect("source");
            assert!(
                root.join(source).is_file(),
                "{name} mounts {source}, which is missing"
            );
        }
    }
    assert_eq!(
        compose["services"]["producer"]["environment"]["METRICS_ADDR"].as_str(),
        Some("0.0.0.0:9465")
    );
    let checked = promtool(&["check", "config", "prometheus.yml"]);
    assert!(checked.contains("SUCCESS: 8 rules found"), "{checked}");
    let prometheus = std::fs::read_to_string(root.join("deploy/monitoring/prometheus.yml"))
        .expect("prometheus.yml");
    assert!(prometheus.contains("port: 9464") && prometheus.contains("port: 9465"));

    for (file, port) in [("consumer.yaml", "9464"), ("producer.yaml", "9465")] {
        let manifest: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(root.join("deploy/k8s").join(file)).expect("manifest"),
        )
        .expect("yaml");
        let pod = &manifest["spec"]["template"];
        let annotations = &pod["metadata"]["annotations"];
        assert_eq!(
            annotations["prometheus.io/scrape"].as_str(),
            Some("true"),
            "{file}"
        );
        assert_eq!(
            annotations["prometheus.io/port"].as_str(),
            Some(port),
            "{file}"
        );
        let args: Vec<&str> = pod["spec"]["containers"][0]["args"]
            .as_sequence()
            .expect("args")
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert!(
            args.windows(2)
                .any(|w| w == ["--metrics-addr", &format!("0.0.0.0:{port}")]),
            "{file}: {args:?}"
        );
    }
}
