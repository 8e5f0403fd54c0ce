//! The JetStream side both binaries share: connecting, and creating the stream, the
//! dead-letter stream, the state bucket and the blob bucket when they are absent.
//!
//! Both sides create what is missing, with the same settings, so a consumer may start
//! before the producer (as compose does) and either may be first on an empty server.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};
use async_nats::ConnectErrorKind;

use crate::config::{redact_url, NatsArgs, NatsAuth};
use crate::naming::Names;

/// How long the stream remembers a `Nats-Msg-Id`: a batch published again within this
/// window (a retried publish, a producer rerun soon after a crash) is dropped by the
/// server. Past it, the consumers' ledger catches the copy.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(30 * 60);

/// How long creating the stream and buckets may take before it is an error.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the setup is tried again while JetStream answers late.
const SETUP_DEADLINE: Duration = Duration::from_secs(120);

/// Why NATS could not be reached or set up, each saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No server answered.
    #[error("cannot reach NATS at {url}: {source}; is nats-server running with JetStream (-js)? Set --nats-url or NATS_URL")]
    Connect {
        /// The URL, without credentials.
        url: String,
        /// What the client saw.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The server refused the credentials.
    #[error("NATS at {url} refused the login ({source}); check the user and password, token, creds or nkey (--nats-url, NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_CREDS, NATS_NKEY)")]
    Login {
        /// The URL, without credentials.
        url: String,
        /// What the server said.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The TLS handshake failed.
    #[error("TLS to NATS at {url}: {source}; {hint}")]
    Tls {
        /// The URL, without credentials.
        url: String,
        /// What the TLS library said.
        #[source]
        source: async_nats::ConnectError,
        /// What to do about it (an expired certificate is named as such).
        hint: &'static str,
    },
    /// A credentials, nkey or certificate file could not be read.
    #[error("cannot read the NATS {what} {path}: {source}")]
    Credentials {
        /// What the file was for.
        what: &'static str,
        /// Its path.
        path: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The URL does not parse.
    #[error("the NATS URL {url} is malformed: {source}; fix --nats-url or NATS_URL")]
    Malformed {
        /// The URL, without credentials.
        url: String,
        /// What is wrong with it.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A resource a reading command needs does not exist (it creates none).
    #[error("NATS at {url} has no {what} {name:?}: no producer has run with this --stream (NATS_STREAM) there; check it and --nats-url")]
    Missing {
        /// The kind of resource.
        what: &'static str,
        /// Its name.
        name: String,
        /// The URL, without credentials.
        url: String,
    },
    /// JetStream refused a resource (disabled, a conflicting config) or kept not
    /// answering.
    #[error("JetStream {what} {name:?}: {detail}")]
    Setup {
        /// The kind of resource.
        what: &'static str,
        /// Its name.
        name: String,
        /// What JetStream said.
        detail: String,
    },
}

impl BrokerError {
    /// A setup JetStream did not answer in time (its API timed out, or its cluster has
    /// no leader yet): worth trying again, unlike a refusal.
    fn is_late(&self) -> bool {
        let BrokerError::Setup { detail, .. } = self else {
            return false;
        };
        let detail = detail.to_lowercase();
        [
            "timed out",
            "timeout",
            "temporarily unavailable",
            "no responders",
        ]
        .iter()
        .any(|late| detail.contains(late))
    }
}

/// A connected client with the pipeline's JetStream resources in place.
#[derive(Clone)]
pub struct Broker {
    /// The connection.
    pub client: async_nats::Client,
    /// JetStream over it.
    pub jetstream: jetstream::Context,
    /// The stream's, subjects', consumers' and buckets' names.
    pub names: Names,
    /// The run state bucket (manifests, checkpoints, plans, leases).
    pub state: kv::Store,
    /// The object store of large documents.
    pub blobs: object_store::ObjectStore,
}

impl Broker {
    /// Connects and makes sure the stream, dead-letter stream and buckets exist.
    ///
    /// # Errors
    /// [`BrokerError::Connect`] when the server cannot be reached; [`BrokerError::Setup`]
    /// when JetStream refuses a resource (JetStream disabled, a conflicting config).
    pub async fn connect(args: &NatsArgs, names: Names) -> Result<Self, BrokerError> {
        let client = client(args).await?;
        // Every resource is made idempotently, so the whole setup is tried again while
        // JetStream answers late: a cluster's leaders being elected, or several
        // processes creating the same replicated streams at once on a loaded machine.
        let deadline = std::time::Instant::now() + SETUP_DEADLINE;
        let (state, blobs) = loop {
            match resources(&client, args, &names).await {
                Ok(made) => break made,
                Err(err) if err.is_late() && std::time::Instant::now() < deadline => {
                    tracing::warn!(error = %err, "JetStream did not answer in time; setting up again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(err) => return Err(err),
            }
        };
        Ok(Broker {
            jetstream: jetstream::new(client.clone()),
            client,
            names,
            state,
            blobs,
        })
    }

    /// Connects to the pipeline's resources without creating any: for commands that
    /// only look (`status`), so that a mistyped `--stream` is said, not created.
    ///
    /// # Errors
    /// [`BrokerError::Missing`] when the stream or the state bucket does not exist.
    pub async fn open(args: &NatsArgs, names: Names) -> Result<Self, BrokerError> {
        let client = client(args).await?;
        let jetstream = jetstream::new(client.clone());
        let missing = |what: &'static str, name: String| BrokerError::Missing {
            what,
            name,
            url: redact_url(&args.nats_url),
        };
        jetstream
            .get_stream(names.stream())
            .await
            .map_err(|_| missing("stream", names.stream().to_string()))?;
        let state = jetstream
            .get_key_value(names.state_bucket())
            .await
            .map_err(|_| missing("key-value bucket", names.state_bucket()))?;
        let blobs = jetstream
            .get_object_store(names.blob_bucket())
            .await
            .map_err(|_| missing("object store", names.blob_bucket()))?;
        Ok(Broker {
            client,
            jetstream,
            names,
            state,
            blobs,
        })
    }

    /// The largest message the server accepts, which bounds every batch.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}

/// The servers of `--nats-url`: one URL, or several separated by commas (the members
/// of a cluster; the client moves to another when its own goes down).
pub fn server_urls(raw: &str) -> Vec<&str> {
    raw.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// The user and password (`nats://user:pass@host`) or token (`nats://token@host`) of a
/// NATS URL, as options: async-nats parses them out of the URL but never sends them.
fn with_url_credentials(
    options: async_nats::ConnectOptions,
    raw: &str,
) -> async_nats::ConnectOptions {
    // Of several servers, the first one's credentials (they are one cluster's).
    let Some(Ok(url)) = server_urls(raw).first().map(|first| url::Url::parse(first)) else {
        return options;
    };
    let decoded = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    match (url.username(), url.password()) {
        ("", _) => options,
        (user, Some(password)) => options.user_and_password(decoded(user), decoded(password)),
        (token, None) => options.token(decoded(token)),
    }
}

/// Connects to NATS with the URL's credentials, or those of [`NatsAuth`].
async fn client(args: &NatsArgs) -> Result<async_nats::Client, BrokerError> {
    let url = redact_url(&args.nats_url);
    let options = with_auth(
        with_url_credentials(async_nats::ConnectOptions::new(), &args.nats_url),
        &args.auth,
    )
    .await
    .map_err(|(what, path, source)| BrokerError::Credentials {
        what,
        path: path.display().to_string(),
        source,
    })?;
    options
        .connection_timeout(Duration::from_secs(5))
        .name("mongo2pg")
        .connect(server_urls(&args.nats_url))
        .await
        .map_err(|source| match source.kind() {
            ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                BrokerError::Login { url, source }
            }
            ConnectErrorKind::ServerParse => BrokerError::Malformed { url, source },
            ConnectErrorKind::Tls => tls_failed(url, source),
            // rustls' refusals arrive as I/O errors ("invalid peer certificate: …").
            _ if source.to_string().contains("certificate") => tls_failed(url, source),
            _ => BrokerError::Connect { url, source },
        })
}

fn tls_failed(url: String, source: async_nats::ConnectError) -> BrokerError {
    let hint = crate::certificate::advice(&source.to_string()).unwrap_or(
        "check NATS_CA (the CA that signed the server's certificate), the host name in the URL, and NATS_CERT/NATS_KEY",
    );
    BrokerError::Tls { url, source, hint }
}

/// A credentials or certificate file that could not be read: what it is, where, why.
type FileError = (&'static str, PathBuf, std::io::Error);

/// Adds the user, token, creds, nkey and TLS options given apart from the URL.
async fn with_auth(
    mut options: async_nats::ConnectOptions,
    auth: &NatsAuth,
) -> Result<async_nats::ConnectOptions, FileError> {
    if let (Some(user), Some(password)) = (&auth.nats_user, &auth.nats_password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &auth.nats_token {
        options = options.token(token.clone());
    }
    if let Some(path) = &auth.nats_creds {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| ("credentials file (NATS_CREDS)", path.clone(), e))?;
    }
    if let Some(path) = &auth.nats_nkey {
        let seed = std::fs::read_to_string(path)
            .map_err(|e| ("nkey seed file (NATS_NKEY)", path.clone(), e))?;
        options = options.nkey(seed.trim().to_string());
    }
    for (what, path) in [
        ("CA file (NATS_CA)", &auth.nats_ca),
        ("client certificate (NATS_CERT)", &auth.nats_cert),
        ("client key (NATS_KEY)", &auth.nats_key),
    ] {
        if let Some(path) = path {
            // async-nats reads them only while connecting, and says little then.
            std::fs::metadata(path).map_err(|e| (what, path.clone(), e))?;
        }
    }
    if let Some(ca) = &auth.nats_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&auth.nats_cert, &auth.nats_key) {
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    Ok(options)
}

/// The run's streams and buckets, made when absent: the stream of batches and changes,
/// its dead-letter stream, the state bucket and the object store.
async fn resources(
    client: &async_nats::Client,
    args: &NatsArgs,
    names: &Names,
) -> Result<(kv::Store, object_store::ObjectStore), BrokerError> {
    let replicas = usize::from(args.stream_replicas);
    // Creating file-backed streams can take a busy server (several runs starting
    // at once on a loaded machine) longer than the usual 10 s API deadline.
    let creating = jetstream::ContextBuilder::new()
        .timeout(SETUP_TIMEOUT)
        .build(client.clone());
    let setup = |what: &'static str, name: &str| {
        let name = name.to_string();
        move |err: &dyn std::fmt::Display| BrokerError::Setup {
            what,
            name,
            detail: err.to_string(),
        }
    };

    let subjects = vec![names.batch_subjects(), names.change_subjects()];
    let mut work = get_or_create(
        &creating,
        stream::Config {
            name: names.stream().to_string(),
            subjects: subjects.clone(),
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| setup("stream", names.stream())(&e))?;
    // A stream made by an earlier version carries batches only: it takes the change
    // subjects too, its messages kept.
    let mut config = work.cached_info().config.clone();
    if subjects.iter().any(|s| !config.subjects.contains(s)) {
        config.subjects = subjects;
        creating
            .update_stream(config)
            .await
            .map_err(|e| setup("stream", names.stream())(&e))?;
        work.info()
            .await
            .map_err(|e| setup("stream", names.stream())(&e))?;
    }
    let dlq = names.dead_letter_stream();
    get_or_create(
        &creating,
        stream::Config {
            name: dlq.clone(),
            subjects: vec![format!("{}.dlq.>", names.stream())],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| setup("stream", &dlq)(&e))?;

    // The key-value bucket's stream is created here with the settings async-nats
    // gives one: `create_key_value` first asks for the account info, whose reply
    // from nats-server 2.9 it cannot parse.
    let bucket = names.state_bucket();
    get_or_create(
        &creating,
        stream::Config {
            name: names.state_stream(),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| setup("key-value bucket", &bucket)(&e))?;
    let state = creating
        .get_key_value(bucket.as_str())
        .await
        .map_err(|e| setup("key-value bucket", &bucket)(&e))?;
    let bucket = names.blob_bucket();
    let blobs = match creating.get_object_store(bucket.as_str()).await {
        Ok(store) => store,
        Err(_) => match creating
            .create_object_store(object_store::Config {
                bucket: bucket.clone(),
                storage: stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
        {
            Ok(store) => store,
            // Created by another process between the look and the create.
            Err(err) => creating
                .get_object_store(bucket.as_str())
                .await
                .map_err(|_| setup("object store", &bucket)(&err))?,
        },
    };
    Ok((state, blobs))
}

/// The stream `config` names, made when absent. Several processes starting at once on
/// a fresh stream race to create it: nats-server 2.9 may refuse the loser's create
/// ("subjects overlap with an existing stream", the stream the winner just made), so
/// a refused create looks again before it is an error: a stream that exists now was
/// made meanwhile, and a real conflict (another stream holding those subjects) is
/// still refused.
async fn get_or_create(
    context: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, async_nats::Error> {
    let name = config.name.clone();
    match context.get_or_create_stream(config).await {
        Ok(stream) => Ok(stream),
        Err(err) => match context.get_stream(&name).await {
            Ok(stream) => Ok(stream),
            Err(_) => Err(err.into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_answered_late_is_tried_again_a_refusal_is_not() {
        let setup = |detail: &str| BrokerError::Setup {
            what: "stream",
            name: "S_DLQ".to_string(),
            detail: detail.to_string(),
        };
        assert!(setup("jetstream request timed out").is_late());
        assert!(setup("JetStream system temporarily unavailable").is_late());
        assert!(!setup("insufficient resources").is_late());
        assert!(!setup("subjects overlap with an existing stream").is_late());
    }
}
