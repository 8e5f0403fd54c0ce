#!/usr/bin/env bash
# The whole test suite from a fresh clone: starts MongoDB, NATS and PostgreSQL when
# they are not running (installing what is missing), builds the binaries the
# end-to-end tests run, then runs every test. Style, dependency and import checks and
# the book run first: they are quick.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up
eval "$(scripts/services.sh env)"
scripts/bench-deps.sh   # the benchmark's smoke run includes the Python baseline
scripts/tools.sh        # mdBook and cargo-deny, installed once

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo deny --locked check licenses bans sources
python3 scripts/imports.py   # no module of a crate imports one that imports it back
mdbook build docs            # the book; its links and CLI reference are checked by e2e docs::
cargo build --workspace --bins --locked
# --no-fail-fast: one failing test binary does not hide the others' results.
cargo test --workspace --locked --no-fail-fast
