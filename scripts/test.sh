#!/usr/bin/env bash
# The whole test suite from a fresh clone: starts MongoDB, NATS and PostgreSQL when
# they are not running (installing what is missing), builds the binaries the
# end-to-end tests run, then runs every test. Style checks run first: they are quick.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up
eval "$(scripts/services.sh env)"
scripts/bench-deps.sh   # the benchmark's smoke run includes the Python baseline

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
# --no-fail-fast: one failing test binary does not hide the others' results.
cargo test --workspace --locked --no-fail-fast
