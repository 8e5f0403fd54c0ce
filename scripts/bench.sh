#!/usr/bin/env bash
# The benchmark: brings the services up, builds release binaries, installs the Python
# baseline's asyncpg, and runs scripts/bench.py (see its --help), e.g.
#   scripts/bench.sh --docs 1000000 --consumers 4 --baseline --trace
# or, with --live first, the change path's benchmark, scripts/bench_live.py:
#   scripts/bench.sh --live --docs 100000 --changes 200000 --rate 2000 --seconds 30
# or, with --readers first, the parallel snapshot's, scripts/bench_readers.py:
#   scripts/bench.sh --readers --docs 1000000,10000000 --readers-list 1,2,4
# or, with --finish first, mongo2pg finish against psql, scripts/bench_finish.py:
#   scripts/bench.sh --finish --docs 1000000 --jobs 2
# or, with --relational first, typed child tables against a jsonb child,
# scripts/bench_relational.py:
#   scripts/bench.sh --relational --docs 1000000 --consumers 4 --rounds 3
# or, with --transforms first, hash and encrypt on three columns against the same run
# untransformed, scripts/bench_transforms.py:
#   scripts/bench.sh --transforms --docs 1000000 --consumers 4 --rounds 3
# or, with --tables first, a run of several collections against psql \copy of each,
# scripts/bench_tables.py:
#   scripts/bench.sh --tables --docs 2000000 --collections 8 --consumers 4 --rounds 3
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh up
eval "$(scripts/services.sh env)"
scripts/bench-deps.sh
export BENCH_PYTHONPATH="${MONGO2PG_HOME:-$HOME/.cache/mongo2pg}/pybench:${MONGO2PG_HOME:-$HOME/.cache/mongo2pg}/mongodb"
cargo build --release --bins --quiet
if [ "${1:-}" = "--readers" ]; then
  shift
  cargo build --release --quiet -p e2e --bin scan
  exec python3 scripts/bench_readers.py "$@"
fi
if [ "${1:-}" = "--finish" ]; then
  shift
  exec python3 scripts/bench_finish.py "$@"
fi
if [ "${1:-}" = "--relational" ]; then
  shift
  exec python3 scripts/bench_relational.py "$@"
fi
if [ "${1:-}" = "--transforms" ]; then
  shift
  exec python3 scripts/bench_transforms.py "$@"
fi
if [ "${1:-}" = "--tables" ]; then
  shift
  exec python3 scripts/bench_tables.py "$@"
fi
if [ "${1:-}" = "--live" ]; then
  shift
  exec python3 scripts/bench_live.py "$@"
fi
exec python3 scripts/bench.py "$@"
