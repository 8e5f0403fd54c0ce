//! Command-line and environment configuration shared by both binaries.

use std::path::PathBuf;

use clap::Args;

use crate::naming::{Names, RunName};

/// Where NATS is, and which stream the pipeline uses.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL (credentials may be embedded; they are never logged).
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        hide_env_values = true
    )]
    pub nats_url: String,

    /// JetStream stream carrying the batches; every other NATS name derives from it.
    #[arg(long, env = "NATS_STREAM", default_value = "MIGRATE", value_parser = parse_names)]
    pub stream: Names,

    /// Replicas of the streams and buckets created (1 to 5): 3 on a JetStream cluster,
    /// so that losing a server loses no batch and stops nothing. Streams that exist
    /// keep their own.
    #[arg(long, env = "NATS_STREAM_REPLICAS", default_value = "1", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub stream_replicas: u8,

    #[command(flatten)]
    #[allow(missing_docs)] // its arguments' help documents it
    pub auth: NatsAuth,
}

/// How to prove who we are to NATS and whom to trust, with the nats CLI's variable
/// names so that people reuse their contexts. Credentials in the URL work too.
#[derive(Clone, Default, Args)]
pub struct NatsAuth {
    /// NATS user (with --nats-password).
    #[arg(long, env = "NATS_USER")]
    pub nats_user: Option<String>,

    /// NATS password (also NATS_PASSWORD_FILE).
    #[arg(
        long,
        env = "NATS_PASSWORD",
        hide_env_values = true,
        requires = "nats_user"
    )]
    pub nats_password: Option<String>,

    /// NATS token (also NATS_TOKEN_FILE); not with a user and password.
    #[arg(
        long,
        env = "NATS_TOKEN",
        hide_env_values = true,
        conflicts_with_all = ["nats_user", "nats_password"]
    )]
    pub nats_token: Option<String>,

    /// A `.creds` file: the user JWT and its nkey seed, as `nsc` writes it.
    #[arg(long, env = "NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,

    /// A file holding an nkey seed (`SU…`).
    #[arg(long, env = "NATS_NKEY")]
    pub nats_nkey: Option<PathBuf>,

    /// CA certificate(s) (PEM) to trust for the server's TLS certificate; implies TLS.
    #[arg(long, env = "NATS_CA")]
    pub nats_ca: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS, with --nats-key.
    #[arg(long, env = "NATS_CERT", requires = "nats_key")]
    pub nats_cert: Option<PathBuf>,

    /// Client certificate's key (PEM), with --nats-cert.
    #[arg(long, env = "NATS_KEY", requires = "nats_cert")]
    pub nats_key: Option<PathBuf>,
}

/// Shows which options are set, never the password or token.
impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "<hidden>");
        f.debug_struct("NatsAuth")
            .field("nats_user", &self.nats_user)
            .field("nats_password", &hidden(&self.nats_password))
            .field("nats_token", &hidden(&self.nats_token))
            .field("nats_creds", &self.nats_creds)
            .field("nats_nkey", &self.nats_nkey)
            .field("nats_ca", &self.nats_ca)
            .field("nats_cert", &self.nats_cert)
            .field("nats_key", &self.nats_key)
            .finish()
    }
}

/// Where the target PostgreSQL is (and its ledger, rejects and dead letters).
#[derive(Debug, Clone, Args)]
pub struct PostgresArgs {
    /// PostgreSQL connection string of the target (the password is never logged).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    pub database_url: String,

    /// The schema of the migration's own tables (ledger, rejects, dead letters,
    /// versions, added columns), created when missing; the search path's first
    /// (public) when absent. Every consumer and command of a run needs the same.
    #[arg(long, env = "MIGRATE_BOOKKEEPING_SCHEMA")]
    pub bookkeeping_schema: Option<String>,
}

