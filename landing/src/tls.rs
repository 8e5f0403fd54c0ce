//! TLS to PostgreSQL as libpq means it, with rustls.
//!
//! People bring the connection strings their other tools use, so the URL's
//! parameters keep libpq's names and meanings. tokio-postgres knows only
//! `sslmode=disable|prefer|require` and refuses the rest; they are taken out of the URL
//! here and turned into a rustls configuration:
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | when the server offers it | no (as libpq), unless `sslrootcert` is given |
//! | `require` | always | no, unless `sslrootcert` is given: then as `verify-ca` (as libpq) |
//! | `verify-ca` | always | chain, to `sslrootcert` or the system's roots |
//! | `verify-full` | always | chain and host name |
//!
//! `sslcert` and `sslkey` give a client certificate. `sslrootcert=system` names the
//! system's roots, as in libpq 16.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The URL parameters this module takes out before tokio-postgres reads the rest.
const TLS_PARAMETERS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: encrypted against eavesdropping, not against a man in the middle.
    Nothing,
    /// The chain up to a trusted root, whatever the host name.
    Chain,
    /// The chain and that the certificate names the host.
    Full,
}

/// What the URL asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `sslmode`.
    pub mode: SslMode,
    /// What the server's certificate is checked for.
    pub verify: Verify,
    /// `sslrootcert`; `None` (or `system`) for the system's roots.
    pub root_cert: Option<PathBuf>,
    /// `sslcert` and `sslkey`, given together.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Why the TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// An `sslmode` libpq does not know.
    #[error("sslmode {0:?} is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    UnknownMode(String),
    /// `sslcert` without `sslkey`, or the other way round.
    #[error("sslcert and sslkey go together: give both or neither")]
    HalfClientCert,
    /// A certificate or key file that cannot be read.
    #[error("cannot read {what} {path}: {detail}")]
    File {
        /// What the file is for.
        what: &'static str,
        /// Its path.
        path: String,
        /// What reading it said.
        detail: String,
    },
    /// No root to check the server's certificate against.
    #[error("no trusted root certificate: {0}; give one with sslrootcert")]
    NoRoots(String),
    /// A client certificate rustls cannot use.
    #[error("the client certificate is refused by rustls: {0}")]
    ClientCert(String),
}

/// Splits a connection string (URL or `key=value` form) into the part tokio-postgres
/// reads and the TLS settings.
pub fn split(url: &str) -> Result<(String, TlsSettings), TlsError> {
    let mut taken: Vec<(String, String)> = Vec::new();
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url::Url::parse(url) {
            Ok(mut parsed) => {
                let mut kept: Vec<(String, String)> = Vec::new();
                for (key, value) in parsed.query_pairs() {
                    let pair = (key.into_owned(), value.into_owned());
                    if TLS_PARAMETERS.contains(&pair.0.as_str()) {
                        taken.push(pair);
                    } else {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    parsed.set_query(None);
                } else {
                    parsed.query_pairs_mut().clear().extend_pairs(kept);
                }
                parsed.to_string()
            }
            // tokio-postgres says what is wrong with it.
            Err(_) => url.to_string(),
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            match word.split_once('=') {
                Some((key, value)) if TLS_PARAMETERS.contains(&key.trim()) => {
                    taken.push((key.trim().to_string(), value.trim_matches('\'').to_string()));
                }
                _ => kept.push(word),
            }
        }
        kept.join(" ")
    };
    let value = |name: &str| {
        taken
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let root_cert = value("sslrootcert").map(PathBuf::from);
    let (mode, verify) = match value("sslmode").unwrap_or("prefer") {
        "disable" => (SslMode::Disable, Verify::Nothing),
        "allow" | "prefer" if root_cert.is_some() => (SslMode::Prefer, Verify::Chain),
        "allow" | "prefer" => (SslMode::Prefer, Verify::Nothing),
        "require" if root_cert.is_some() => (SslMode::Require, Verify::Chain),
        "require" => (SslMode::Require, Verify::Nothing),
        "verify-ca" => (SslMode::Require, Verify::Chain),
        "verify-full" => (SslMode::Require, Verify::Full),
        other => return Err(TlsError::UnknownMode(other.to_string())),
    };
    let client_cert = match (value("sslcert"), value("sslkey")) {
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        (None, None) => None,
        _ => return Err(TlsError::HalfClientCert),
    };
    Ok((
        rest,
        TlsSettings {
            mode,
            verify,
            root_cert: root_cert.filter(|path| path != Path::new("system")),
            client_cert,
        },
    ))
}

/// The connector for `settings`; unused by tokio-postgres under `sslmode=disable`.
pub fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::ClientCert(e.to_string()))?;
    let builder = match settings.verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
        Verify::Chain | Verify::Full => {
            let roots = Arc::new(roots(settings.root_cert.as_deref())?);
            let full = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError::NoRoots(e.to_string()))?;
            if settings.verify == Verify::Full {
                builder.with_webpki_verifier(full)
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(full)))
            }
        }
    };
    let config = match &settings.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file_error("sslcert", cert, e))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("sslkey", key, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::ClientCert(e.to_string()))?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn file_error(what: &'static str, path: &Path, err: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        what,
        path: path.display().to_string(),
        detail: err.to_string(),
    }
}

/// The roots in `sslrootcert`, or the system's.
fn roots(root_cert: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file_error("sslrootcert", path, e))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(file_error("sslrootcert", path, "no certificate in it"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TlsError::NoRoots(
                    "the system has no root certificates".to_string(),
                ));
            }
        }
    }
    Ok(roots)
}

/// libpq's `prefer` and `require`: encryption, no check of who answers.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// libpq's `verify-ca`: the chain must lead to a trusted root; the host name is not
/// compared.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_taken_out_of_the_url_and_mean_what_they_mean_in_libpq() {
        let (rest, tls) = split(
            "postgres://u:p@db.example.com:5433/app?sslmode=verify-full&sslrootcert=/ca.pem&application_name=m2p",
        )
        .expect("split");
        assert_eq!(
            rest,
            "postgres://u:p@db.example.com:5433/app?application_name=m2p"
        );
        assert_eq!(tls.mode, SslMode::Require);
        assert_eq!(tls.verify, Verify::Full);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));

        let (rest, tls) = split("postgres://u@h/app").expect("split");
        assert_eq!(rest, "postgres://u@h/app");
        assert_eq!((tls.mode, tls.verify), (SslMode::Prefer, Verify::Nothing));

        // require with a root certificate checks the chain, as libpq does.
        let (_, tls) = split("postgres://h/app?sslmode=require&sslrootcert=ca.pem").expect("split");
        assert_eq!((tls.mode, tls.verify), (SslMode::Require, Verify::Chain));
        let (_, tls) =
            split("postgres://h/app?sslmode=verify-ca&sslrootcert=system").expect("split");
        assert_eq!((tls.verify, tls.root_cert), (Verify::Chain, None));

        let (rest, tls) =
            split("host=h dbname=app sslmode=disable sslcert=c.pem sslkey=k.pem").expect("split");
        assert_eq!(rest, "host=h dbname=app");
        assert_eq!(tls.mode, SslMode::Disable);
        assert_eq!(
            tls.client_cert,
            Some((PathBuf::from("c.pem"), PathBuf::from("k.pem")))
        );

        assert!(matches!(
            split("postgres://h/app?sslmode=verify_full"),
            Err(TlsError::UnknownMode(_))
        ));
        assert!(matches!(
            split("postgres://h/app?sslcert=c.pem"),
            Err(TlsError::HalfClientCert)
        ));
    }
}
