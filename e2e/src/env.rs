//! A test's private slice of the shared services, and the binaries run against it.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use rand::Rng;
use tokio::process::{Child, Command};

pub const DEFAULT_MONGODB_URI: &str = "mongodb://127.0.0.1:27017/?directConnection=true";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// A built binary of the workspace.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// One test's private slice of the three services.
pub struct TestEnv {
    pub name: String,
    pub mongodb_uri: String,
    pub mongo_database: String,
    pub nats_url: String,
    pub stream: String,
    /// The test's own PostgreSQL database.
    pub database_url: String,
    pub mongo: mongodb::Client,
    /// Variables every command gets (see [`Services::env`]).
    pub env: Vec<(String, String)>,
    /// Removes the databases and streams when the env is dropped.
    _cleanup: Cleanup,
}

/// The names of what a test created, removed on drop.
struct Cleanup {
    mongodb_uri: String,
    mongo_database: String,
    nats_url: String,
    stream: String,
    admin_database_url: String,
    pg_database: String,
}

/// Where the three services are.
#[derive(Debug, Clone)]
pub struct Services {
    pub mongodb_uri: String,
    pub nats_url: String,
    /// A database the test may connect to in order to create its own.
    pub admin_database_url: String,
    /// Variables every command of the env gets besides the URLs (credentials and
    /// certificates of secured servers).
    pub env: Vec<(String, String)>,
}

impl Services {
    /// The shared services, from the environment or the standard local ports.
    pub fn shared() -> Self {
        Services {
            mongodb_uri: env_or("MONGODB_URI", DEFAULT_MONGODB_URI),
            nats_url: env_or("NATS_URL", DEFAULT_NATS_URL),
            admin_database_url: env_or("DATABASE_URL", DEFAULT_DATABASE_URL),
            env: Vec::new(),
        }
    }
}

impl TestEnv {
    /// Creates the test's databases on the shared services.
    pub async fn new(test: &str) -> Result<Self> {
        Self::on(test, Services::shared()).await
    }