impl PostgresArgs {
    /// Makes `--bookkeeping-schema` this process's (see
    /// [`crate::naming::set_bookkeeping_schema`]).
    pub fn use_bookkeeping_schema(&self) {
        crate::naming::set_bookkeeping_schema(self.bookkeeping_schema.clone());
    }
}

/// Which run this process works on.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Name of the migration run: rerunning with the same name resumes it.
    #[arg(long = "run", env = "MIGRATION_RUN", default_value = "default")]
    pub run: RunName,
}

/// How logs are written.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format: `text` for people, `json` for log collectors. Filter with RUST_LOG.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_enum)]
    pub log_format: LogFormat,
}

/// How log lines are written (`--log-format`). Its variants carry no doc comment: clap
/// would print one next to each possible value.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_names(s: &str) -> Result<Names, crate::naming::InvalidStreamName> {
    Names::new(s)
}

/// A URL with its secrets replaced by `***`, fit for logs and error messages: the
/// password, a NATS token (a user name with no password), and `password`, `sslpassword`
/// or `token` query parameters. Anything that does not parse as a URL is hidden
/// entirely past its scheme.
pub fn redact_url(raw: &str) -> String {
    // Several servers of one cluster (`nats://a:4222,nats://b:4222`): each on its own.
    let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
    if parts.len() > 1 && parts.iter().all(|part| part.contains("://")) {
        return parts
            .iter()
            .map(|part| redact_url(part))
            .collect::<Vec<_>>()
            .join(",");
    }
    // A password holding an unencoded `/`, `?` or `#` ends the URL's authority early,
    // and a URL parser sees no password at all (`postgres://u:2024/Spring@host/db`
    // reads as host `u`, port 2024): take everything up to the last `@` as the
    // credentials, the way the person meant it.
    if let Some((scheme, rest)) = raw.split_once("://") {
        if let Some(at) = rest.rfind('@') {
            let (userinfo, host) = rest.split_at(at);
            if unencoded_credentials(raw) {
                let user = match userinfo.split_once(':') {
                    Some((user, _)) if !user.contains(['/', '?', '#']) => user,
                    _ => "***",
                };
                let shown = if user == "***" {
                    format!("{scheme}://***{host}")
                } else {
                    format!("{scheme}://{user}:***{host}")
                };
                return format!(
                    "{} (its password seems to hold a '/', '?' or '#': percent-encode them, as %2F, %3F, %23)",
                    redact_url(&shown)
                );
            }
        }
    }
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = url.set_password(Some("***"));
            } else if !url.username().is_empty()
                && matches!(url.scheme(), "nats" | "tls" | "ws" | "wss")
            {
                let _ = url.set_username("***");
            }
            let secret = |key: &str| {
                let key = key.to_ascii_lowercase();
                key == "password" || key == "sslpassword" || key == "token"
            };
            if url.query_pairs().any(|(k, _)| secret(&k)) {
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if secret(&k) {
                            "***".to_string()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => match raw.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***"),
            None => "***".to_string(),
        },
    }
}

/// Whether the credentials of a URL hold an unencoded `/`, `?` or `#` (text before its
/// last `@` that a URL parser would not read as credentials): a driver's own error
/// about such a URL may quote pieces of the password, and must not be shown.
pub fn unencoded_credentials(raw: &str) -> bool {
    raw.split_once("://")
        .and_then(|(_, rest)| rest.rfind('@').map(|at| &rest[..at]))
        .is_some_and(|userinfo| userinfo.contains(['/', '?', '#']))
}

/// The collection names of one `--collection`: separated by commas, a comma inside a
/// name written `\,` and a backslash `\\` (MongoDB allows both in names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionNames(pub Vec<String>);

/// Parses one `--collection` value (clap's value parser).
pub fn parse_collection_names(text: &str) -> Result<CollectionNames, std::convert::Infallible> {
    let mut names = Vec::new();
    let mut name = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => name.push(escaped),
                None => name.push('\\'),
            },
            ',' => names.push(std::mem::take(&mut name)),
            c => name.push(c),
        }
    }
    names.push(name);
    names.retain(|n| !n.is_empty());
    Ok(CollectionNames(names))
}

