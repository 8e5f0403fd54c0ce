//! Command-line and environment configuration shared by both binaries.

use clap::Args;

use crate::naming::{Names, RunName};

/// Where NATS is, and which stream the pipeline uses.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URL (credentials may be embedded; they are never logged).
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// JetStream stream carrying the batches; every other NATS name derives from it.
    #[arg(long, env = "NATS_STREAM", default_value = "MIGRATE", value_parser = parse_names)]
    pub stream: Names,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_names(s: &str) -> Result<Names, String> {
    Names::new(s)
}

/// A URL with its password replaced by `***`, fit for logs and error messages.
/// Anything that does not parse as a URL is hidden entirely past its scheme.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => match raw.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***"),
            None => "***".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert!(!redact_url("host=db password=s3cret").contains("s3cret"));
    }
}
