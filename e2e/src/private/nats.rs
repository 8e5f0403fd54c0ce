//! A private nats-server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use super::{free_port, scratch_dir, wait_for_port};

/// A nats-server with JetStream on its own port and store.
pub struct PrivateNats {
    pub port: u16,
    dir: PathBuf,
    child: Option<std::process::Child>,
    /// A config file (`-c`), for servers that need more than flags.
    config: Option<PathBuf>,
}

impl PrivateNats {
    pub fn start(name: &str) -> Result<Self> {
        let mut nats = PrivateNats {
            port: free_port()?,
            dir: scratch_dir(&format!("nats-{name}"))?,
            child: None,
            config: None,
        };
        nats.spawn()?;
        Ok(nats)
    }

    /// A server that accepts only `user` with `password`.
    pub fn start_with_user(name: &str, user: &str, password: &str) -> Result<Self> {
        Self::start_with_config(
            name,
            &format!("authorization {{\n  user: \"{user}\"\n  password: \"{password}\"\n}}\n"),
        )
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A server configured by `config` (nats-server's configuration format: an
    /// `authorization` block, say).
    pub fn start_with_config(name: &str, config_text: &str) -> Result<Self> {
        let dir = scratch_dir(&format!("nats-{name}"))?;
        let config = dir.join("nats.conf");
        std::fs::write(&config, config_text)?;
        let mut nats = PrivateNats {
            port: free_port()?,
            dir,
            child: None,
            config: Some(config),
        };
        nats.spawn()?;
        Ok(nats)
    }

    /// A server that takes only TLS connections, presenting `server`'s certificate,
    /// and only `user` with `password`.
    pub fn start_with_tls(
        name: &str,
        user: &str,
        password: &str,
        server: &crate::certs::Issued,
    ) -> Result<Self> {
        Self::start_with_config(
            name,
            &format!(
                "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\nauthorization {{\n  user: \"{user}\"\n  password: \"{password}\"\n}}\n",
                server.cert.display(),
                server.key.display()
            ),
        )
    }

    /// A server that takes only TLS connections presenting a certificate `ca` signed
    /// (mutual TLS: `verify: true`), with no other login.
    pub fn start_with_client_certs(
        name: &str,
        server: &crate::certs::Issued,
        ca: &Path,
    ) -> Result<Self> {
        Self::start_with_config(
            name,
            &format!(
                "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n}}\n",
                server.cert.display(),
                server.key.display(),
                ca.display()
            ),
        )
    }

    fn spawn(&mut self) -> Result<()> {
        let mut command = Command::new("nats-server");
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("server.log"))?)
            .spawn()
            .context("starting nats-server (is it installed? scripts/services.sh installs it)")?;
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(15)).with_context(|| {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            format!("nats-server did not start: {}", log.trim())
        })
    }

    /// Kills the server (SIGKILL); [`PrivateNats::start_again`] brings it back.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts a stopped server again on the same port and store.
    pub fn start_again(&mut self) -> Result<()> {
        self.spawn()
    }

    /// Kills the server (SIGKILL) and starts it again on the same port and store.
    pub fn restart(&mut self, down_for: Duration) -> Result<()> {
        self.kill();
        std::thread::sleep(down_for);
        self.spawn()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three nats-servers with JetStream in one cluster, each with its own ports and
/// store: streams of three replicas survive any one of them going down.
pub struct PrivateNatsCluster {
    pub nodes: Vec<PrivateNats>,
    name: String,
}

impl PrivateNatsCluster {
    pub async fn start(name: &str) -> Result<Self> {
        let cluster_ports = [free_port()?, free_port()?, free_port()?];
        let routes: Vec<String> = cluster_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let mut nodes = Vec::new();
        for (i, port) in cluster_ports.iter().enumerate() {
            nodes.push(PrivateNats::start_with_config(
                &format!("{name}-{i}"),
                &format!(
                    "server_name: {name}-{i}\ncluster {{\n  name: {name}\n  listen: 127.0.0.1:{port}\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                ),
            )?);
        }
        let cluster = PrivateNatsCluster {
            nodes,
            name: name.to_string(),
        };
        cluster.wait_for_jetstream().await?;
        Ok(cluster)
    }

    /// Every server's URL, comma-separated: clients move to another when theirs dies.
    pub fn url(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(PrivateNats::url).collect();
        urls.join(",")
    }

    /// Which node a server name (`<cluster>-<i>`) is.
    pub fn index_of(&self, server_name: &str) -> Option<usize> {
        server_name
            .strip_prefix(&format!("{}-", self.name))?
            .parse()
            .ok()
    }

    /// Waits until the cluster places a stream of three replicas (its JetStream meta
    /// leader is elected and every server has joined).
    async fn wait_for_jetstream(&self) -> Result<()> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let client = async_nats::connect(common::broker::server_urls(&self.url())).await?;
        let jetstream = async_nats::jetstream::new(client);
        loop {
            let created = jetstream
                .create_stream(async_nats::jetstream::stream::Config {
                    name: "CLUSTER_READY".to_string(),
                    subjects: vec!["cluster.ready".to_string()],
                    num_replicas: 3,
                    ..Default::default()
                })
                .await;
            if created.is_ok() {
                let _ = jetstream.delete_stream("CLUSTER_READY").await;
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "the NATS cluster placed no stream of 3 replicas in 60 s: {created:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