/// Every name of every `--collection`, in order.
pub fn collection_names(given: &[CollectionNames]) -> Vec<String> {
    given
        .iter()
        .flat_map(|names| names.0.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_split_on_commas_but_escaped_ones() {
        let names = |text: &str| parse_collection_names(text).map(|n| n.0);
        assert_eq!(
            names("users,orders"),
            Ok(vec!["users".into(), "orders".into()])
        );
        assert_eq!(names(r"a\,b,c"), Ok(vec!["a,b".into(), "c".into()]));
        assert_eq!(names(r"back\\slash"), Ok(vec![r"back\slash".into()]));
        assert_eq!(names("users,"), Ok(vec!["users".into()]));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert!(!redact_url("host=db password=s3cret").contains("s3cret"));
        assert_eq!(
            redact_url("postgres://app@db:1/x?password=s3cret&sslmode=require"),
            "postgres://app@db:1/x?password=***&sslmode=require"
        );
        assert_eq!(redact_url("nats://T0KEN@host:4222"), "nats://***@host:4222");
        assert_eq!(
            redact_url("nats://u:pw@a:4222,nats://u:pw@b:4222"),
            "nats://u:***@a:4222,nats://u:***@b:4222"
        );
    }

    /// Unencoded `/`, `?`, `#` in a password: a URL parser sees no password, and the
    /// whole of it was printed.
    #[test]
    fn passwords_with_unencoded_special_characters_are_redacted_and_explained() {
        for (raw, user) in [
            ("postgres://u:2024/Spring@host/db", "u"),
            ("postgres://u:why?not@host:5432/db", "u"),
            (
                "mongodb://admin:a#b@127.0.0.1:27017/?authSource=admin",
                "admin",
            ),
            ("nats://u:x/y?z@127.0.0.1:4222", "u"),
            ("nats://tok/en@127.0.0.1:4222", "***"),
        ] {
            let shown = redact_url(raw);
            for secret in ["Spring", "why", "not", "a#b", "x/y", "tok/en"] {
                assert!(!shown.contains(secret), "{raw} shown as {shown}");
            }
            assert!(shown.starts_with(raw.split_once("://").map_or("", |p| p.0)));
            assert!(shown.contains(&format!("//{user}")), "{shown}");
            assert!(shown.contains("percent-encode"), "{shown}");
        }
        assert_eq!(
            redact_url("postgres://u:p%2Fw@host/db"),
            "postgres://u:***@host/db"
        );
    }
}

/// A duration flag that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No number where one was expected.
    #[error("{0:?} is not a duration such as 30s, 500ms or 2m")]
    NotANumber(String),
    /// A unit other than ms, s, m or h.
    #[error("{0:?}: unit must be ms, s, m or h")]
    UnknownUnit(String),
    /// Too long to wait for.
    #[error("{0:?} is not a duration this program can wait for")]
    OutOfRange(String),
}

/// A duration flag of zero where zero cannot work (a batch given no time at all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: must be longer than zero")]
pub struct ZeroDuration(String);

/// [`parse_duration`], refusing zero.
pub fn parse_positive_duration(text: &str) -> Result<std::time::Duration, PositiveDurationError> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(ZeroDuration(text.trim().to_string()).into());
    }
    Ok(duration)
}

/// Why [`parse_positive_duration`] refused a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositiveDurationError {
    /// Not a duration.
    #[error(transparent)]
    Unreadable(#[from] DurationError),
    /// Zero.
    #[error(transparent)]
    Zero(#[from] ZeroDuration),
}

/// Parses a duration such as `30s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, DurationError> {
    use std::time::Duration;
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| (&text[..at], &text[at..]));
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::NotANumber(text.to_string()))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(DurationError::UnknownUnit(text.to_string())),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| DurationError::OutOfRange(text.to_string()))
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("99999999999999999999999s").is_err());
    }
}