    /// Creates the test's databases on the given services; the stream appears when a
    /// binary first runs.
    pub async fn on(test: &str, services: Services) -> Result<Self> {
        let suffix: String = (0..8)
            .map(|_| {
                char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::rng().random_range(0..36)])
            })
            .collect();
        let name = format!("e2e_{}_{suffix}", test.chars().take(20).collect::<String>());
        let Services {
            mongodb_uri,
            nats_url,
            admin_database_url,
            env,
        } = services;
        let mut url = url::Url::parse(&admin_database_url).context("DATABASE_URL is not a URL")?;
        url.set_path(&name);
        let database_url = url.to_string();

        let admin = pg_connect(&admin_database_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .context("creating the test database")?;
        let mongo = mongodb::Client::with_uri_str(&mongodb_uri).await?;
        let stream = format!("E2E_{suffix}");
        Ok(TestEnv {
            _cleanup: Cleanup {
                mongodb_uri: mongodb_uri.clone(),
                mongo_database: name.clone(),
                nats_url: nats_url.clone(),
                stream: stream.clone(),
                admin_database_url,
                pg_database: name.clone(),
            },
            stream,
            mongo_database: name.clone(),
            name,
            mongodb_uri,
            nats_url,
            database_url,
            mongo,
            env,
        })
    }

    pub fn db(&self) -> mongodb::Database {
        self.mongo.database(&self.mongo_database)
    }

    /// Another MongoDB database of the test's own (`<name>_<tag>`), removed with the
    /// first; a run reads it with `mongo_database` set to both names.
    pub fn other_db(&self, tag: &str) -> mongodb::Database {
        self.mongo
            .database(&format!("{}_{tag}", self._cleanup.mongo_database))
    }

    /// Writes `text` to a file named after this env and `suffix` (a mapping, say) in
    /// the temporary folder; returns its path.
    pub fn write_file(&self, suffix: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!("{}-{suffix}", self.name));
        if let Err(err) = std::fs::write(&path, text) {
            panic!("writing {}: {err}", path.display());
        }
        path.display().to_string()
    }

    /// A connection to the test's PostgreSQL database.
    pub async fn pg(&self) -> Result<tokio_postgres::Client> {
        pg_connect(&self.database_url).await
    }

    /// A command for one of the binaries, pointed at this env's services.
    pub fn command(&self, binary_name: &str, run: &str) -> Command {
        let mut command = Command::new(binary(binary_name));
        command
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("MONGODB_URI", &self.mongodb_uri)
            .env("MONGODB_DATABASE", &self.mongo_database)
            .env("NATS_URL", &self.nats_url)
            .env("NATS_STREAM", &self.stream)
            .env("DATABASE_URL", &self.database_url)
            .env("MIGRATION_RUN", run)
            .env(
                "RUST_LOG",
                std::env::var("E2E_RUST_LOG").unwrap_or("warn".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `producer <args>` to completion.
    pub async fn producer(&self, run: &str, args: &[&str]) -> Result<Output> {
        let output = self
            .command("producer", run)
            .args(args)
            .output()
            .await
            .context("running the producer")?;
        Ok(output)
    }

    /// Runs `mongo2pg <args>` (an operator command) to completion.
    pub async fn mongo2pg(&self, run: &str, args: &[&str]) -> Result<Output> {
        let output = self
            .command("mongo2pg", run)
            .args(args)
            .output()
            .await
            .context("running mongo2pg")?;
        Ok(output)
    }

    /// Runs `mongo2pg <args>` to completion; its exit code and everything it printed
    /// (stdout, then stderr), for commands whose report is the result (`verify`).
    pub async fn mongo2pg_report(&self, run: &str, args: &[&str]) -> Result<(Option<i32>, String)> {
        let output = self.mongo2pg(run, args).await?;
        let text = format!(
            "{}{}",
            stdout(&output),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok((output.status.code(), text))
    }

    /// Asserts that `mongo2pg status` calls the run complete and says `status_says`,
    /// and that `mongo2pg verify` (with `verify_args`) finds the target equal to the
    /// source.
    pub async fn assert_complete_and_verified(
        &self,
        run: &str,
        status_says: &str,
        verify_args: &[&str],
    ) -> Result<()> {
        let (code, text) = self.mongo2pg_report(run, &["status"]).await?;
        ensure!(code == Some(0), "status exit {code:?}: {text}");
        ensure!(
            text.contains(status_says),
            "status lacks {status_says:?}: {text}"
        );
        let args: Vec<&str> = std::iter::once("verify")
            .chain(verify_args.iter().copied())
            .collect();
        let (code, text) = self.mongo2pg_report(run, &args).await?;
        ensure!(code == Some(0), "verify exit {code:?}: {text}");
        Ok(())
    }

    /// Starts `consumer run --exit-when-done` with fast redelivery for tests.
    pub fn spawn_consumer(&self, run: &str, extra: &[&str]) -> Result<Child> {
        let child = self
            .command("consumer", run)
            .args([
                "run",
                "--exit-when-done",
                "--writers",
                "2",
                "--ack-wait",
                "5s",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting a consumer")?;
        Ok(child)
    }

    /// Runs `count` consumers until they all exit by themselves, within `limit`.
    pub async fn run_consumers(
        &self,
        run: &str,
        count: usize,
        extra: &[&str],
        limit: Duration,
    ) -> Result<Vec<Output>> {
        let children = (0..count)
            .map(|_| self.spawn_consumer(run, extra))
            .collect::<Result<Vec<_>>>()?;
        let outputs = tokio::time::timeout(
            limit,
            futures::future::join_all(children.into_iter().map(Child::wait_with_output)),
        )
        .await
        .context("consumers did not finish in time")?;
        let outputs = outputs.into_iter().collect::<std::io::Result<Vec<_>>>()?;
        for output in &outputs {
            if !output.status.success() {
                bail!(
                    "a consumer failed ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
        Ok(outputs)
    }
}

impl Cleanup {
    async fn remove(&self) -> Result<()> {
        let mongo = mongodb::Client::with_uri_str(&self.mongodb_uri).await?;
        let _ = mongo.database(&self.mongo_database).drop().await;
        let others = format!("{}_", self.mongo_database);
        for name in mongo.list_database_names().await.unwrap_or_default() {
            if name.starts_with(&others) {
                let _ = mongo.database(&name).drop().await;
            }
        }
        if let Ok(client) = async_nats::connect(common::broker::server_urls(&self.nats_url)).await {
            let js = async_nats::jetstream::new(client);
            for stream in [
                self.stream.clone(),
                format!("{}_DLQ", self.stream),
                format!("KV_{}_state", self.stream),
                format!("OBJ_{}_blobs", self.stream),
            ] {
                let _ = js.delete_stream(&stream).await;
            }
        }
        let admin = pg_connect(&self.admin_database_url).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.pg_database
            ))
            .await?;
        Ok(())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Drop cannot await: clean up on a runtime of its own, on a thread of its own so
        // that this works from inside the test's runtime too.
        let cleaned = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(self.remove())
                })
                .join()
        });
        if let Ok(Err(err)) = cleaned {
            eprintln!("cleanup of {} failed: {err:#}", self.pg_database);
        }
    }
}

/// Connects to PostgreSQL as the binaries do (`sslmode` and the rest understood), the
/// connection driven by a task of the current runtime.
pub async fn pg_connect(url: &str) -> Result<tokio_postgres::Client> {
    landing::pg::connect(url)
        .await
        .with_context(|| format!("connecting to {}", common::config::redact_url(url)))
}

/// Makes table `events` (the default table's shape) with a trigger that refuses, the
/// same way on every delivery, any COPY holding a document with `kind = "bad"`: it
/// runs once per statement, after the rows, so it fails the batch as a whole (SQLSTATE
/// P0001, at no row) and the batch is retried, then dead-lettered. Dropping trigger
/// `refuse` fixes the cause.
pub async fn refuse_bad_events(pg: &tokio_postgres::Client) -> Result<()> {
    refuse_bad_documents(pg, "events").await
}

/// [`refuse_bad_events`] for any default-shaped `table`.
pub async fn refuse_bad_documents(pg: &tokio_postgres::Client, table: &str) -> Result<()> {
    pg.batch_execute(&format!(
        r#"CREATE TABLE {table} (_id text PRIMARY KEY, doc jsonb);
           CREATE FUNCTION refuse_bad_{table}() RETURNS trigger AS $$
           BEGIN
             IF EXISTS (SELECT 1 FROM new_rows WHERE doc->>'kind' = 'bad') THEN
               RAISE EXCEPTION 'refused by trigger';
             END IF;
             RETURN NULL;
           END $$ LANGUAGE plpgsql;
           CREATE TRIGGER refuse AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
             FOR EACH STATEMENT EXECUTE FUNCTION refuse_bad_{table}();"#
    ))
    .await
    .context("creating the refusing trigger")
}

/// Asserts a command failed with exactly one line on stderr containing `expected`, and
/// no panic or backtrace.
pub fn assert_one_line_error(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    assert!(
        lines[0].contains(expected),
        "expected {expected:?} in: {}",
        lines[0]
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

/// Runs `command`, then checks: non-zero exit within `within`, one error line holding
/// `expected`, and `secret` in neither stdout nor stderr.
pub async fn assert_fails_fast(
    mut command: Command,
    expected: &str,
    secret: &str,
    within: Duration,
) -> Output {
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(within + Duration::from_secs(50), command.output())
        .await
        .expect("the command ended")
        .expect("the command ran");
    let took = started.elapsed();
    assert_one_line_error(&out, expected);
    assert!(took < within, "took {took:?} to fail: {out:?}");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !printed.contains(secret),
        "the secret was printed: {printed}"
    );
    out
}

/// Standard output of a command, for messages in assertions.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts a command succeeded, showing its output when it did not.
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
