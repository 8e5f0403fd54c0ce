//! A rehearsal of `docker compose up --scale consumer=4` without Docker (issue #13):
//! no image registry is reachable here, so the `seed`, `producer` and `consumer`
//! services of compose.yaml run as local processes with exactly their command,
//! environment and secret files, read from the file itself. What the compose network
//! would provide is stood in for, and only that:
//! - its host names (`mongo:27017`, `nats:4222`, `postgres:5432`, `jaeger:4317`)
//!   point at private servers started as the compose services are configured (a
//!   one-node replica set `rs0`, JetStream, PostgreSQL with the secret password and
//!   `POSTGRES_DB`, an OTLP receiver);
//! - `/run/secrets/<name>` is a folder holding the secret files compose.yaml names;
//! - each consumer container has its own network namespace, so each local consumer
//!   gets its own port where the command says `0.0.0.0:9464`.
//!
//! The run must complete with every document equal to its row, and the traces reach
//! the stand-in for Jaeger from both services.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use e2e::private::{free_port, PrivateMongo, PrivateNats, PrivatePostgres};
use serde_yaml_ng::Value;
use tokio::process::{Child, Command};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One service of compose.yaml as the container would see it.
struct Service {
    command: Vec<String>,
    environment: BTreeMap<String, String>,
    secrets: Vec<String>,
}

/// `${NAME:-default}` and `${NAME}` as compose interpolates them, from `vars`.
fn interpolate(text: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + end];
        let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
        out.push_str(vars.get(name).copied().unwrap_or(default));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

fn service(compose: &Value, name: &str, vars: &BTreeMap<&str, &str>) -> Service {
    let service = &compose["services"][name];
    let texts = |value: &Value| -> Vec<String> {
        value
            .as_sequence()
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| interpolate(s, vars))
                    .collect()
            })
            .unwrap_or_default()
    };
    let environment = service["environment"]
        .as_mapping()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((k.as_str()?.to_string(), interpolate(&value, vars)))
                })
                .collect()
        })
        .unwrap_or_default();
    Service {
        command: texts(&service["command"]),
        environment,
        secrets: texts(&service["secrets"]),
    }
}

/// What the compose network resolves, pointed at the local stand-ins.
struct Network {
    hosts: Vec<(String, String)>,
    secrets_dir: PathBuf,
}

impl Network {
    fn resolve(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (from, to) in &self.hosts {
            text = text.replace(from, to);
        }
        text.replace("/run/secrets", &self.secrets_dir.display().to_string())
    }

    /// The service's command as a local process, with the service's environment
    /// only (nothing inherited but PATH and HOME).
    fn command(&self, service: &Service) -> Command {
        self.command_with(service, &service.command[1..])
    }

