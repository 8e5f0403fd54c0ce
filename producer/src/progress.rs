//! The progress bar people see when the producer runs on a terminal: documents
//! published of the collection's estimated count, documents per second, and time left.
//! Off a terminal (a Job, a pipe) there is no bar; a structured log line every few
//! seconds says the same.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar for one collection, or `None` when stderr is not a terminal.
pub(crate) fn bar(collection: &str, estimated: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(estimated), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{bar:40}] {human_pos}/{human_len} docs  {per_sec}  ETA {eta}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(collection.to_string());
    Some(bar)
}
