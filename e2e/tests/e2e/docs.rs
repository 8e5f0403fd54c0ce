//! The README and the book (docs/, built by mdBook in the test command) stay true: the
//! command-line reference is what the binaries say, every relative link resolves to a
//! file and a heading, and the README stays a short front page.

use e2e::docs;

#[test]
fn the_cli_reference_is_what_the_binaries_say() {
    let generated = docs::cli_reference(e2e::binary);
    let path = docs::root().join("docs/reference/cli.md");
    if std::env::var_os("UPDATE_CLI_REFERENCE").is_some() {
        std::fs::write(&path, &generated).expect("writing the CLI reference");
    }
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        written == generated,
        "docs/reference/cli.md differs from the binaries' --help: run `UPDATE_CLI_REFERENCE=1 cargo test -p e2e --test e2e docs::` and commit it"
    );
    // Every operator command is in the operator's binary, and only the daemons in theirs.
    let mongo2pg = docs::subcommands(&docs::help(&e2e::binary("mongo2pg"), &[]));
    for command in [
        "status", "cutover", "verify", "infer", "replay", "requeue", "cleanup", "seed",
    ] {
        assert!(mongo2pg.iter().any(|c| c == command), "mongo2pg {command}");
    }
    for daemon in ["producer", "consumer"] {
        assert_eq!(
            docs::subcommands(&docs::help(&e2e::binary(daemon), &[])),
            ["run"],
            "{daemon} holds only its daemon"
        );
    }
}

#[test]
fn every_relative_link_of_the_readme_and_the_book_resolves() {
    let root = docs::root();
    let mut files = vec![root.join("README.md")];
    let mut folders = vec![root.join("docs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("docs/") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 10, "the book's pages: {files:?}");
    let broken: Vec<String> = files.iter().flat_map(|f| docs::broken_links(f)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    // Every page is in the book's table of contents.
    let summary = std::fs::read_to_string(root.join("docs/SUMMARY.md")).expect("SUMMARY.md");
    for file in &files[1..] {
        let page = file
            .strip_prefix(root.join("docs"))
            .expect("under docs/")
            .display()
            .to_string();
        if page != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("({page})")),
                "{page} is not in SUMMARY.md"
            );
        }
    }
}

#[test]
fn the_readme_is_a_short_front_page() {
    let readme = std::fs::read_to_string(docs::root().join("README.md")).expect("README.md");
    assert!(
        readme.len() <= 12 * 1024,
        "README.md is {} bytes: move the detail into the book (docs/)",
        readme.len()
    );
    // The two commands: the main job and the whole test suite.
    assert!(readme.contains("scripts/demo.sh") && readme.contains("scripts/test.sh"));
}

/// The operating guide shows the dashboard as it is: each panel's every query, written
/// as the dashboard holds it, and the charts of a real run it shows.
#[test]
fn the_operating_guide_shows_every_query_of_the_dashboard() {
    let root = docs::root();
    let guide =
        std::fs::read_to_string(root.join("docs/guides/operating.md")).expect("operating.md");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/monitoring/dashboard.json")).expect("dashboard"),
    )
    .expect("json");
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            assert!(
                guide.contains(&format!("`{expr}`")),
                "the operating guide lacks the query of {:?}: {expr}",
                panel["title"]
            );
            queries += 1;
        }
    }
    assert!(queries >= 20, "{queries}");
    for chart in ["run-throughput.svg", "run-lag.svg", "run-headroom.svg"] {
        assert!(guide.contains(&format!("(../images/{chart})")), "{chart}");
        let svg = std::fs::read_to_string(root.join("docs/images").join(chart)).expect("chart");
        assert!(svg.contains("<polyline"), "{chart} has no line");
    }
}