    /// The service's binary with `args` in place of its command's.
    fn command_with(&self, service: &Service, args: &[String]) -> Command {
        let mut command = Command::new(e2e::binary(&service.command[0]));
        command
            .args(args.iter().map(|a| self.resolve(a)))
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME"))
            .envs(
                service
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v))),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_services_run_as_local_processes_complete_the_migration() {
    let text = std::fs::read_to_string(repo().join("compose.yaml")).expect("compose.yaml");
    let mut compose: Value = serde_yaml_ng::from_str(&text).expect("yaml");
    compose.apply_merge().expect("merge keys");
    // As `SEED_COUNT=20000 docker compose up` would: a smaller seed for the suite.
    let vars = BTreeMap::from([("SEED_COUNT", "20000")]);
    let seed = service(&compose, "seed", &vars);
    let mut producer = service(&compose, "producer", &vars);
    // The producer's metrics on a port of this test's own, as the consumers'.
    let producer_metrics = free_port().expect("port");
    assert_eq!(
        producer.environment.get("METRICS_ADDR").map(String::as_str),
        Some("0.0.0.0:9465"),
        "compose serves the producer's metrics"
    );
    producer.environment.insert(
        "METRICS_ADDR".into(),
        format!("127.0.0.1:{producer_metrics}"),
    );
    let consumer = service(&compose, "consumer", &vars);

    // The secret files compose mounts at /run/secrets/<name>.
    let scratch = std::env::temp_dir().join(format!("mongo2pg-compose-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let secrets_dir = scratch.join("secrets");
    std::fs::create_dir_all(&secrets_dir).expect("secrets dir");
    let secret_text = |name: &str| -> String {
        let file = compose["secrets"][name]["file"]
            .as_str()
            .unwrap_or_else(|| panic!("secret {name} has no file"));
        std::fs::read_to_string(repo().join(file)).expect("secret file")
    };

    // The services the three depend on, configured as compose.yaml configures them.
    let postgres_password = secret_text("postgres_password");
    let pg = PrivatePostgres::start_with_password("compose", postgres_password.trim())
        .expect("postgres");
    let admin = format!(
        "postgres://postgres:{}@127.0.0.1:{}/postgres",
        postgres_password.trim(),
        pg.port
    );
    let postgres_db = compose["services"]["postgres"]["environment"]["POSTGRES_DB"]
        .as_str()
        .expect("POSTGRES_DB");
    e2e::pg_connect(&admin)
        .await
        .expect("admin")
        .batch_execute(&format!("CREATE DATABASE \"{postgres_db}\""))
        .await
        .expect("POSTGRES_DB");
    let mongo = PrivateMongo::start_replica_set("compose")
        .await
        .expect("mongo");
    let nats = PrivateNats::start("compose").expect("nats");
    let (collector, endpoint, collector_task) = e2e::otlp::Collector::serve().expect("collector");
    let network = Network {
        hosts: vec![
            ("mongo:27017".into(), format!("127.0.0.1:{}", mongo.port)),
            ("nats:4222".into(), format!("127.0.0.1:{}", nats.port)),
            ("postgres:5432".into(), format!("127.0.0.1:{}", pg.port)),
            ("http://jaeger:4317".into(), endpoint.clone()),
        ],
        secrets_dir: secrets_dir.clone(),
    };
    for service in [&seed, &producer, &consumer] {
        for name in &service.secrets {
            std::fs::write(secrets_dir.join(name), network.resolve(&secret_text(name)))
                .expect("secret");
        }
    }

    // seed, then (its dependencies healthy) the producer; the consumers need only NATS
    // and PostgreSQL, so they start first, as `up` starts them.
    let out = network.command(&seed).output().await.expect("seed");
    assert!(
        out.status.success(),
        "seed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut consumers: Vec<(Child, u16)> = (0..4)
        .map(|i| {
            let port = free_port().expect("port");
            let args: Vec<String> = consumer.command[1..]
                .iter()
                .map(|a| a.replace("0.0.0.0:9464", &format!("127.0.0.1:{port}")))
                .collect();
            let log =
                std::fs::File::create(scratch.join(format!("consumer-{i}.log"))).expect("log file");
            let child = network
                .command_with(&consumer, &args)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("consumer");
            (child, port)
        })
        .collect();
    let out = network.command(&producer).output().await.expect("producer");
    assert!(
        out.status.success(),
        "producer: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Where the run stands, as the book says to ask, with the producer's settings.
    let status_service = Service {
        command: vec!["mongo2pg".into(), "status".into(), "--exact".into()],
        environment: producer.environment.clone(),
        secrets: producer.secrets.clone(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let out = network
            .command(&status_service)
            .output()
            .await
            .expect("status");
        if out.status.code() == Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not complete within 180 s: {}{}",
            e2e::stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Every document equals its row.
    let database = producer.environment["MONGODB_DATABASE"].clone();
    let source =
        mongodb::Client::with_uri_str(network.resolve(&producer.environment["MONGODB_URI"]))
            .await
            .expect("mongo client")
            .database(&database);
    let database_url = std::fs::read_to_string(secrets_dir.join("database_url")).expect("url");
    let target = e2e::pg_connect(database_url.trim()).await.expect("target");
    let digest = e2e::compare::assert_exact_copy_in(&source, &target, "users")
        .await
        .expect("every document equals its row");
    assert_eq!(digest.count, 20_000);

    // Each consumer serves its metrics on its own port, and has landed a share.
    let mut shares = Vec::new();
    for (_, port) in &consumers {
        let metrics = e2e::scrape::metrics(*port).await;
        let committed = metrics
            .lines()
            .find(|l| l.starts_with("mongo2pg_documents_committed_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no committed count on port {port}: {metrics}"));
        shares.push(committed);
    }
    assert_eq!(shares.iter().sum::<f64>(), 20_000.0, "{shares:?}");

    // `docker compose down` sends SIGTERM: each consumer stops cleanly.
    for (child, _) in &mut consumers {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("a consumer stops on SIGTERM")
            .expect("status");
        assert!(status.success(), "{status}");
    }

    // The traces reached the stand-in for Jaeger from both services.
    tokio::time::sleep(Duration::from_secs(1)).await;
    collector_task.abort();
    let services: std::collections::BTreeSet<String> = collector
        .spans
        .lock()
        .map(|spans| spans.iter().map(|s| s.service.clone()).collect())
        .unwrap_or_default();
    for name in ["producer", "consumer"] {
        assert!(
            services.contains(name),
            "no traces from {name}: {services:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
