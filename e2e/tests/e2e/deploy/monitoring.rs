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
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}
