//! The edge of both binaries: parsing arguments into one clear error line, and the
//! runtime they run on.

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line. Help and version print as usual; a bad flag prints clap's
/// one-line message and a pointer to `--help`, and exits with status 2.
pub fn parse<T: Parser>() -> T {
    if let Err(err) = secrets_from_files(SECRET_VARIABLES) {
        eprintln!("error: {err}");
        std::process::exit(2);
    }
    match T::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                err.exit();
            }
            // clap's message runs to the first blank line: for a missing argument, the
            // arguments are on the lines after the first.
            let rendered = err.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = if message.is_empty() {
                "invalid arguments".to_string()
            } else {
                message.join(" ")
            };
            eprintln!("{message} (see --help)");
            std::process::exit(2);
        }
    }
}

/// Variables that may hold credentials, and so may come from a file instead
/// (`DATABASE_URL_FILE=/run/secrets/database_url`), as container secrets are mounted.
pub const SECRET_VARIABLES: &[&str] = &[
    "MONGODB_URI",
    "NATS_URL",
    "NATS_PASSWORD",
    "NATS_TOKEN",
    "DATABASE_URL",
];

/// For each variable that is unset while `<NAME>_FILE` is set, reads the file into it
/// (without its trailing newline). Runs before any thread starts.
///
/// A `*_FILE` variable naming a file that cannot be read, or set beside its variable.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file a `<NAME>_FILE` variable names cannot be read.
    #[error("{variable}={path}: cannot read it: {source}")]
    Unreadable {
        /// The `<NAME>_FILE` variable.
        variable: String,
        /// The file it names.
        path: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// Both the variable and its `_FILE` are set.
    #[error("both {variable} and {variable}_FILE are set, and one would silently win: keep one")]
    Both {
        /// The variable.
        variable: String,
    },
}

/// # Errors
/// [`SecretFileError`] when a named file cannot be read.
pub fn secrets_from_files(names: &[&str]) -> Result<(), SecretFileError> {
    for name in names {
        let file_var = format!("{name}_FILE");
        let Some(path) = std::env::var_os(&file_var) else {
            continue;
        };
        if std::env::var_os(name).is_some() {
            return Err(SecretFileError::Both {
                variable: name.to_string(),
            });
        }
        let value =
            std::fs::read_to_string(&path).map_err(|source| SecretFileError::Unreadable {
                variable: file_var.clone(),
                path: std::path::Path::new(&path).display().to_string(),
                source,
            })?;
        // Single-threaded here: nothing else reads the environment concurrently.
        std::env::set_var(name, value.trim_end_matches(['\n', '\r']));
    }
    Ok(())
}

/// Writes a command's report to standard output. A reader that went away early
/// (`mongo2pg status | head -1`) is not an error of ours: the rest is dropped quietly
/// instead of the panic `print!` would give.
pub fn print_out(text: impl std::fmt::Display) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = write!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// Prints an error of the binaries' edge on one line and returns the failure exit
/// code. The typed errors of the libraries say their cause in their own text (in the
/// words that tell what to fix), so the chain below them is not printed again.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let line = err.to_string().replace('\n', " ");
    eprintln!("error: {line}");
    ExitCode::FAILURE
}

/// Runs a binary's main work: starts the runtime, then telemetry inside it (the OTLP
/// exporter needs a reactor), runs `work`, flushes traces while the runtime still
/// runs, and turns an error into one line and a failure status.
pub fn run_main<F, Fut>(
    service: &'static str,
    format: crate::config::LogFormat,
    work: F,
) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let telemetry = crate::telemetry::init(service, format);
        let result = work().await;
        // Flush on a blocking thread: the exporter's shutdown waits for the export.
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        result
    });
    match result {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}
