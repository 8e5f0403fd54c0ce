//! The book's checks: the command-line reference generated from the binaries' own
//! `--help`, and every relative link of the README and the book resolving to a file
//! and a heading.

use std::path::{Path, PathBuf};

/// The binaries whose commands the reference lists, in its order.
pub const BINARIES: [&str; 3] = ["mongo2pg", "producer", "consumer"];

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// What `binary args… --help` prints, in an empty environment, so no `[env: X=value]`
/// of this machine's shows.
pub fn help(binary: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(binary)
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("running {} --help: {e}", binary.display()));
    assert!(
        output.status.success(),
        "{} {args:?} --help failed",
        binary.display()
    );
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_string()
}

/// The subcommands a `--help` lists under "Commands:", `help` left out.
pub fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The command-line reference: every binary's and every subcommand's `--help`.
pub fn cli_reference(binary: impl Fn(&str) -> PathBuf) -> String {
    let mut out = String::from(
        "# Command line\n\n\
         Generated from the binaries' own `--help` (`UPDATE_CLI_REFERENCE=1 cargo test -p e2e \
         --test e2e docs::`); the test command fails when it differs from them. Every flag can \
         come from the environment variable its `[env: …]` names.\n",
    );
    for name in BINARIES {
        let path = binary(name);
        let top = help(&path, &[]);
        out.push_str(&format!("\n## `{name}`\n\n```text\n{top}\n```\n"));
        for sub in subcommands(&top) {
            let text = help(&path, &[&sub]);
            out.push_str(&format!("\n### `{name} {sub}`\n\n```text\n{text}\n```\n"));
        }
    }
    out
}

/// A heading's anchor as mdBook makes it: lowercase, spaces to `-`, only letters,
/// digits, `-` and `_` kept.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| {
            if c.is_whitespace() {
                Some('-')
            } else if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c.to_ascii_lowercase())
            } else {
                None
            }
        })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
pub fn anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(anchor(
                line.trim_start_matches('#').replace('`', "").as_str(),
            ));
        }
    }
    out
}

/// The relative link targets of a Markdown file (outside code blocks): `[text](target)`
/// where the target is no URL.
pub fn relative_links(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            let target = &after[..end];
            if !target.contains("://") && !target.starts_with("mailto:") && !target.is_empty() {
                out.push(target.to_string());
            }
            rest = &after[end..];
        }
    }
    out
}

/// Every broken relative link of `file`: a missing file, or an anchor no heading of
/// the target has.
pub fn broken_links(file: &Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let dir = file.parent().expect("a folder");
    let mut broken = Vec::new();
    for target in relative_links(&text) {
        let (path, fragment) = match target.split_once('#') {
            Some((path, fragment)) => (path, Some(fragment)),
            None => (target.as_str(), None),
        };
        let resolved = if path.is_empty() {
            file.to_path_buf()
        } else {
            dir.join(path)
        };
        if !resolved.exists() {
            broken.push(format!("{}: {target}: no such file", file.display()));
            continue;
        }
        if let Some(fragment) = fragment {
            let target_text = std::fs::read_to_string(&resolved).unwrap_or_default();
            if !anchors(&target_text).iter().any(|a| a == fragment) {
                broken.push(format!("{}: {target}: no such heading", file.display()));
            }
        }
    }
    broken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_made_as_mdbook_makes_them() {
        assert_eq!(
            anchor("Live migration: the change path"),
            "live-migration-the-change-path"
        );
        assert_eq!(anchor("`mongo2pg status`"), "mongo2pg-status");
        assert_eq!(
            relative_links("see [a](x.md#b) and [c](https://d) [e](#f)"),
            ["x.md#b", "#f"]
        );
    }
}
