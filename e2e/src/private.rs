//! Private server instances for tests that stop or restart a server: each on its own
//! port with its own data folder, stopped and removed on drop. The machine's shared
//! services are never touched.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A free port on loopback (free when asked; the server binds it right after).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, limit: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on port {port} after {limit:?}")
}

fn scratch_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("mongo2pg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

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

/// A PostgreSQL cluster with trust auth on its own port and data folder, run by the
/// `postgres` user when the tests run as root (PostgreSQL refuses to run as root).
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// Server settings beyond the defaults (`-c name=value ...`).
    settings: String,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn postgres_bin() -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries not found under /usr/lib/postgresql")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
        .context("no pg_ctl under /usr/lib/postgresql/*/bin")
}

impl PrivatePostgres {
    pub fn start(name: &str) -> Result<Self> {
        Self::start_with(name, None)
    }

    /// A cluster whose TCP connections must log in as `postgres` with `password`
    /// (scram-sha-256).
    pub fn start_with_password(name: &str, password: &str) -> Result<Self> {
        Self::start_with(name, Some(password))
    }

    /// A cluster that takes only TLS connections on TCP (`hostssl` in pg_hba.conf),
    /// logging in as `postgres` with `password`, presenting `server`'s certificate.
    pub fn start_with_tls(
        name: &str,
        password: &str,
        server: &crate::certs::Issued,
    ) -> Result<Self> {
        Self::start_tls(name, Some(password), server, "scram-sha-256", None)
    }

    /// A cluster that logs in by client certificate only (`hostssl ... cert`): the
    /// certificate must be signed by `ca` and its common name be the user's name.
    pub fn start_with_client_certs(
        name: &str,
        server: &crate::certs::Issued,
        ca: &Path,
    ) -> Result<Self> {
        Self::start_tls(name, None, server, "cert", Some(ca))
    }

    fn start_tls(
        name: &str,
        password: Option<&str>,
        server: &crate::certs::Issued,
        method: &str,
        client_ca: Option<&Path>,
    ) -> Result<Self> {
        let mut pg = Self::init(name, password)?;
        let cert = pg.dir.join("server.crt");
        let key = pg.dir.join("server.key");
        std::fs::copy(&server.cert, &cert)?;
        std::fs::copy(&server.key, &key)?;
        std::fs::write(
            pg.dir.join("data/pg_hba.conf"),
            format!("local all all trust\nhostssl all all 127.0.0.1/32 {method}\nhostssl all all ::1/128 {method}\n"),
        )?;
        {
            use std::os::unix::fs::PermissionsExt;
            // PostgreSQL refuses a key others can read.
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        }
        let mut owned = vec![cert.clone(), key.clone(), pg.dir.join("data/pg_hba.conf")];
        pg.settings = format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        );
        if let Some(ca) = client_ca {
            let copy = pg.dir.join("client-ca.pem");
            std::fs::copy(ca, &copy)?;
            pg.settings
                .push_str(&format!(" -c ssl_ca_file={}", copy.display()));
            owned.push(copy);
        }
        if is_root() {
            for file in &owned {
                Command::new("chown").arg("postgres").arg(file).status()?;
            }
        }
        pg.start_server()?;
        Ok(pg)
    }

    fn start_with(name: &str, password: Option<&str>) -> Result<Self> {
        let pg = Self::init(name, password)?;
        pg.start_server()?;
        Ok(pg)
    }

    /// A new cluster, not started.
    fn init(name: &str, password: Option<&str>) -> Result<Self> {
        let pg = PrivatePostgres {
            port: free_port()?,
            dir: scratch_dir(&format!("pg-{name}"))?,
            bin: postgres_bin()?,
            settings: String::new(),
        };
        if is_root() {
            let status = Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(&pg.dir)
                .status()?;
            if !status.success() {
                bail!("cannot hand {} to the postgres user", pg.dir.display());
            }
        }
        let data = pg.dir.join("data");
        let auth = match password {
            None => "-A trust".to_string(),
            Some(password) => {
                let file = pg.dir.join("pwfile");
                std::fs::write(&file, password)?;
                if is_root() {
                    Command::new("chown").arg("postgres").arg(&file).status()?;
                }
                format!(
                    "--auth-local=trust --auth-host=scram-sha-256 --pwfile='{}'",
                    file.display()
                )
            }
        };
        pg.as_owner(&format!(
            "'{}' {auth} -U postgres -D '{}' >/dev/null",
            pg.bin.join("initdb").display(),
            data.display()
        ))?;
        Ok(pg)
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn as_owner(&self, script: &str) -> Result<()> {
        let status = if is_root() {
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", script])
                .status()?
        } else {
            Command::new("sh").args(["-c", script]).status()?
        };
        if !status.success() {
            bail!("failed: {script}");
        }
        Ok(())
    }

    fn pg_ctl(&self, action: &str) -> Result<()> {
        let data = self.dir.join("data");
        self.as_owner(&format!(
            "'{}' -D '{}' -l '{}' -w {action} >/dev/null",
            self.bin.join("pg_ctl").display(),
            data.display(),
            self.dir.join("server.log").display()
        ))
    }

    fn start_server(&self) -> Result<()> {
        self.pg_ctl(&format!(
            "-o '-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}' start",
            self.port,
            self.dir.display(),
            self.settings
        ))?;
        wait_for_port(self.port, Duration::from_secs(30))
    }

    /// Stops the server as a crash would (`-m immediate`) and starts it again.
    pub fn restart(&self, down_for: Duration) -> Result<()> {
        self.pg_ctl("-m immediate stop")?;
        std::thread::sleep(down_for);
        self.start_server()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl("-m immediate stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A standalone mongod with `--auth`, on its own port and data folder, whose one user
/// (`root` on `admin`) is created through the localhost exception.
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
