#!/usr/bin/env bash
# The main job, on this machine: brings the services up, seeds users into MongoDB,
# starts 4 consumers and the producer, and prints the throughput and a verified count.
#
#   scripts/demo.sh                 100,000 users
#   scripts/demo.sh --count 1000000 a million
#   scripts/demo.sh --consumers 8   more consumer processes
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=100000
CONSUMERS=4
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT=$2; shift 2 ;;
    --consumers) CONSUMERS=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

scripts/services.sh up
eval "$(scripts/services.sh env)"
cargo build --release --bins --quiet
BIN=target/release

export MONGODB_DATABASE=mongo2pg_demo
export NATS_STREAM=DEMO
export MIGRATION_RUN="demo-$(date +%Y%m%d-%H%M%S)"
ADMIN_URL=$DATABASE_URL
export DATABASE_URL="${ADMIN_URL%/*}/mongo2pg_demo"
psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS mongo2pg_demo WITH (FORCE)" -c "CREATE DATABASE mongo2pg_demo"

echo "== seeding $COUNT users into MongoDB ($MONGODB_DATABASE.users)"
$BIN/mongo2pg seed --count "$COUNT" --collection users --drop

echo "== migrating with $CONSUMERS consumers (run $MIGRATION_RUN)"
start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$CONSUMERS"); do
  $BIN/consumer run --exit-when-done > "/tmp/mongo2pg-consumer-$i.log" 2>&1 &
  pids+=($!)
done
$BIN/producer run --collection users
for pid in "${pids[@]}"; do wait "$pid"; done
end=$(date +%s.%N)
for i in $(seq 1 "$CONSUMERS"); do tail -n 1 "/tmp/mongo2pg-consumer-$i.log"; done

rows=$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM users")
distinct=$(psql "$DATABASE_URL" -Atc "SELECT count(DISTINCT _id) FROM users")
source=$(PYTHONPATH="${MONGO2PG_HOME:-$HOME/.cache/mongo2pg}/mongodb" python3 -c "
import os; from pymongo import MongoClient
print(MongoClient(os.environ['MONGODB_URI'])[os.environ['MONGODB_DATABASE']].users.count_documents({}))")
awk -v rows="$rows" -v s="$start" -v e="$end" \
  'BEGIN { printf "== %d rows in PostgreSQL in %.2f s (%.0f docs/s, end to end)\n", rows, e - s, rows / (e - s) }'
if [ "$rows" = "$source" ] && [ "$distinct" = "$source" ]; then
  echo "== verified: $rows rows = $source source documents, no _id twice"
else
  echo "== MISMATCH: $rows rows ($distinct distinct) for $source source documents" >&2
  exit 1
fi
