//! A certificate authority made for one test with the `openssl` command, and the
//! certificates it signs, for servers that require TLS.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A test CA: `ca.pem` and its key in a folder of its own.
pub struct TestCa {
    dir: PathBuf,
}

/// A certificate and its key, signed by a [`TestCa`].
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate then key in one file, as mongod's `--tlsCertificateKeyFile` wants.
    pub combined: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Issued {
    /// The certificate's subject as MongoDB names an X.509 user (RFC 2253).
    pub fn subject(&self) -> Result<String> {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
            .arg(&self.cert)
            .output()?;
        if !out.status.success() {
            bail!(
                "openssl x509 -subject: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .trim()
            .strip_prefix("subject=")
            .unwrap_or(text.trim())
            .to_string())
    }
}

impl TestCa {
    /// Makes a CA in `dir` (created).
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=mongo2pg test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )?;
        Ok(TestCa {
            dir: dir.to_path_buf(),
        })
    }

    /// The CA's certificate, for clients to trust.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `name` (its common name) valid for `alt_names`
    /// (`DNS:localhost`, `IP:127.0.0.1`), for servers and clients alike.
    pub fn issue(&self, name: &str, alt_names: &[&str]) -> Result<Issued> {
        self.issue_for_days(name, alt_names, 2)
    }

    /// A certificate like [`TestCa::issue`]'s that has expired: valid until the moment
    /// it was signed, which this waits past.
    pub fn issue_expired(&self, name: &str, alt_names: &[&str]) -> Result<Issued> {
        let issued = self.issue_for_days(name, alt_names, 0)?;
        std::thread::sleep(std::time::Duration::from_millis(1100));
        Ok(issued)
    }

    fn issue_for_days(&self, name: &str, alt_names: &[&str], days: u32) -> Result<Issued> {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let cert = format!("{name}.pem");
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
                alt_names.join(",")
            ),
        )?;
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        )?;
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                &days.to_string(),
                "-extfile",
                &ext,
            ],
        )?;
        let combined = self.dir.join(format!("{name}-combined.pem"));
        let mut both = std::fs::read(self.dir.join(&cert))?;
        both.extend(std::fs::read(self.dir.join(&key))?);
        std::fs::write(&combined, both)?;
        Ok(Issued {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
            combined,
        })
    }
}
