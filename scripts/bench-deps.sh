#!/usr/bin/env bash
# Installs what the benchmark's Python baseline needs (asyncpg) under $MONGO2PG_HOME.
set -euo pipefail
dir="${MONGO2PG_HOME:-$HOME/.cache/mongo2pg}/pybench"
if [ ! -d "$dir/asyncpg" ]; then
  echo "bench: installing asyncpg from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check --target "$dir" asyncpg
fi
