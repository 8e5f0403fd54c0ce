//! The edge of both binaries: parsing arguments into one clear error line, and the
//! runtime they run on.

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line. Help and version print as usual; a bad flag prints clap's
/// one-line message and a pointer to `--help`, and exits with status 2.
pub fn parse<T: Parser>() -> T {
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
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first} (see --help)");
            std::process::exit(2);
        }
    }
}

/// Prints an error of the binaries' edge on one line (its causes joined by ": ") and
/// returns the failure exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let line = format!("{err:#}").replace('\n', " ");
    eprintln!("error: {line}");
    ExitCode::FAILURE
}
