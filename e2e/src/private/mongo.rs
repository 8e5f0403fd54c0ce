//! A private mongod.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{free_port, scratch_dir, wait_for_port};

/// A mongod on its own port and data folder: standalone with `--auth` (its first user
/// created through the localhost exception), with TLS or X.509, or a one-node replica
/// set without auth.
pub struct PrivateMongo {
    pub port: u16,
    dir: PathBuf,
    child: Option<std::process::Child>,
}

/// The mongod that scripts/services.sh installs.
fn mongod_bin() -> Result<PathBuf> {
    let home = std::env::var_os("MONGO2PG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mongo2pg")))
        .context("no HOME to find mongod under")?;
    let bin = home.join("mongodb/fiftyone/db/bin/mongod");
    if !bin.exists() {
        bail!("{} not found; run scripts/services.sh up", bin.display());
    }
    Ok(bin)
}

impl PrivateMongo {
    pub async fn start_with_user(name: &str, user: &str, password: &str) -> Result<Self> {
        Self::start(name, user, password, None).await
    }

    /// A mongod with `--auth` that takes only TLS connections (`--tlsMode
    /// requireTLS`), presenting `server`'s certificate; clients need no certificate.
    pub async fn start_with_tls(
        name: &str,
        user: &str,
        password: &str,
        server: &crate::certs::Issued,
        ca: &Path,
    ) -> Result<Self> {
        Self::start(name, user, password, Some((server, ca))).await
    }

    /// A mongod with `--auth` that takes only TLS connections presenting a
    /// certificate `ca` signed, and logs in `client`'s certificate by X.509 (its
    /// subject a user of `$external` with the root role).
    pub async fn start_with_x509(
        name: &str,
        server: &crate::certs::Issued,
        ca: &Path,
        client: &crate::certs::Issued,
    ) -> Result<Self> {
        let mut mongo = Self::spawn(name, Some((server, ca)), false)?;
        let uri = format!(
            "mongodb://127.0.0.1:{}/?directConnection=true&tls=true&tlsCAFile={}&tlsCertificateKeyFile={}",
            mongo.port,
            ca.display(),
            client.combined.display()
        );
        let subject = client.subject()?;
        let created = mongodb::Client::with_uri_str(uri)
            .await?
            .database("$external")
            .run_command(bson::doc! {
                "createUser": &subject, "roles": [ { "role": "root", "db": "admin" } ]
            })
            .await
            .with_context(|| format!("creating the X.509 user {subject}"));
        if let Err(err) = created {
            mongo.stop();
            return Err(err);
        }
        Ok(mongo)
    }

    /// A one-node replica set named `rs0` without auth, initiated and primary, as
    /// compose.yaml's `mongo` service is once healthy.
    /// A member of replica set `set`, not yet initiated (see `PrivateReplicaSet`).
    pub(crate) fn spawn_member(name: &str, set: &str) -> Result<Self> {
        Self::spawn_with(name, None, false, &["--replSet", set, "--oplogSize", "256"])
    }

    /// A standalone mongod without login: no oplog, so no change stream.
    pub fn start_standalone(name: &str) -> Result<Self> {
        Self::spawn_with(name, None, false, &[])
    }

    pub async fn start_replica_set(name: &str) -> Result<Self> {
        let mut mongo = Self::spawn_with(name, None, false, &["--replSet", "rs0"])?;
        let ready = mongo.initiate().await;
        if let Err(err) = ready {
            mongo.stop();
            return Err(err);
        }
        Ok(mongo)
    }

    async fn initiate(&self) -> Result<()> {
        let admin = mongodb::Client::with_uri_str(format!(
            "mongodb://127.0.0.1:{}/?directConnection=true",
            self.port
        ))
        .await?
        .database("admin");
        admin
            .run_command(bson::doc! {
                "replSetInitiate": { "_id": "rs0", "members": [ { "_id": 0, "host": format!("127.0.0.1:{}", self.port) } ] }
            })
            .await
            .context("initiating the replica set")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let hello = admin.run_command(bson::doc! { "hello": 1 }).await?;
            if hello.get_bool("isWritablePrimary").unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the replica set has no primary after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn spawn(
        name: &str,
        tls: Option<(&crate::certs::Issued, &Path)>,
        without_certificates: bool,
    ) -> Result<Self> {
        Self::spawn_with(name, tls, without_certificates, &["--auth"])
    }

    fn spawn_with(
        name: &str,
        tls: Option<(&crate::certs::Issued, &Path)>,
        without_certificates: bool,
        flags: &[&str],
    ) -> Result<Self> {
        let mut mongo = PrivateMongo {
            port: free_port()?,
            dir: scratch_dir(&format!("mongo-{name}"))?,
            child: None,
        };
        let mut command = Command::new(mongod_bin()?);
        command
            .args(flags)
            .args(["--bind_ip", "127.0.0.1", "--port"])
            .arg(mongo.port.to_string())
            .arg("--dbpath")
            .arg(&mongo.dir)
            .args(["--wiredTigerCacheSizeGB", "0.25"]);
        if let Some((server, ca)) = tls {
            command
                .args(["--tlsMode", "requireTLS", "--tlsCertificateKeyFile"])
                .arg(&server.combined)
                .arg("--tlsCAFile")
                .arg(ca);
            if without_certificates {
                command.arg("--tlsAllowConnectionsWithoutCertificates");
            }
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mongod")?;
        mongo.child = Some(child);
        wait_for_port(mongo.port, Duration::from_secs(30))?;
        Ok(mongo)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn start(
        name: &str,
        user: &str,
        password: &str,
        tls: Option<(&crate::certs::Issued, &Path)>,
    ) -> Result<Self> {
        let mut mongo = Self::spawn(name, tls, true)?;
        let mut admin_uri = format!("mongodb://127.0.0.1:{}/?directConnection=true", mongo.port);
        if let Some((_, ca)) = tls {
            admin_uri.push_str(&format!("&tls=true&tlsCAFile={}", ca.display()));
        }
        let admin = mongodb::Client::with_uri_str(admin_uri)
            .await?
            .database("admin")
            .run_command(bson::doc! {
                "createUser": user, "pwd": password, "roles": [ { "role": "root", "db": "admin" } ]
            })
            .await
            .context("creating the first user");
        if let Err(err) = admin {
            mongo.stop();
            return Err(err);
        }
        Ok(mongo)
    }
}

impl Drop for PrivateMongo {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
