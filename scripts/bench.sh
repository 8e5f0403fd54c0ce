#!/usr/bin/env bash
# The benchmark: brings the services up, builds release binaries, and runs
# scripts/bench.py (see its --help), e.g.
#   scripts/bench.sh --docs 1000000 --consumers 4
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh up
eval "$(scripts/services.sh env)"
cargo build --release --bins --quiet
exec python3 scripts/bench.py "$@"
