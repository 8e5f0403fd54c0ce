//! A private PostgreSQL cluster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{free_port, scratch_dir, wait_for_port};

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
