#!/usr/bin/env python3
"""End-to-end benchmark of the real pipeline against PostgreSQL's own COPY.

In one run, for each shape (realistic users, and flat 3-field users):
  1. seeds the collection once (reused when it already holds the right count);
  2. times the migration from the processes' start to the last consumer's exit
     (`--exit-when-done`: every batch committed, every key built), with K consumer
     processes, and records the CPU seconds and peak RSS of every process of
     ours (exact, from wait4), and the CPU seconds mongod, nats-server and PostgreSQL
     spent meanwhile (from /proc); then times the consumer's mapping alone on one thread
     (`map_rate`, up to 200,000 of the documents), the steadier figure for the mapping;
  3. exports the same mapped rows to a file and times `psql \\copy` of them into an
     identical fresh table: PostgreSQL's own limit, which our rate is reported against;
  4. times `mongo2pg status` on the finished run, with MongoDB's metadata count and
     with --exact (counted);
  5. writes everything to a JSON file and prints a short table, with the machine.

Ratios measured in one run are the point: this machine is shared and noisy, so no
absolute number here is asserted anywhere. With --rounds N (3 by default) every shape
is measured N times, the shapes alternating, each round's ratio against its own
`psql \\copy`; an aim is judged on the median round, never on one lucky or unlucky run.

  scripts/bench.sh --docs 1000000 --consumers 4
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")

MAPPINGS = {
    "users": [
        ("id", "_id", "text"), ("username", "username", "text"), ("email", "email", "text"),
        ("age", "age", "int4"), ("login_count", "login_count", "int8"), ("rating", "rating", "float8"),
        ("balance", "balance", "numeric"), ("active", "active", "bool"),
        ("created_at", "created_at", "timestamptz"), ("external_id", "external_id", "uuid"),
        ("password_hash", "password_hash", "bytea"), ("city", "address.city", "text"),
        ("address", "address", "jsonb"), ("tags", "tags", "jsonb"),
    ],
    "flat": [
        ("id", "_id", "text"), ("username", "username", "text"), ("email", "email", "text"),
        ("age", "age", "int4"),
    ],
}


def die(message):
    print(f"bench: {message}", file=sys.stderr)
    sys.exit(1)


def psql(url, *commands):
    args = ["psql", url, "-v", "ON_ERROR_STOP=1", "-Atq"]
    for command in commands:
        args += ["-c", command]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        die(f"psql failed: {done.stderr.strip()}")
    return done.stdout.strip()


def primary_key(url, table):
    """The 0-based position, name and type of `table`'s one-column primary key."""
    found = psql(url, "SELECT a.attnum - 1, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i "
                      "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
                      f"WHERE i.indrelid = '\"{table}\"'::regclass AND i.indisprimary")
    if not found:
        die(f"{table} has no primary key")
    position, name, key_type = found.split("|")
    return int(position), name, key_type


def with_database(url, name):
    return re.sub(r"/[^/?]*(\?|$)", f"/{name}\\1", url, count=1) if "://" in url else url


def mongo_count(uri, database, collection):
    sys.path.insert(0, os.path.join(os.environ.get("MONGO2PG_HOME", os.path.expanduser("~/.cache/mongo2pg")), "mongodb"))
    from pymongo import MongoClient  # installed by scripts/services.sh

    client = MongoClient(uri)
    try:
        if collection not in client[database].list_collection_names():
            return 0
        return client[database][collection].estimated_document_count()
    finally:
        client.close()


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pids_named(name):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


INFRA = ("mongod", "nats-server", "postgres")


class InfraSampler(threading.Thread):
    """CPU seconds of mongod, nats-server and PostgreSQL during a run, sampled every 100 ms
    so that processes which exit meanwhile (the backends serving our consumers) count."""

    def __init__(self):
        super().__init__(daemon=True)
        self.start_cpu = {pid: cpu_seconds(pid) for name in INFRA for pid in pids_named(name)}
        self.last = {}
        self.stop = threading.Event()

    def sample(self):
        for name in INFRA:
            for pid in pids_named(name):
                self.last[pid] = (name, cpu_seconds(pid))

    def run(self):
        while not self.stop.wait(0.1):
            self.sample()

    def finish(self):
        self.stop.set()
        self.join()
        self.sample()
        used = {name: 0.0 for name in INFRA}
        for pid, (name, cpu) in self.last.items():
            used[name] += cpu - self.start_cpu.get(pid, 0.0)
        return {name: round(cpu, 2) for name, cpu in used.items()}


def infra_rss():
    return {name: sum(rss_kib(p) for p in pids_named(name)) // 1024 for name in INFRA}


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1), "cpu": model,
            "kernel": platform.release()}


class Proc:
    """A process of ours, waited for with wait4 so that its CPU time and peak RSS are exact."""

    def __init__(self, name, args, env):
        self.name = name
        self.out = tempfile.TemporaryFile()
        self.popen = subprocess.Popen(args, env=env, stdout=self.out, stderr=subprocess.STDOUT)
        self.status = None

    def wait(self):
        _, status, usage = os.wait4(self.popen.pid, 0)
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        self.out.seek(0)
        output = self.out.read().decode(errors="replace")
        if self.popen.returncode != 0:
            die(f"{self.name} failed ({self.popen.returncode}):\n{output}")
        return {"cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                "output": output}


def add_target_args(parser):
    """The flags every benchmark takes to find the binaries and its own databases."""
    parser.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    parser.add_argument("--mongodb-database", default="mongo2pg_bench")
    parser.add_argument("--pg-database", default="mongo2pg_bench")
    parser.add_argument("--stream", default="BENCH")


def target_env(args):
    """The environment of the benchmark's processes: its PostgreSQL database (created
    when missing), MongoDB database and stream; no tracing unless asked."""
    env = dict(os.environ)
    admin_url = env.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if psql(admin_url, f"SELECT count(*) FROM pg_database WHERE datname = '{args.pg_database}'") == "0":
        psql(admin_url, f'CREATE DATABASE "{args.pg_database}"')
    env.update(DATABASE_URL=with_database(admin_url, args.pg_database), MONGODB_DATABASE=args.mongodb_database,
               NATS_STREAM=args.stream)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    return env


def seed(args, env, collection, shape, count):
    """`mongo2pg seed` of the collection, unless it holds `count` documents already."""
    if mongo_count(env["MONGODB_URI"], env["MONGODB_DATABASE"], collection) != count:
        print(f"bench: seeding {count} {shape} documents into {collection}", file=sys.stderr)
        subprocess.run([f"{args.bin_dir}/mongo2pg", "seed", "--count", str(count), "--collection", collection,
                        "--shape", shape, "--drop"], env=env, check=True, stdout=subprocess.DEVNULL)


def migrate_mapped(args, env, collection, mapping_text, label, extra_env=None):
    """Migrates `collection` through the real pipeline with a mapping, `args.consumers`
    consumers and one producer, as run `bench-<label>-<ms>`; returns the run's name,
    its seconds (start to the last consumer's exit) and the consumers' peak RSS. The
    caller drops the tables before and checks them after."""
    mapping = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    mapping.write(mapping_text)
    mapping.close()
    run = f"bench-{label}-{int(time.time() * 1000)}"
    run_env = dict(env, MIGRATION_RUN=run, RUST_LOG="warn", **(extra_env or {}))
    start = time.time()
    consumers = [Proc(f"consumer {i}", [f"{args.bin_dir}/consumer", "run", "--exit-when-done", "--mapping",
                                        mapping.name], run_env) for i in range(args.consumers)]
    producer = Proc("producer", [f"{args.bin_dir}/producer", "run", "--collection", collection], run_env)
    producer.wait()
    consumed = [c.wait() for c in consumers]
    seconds = time.time() - start
    os.unlink(mapping.name)
    return run, round(seconds, 3), max(c["peak_rss_mib"] for c in consumed)


def run_shape(shape, args, env, bin_dir, extra_env=None):
    collection = f"bench_{shape}_{args.docs}"
    db_url = env["DATABASE_URL"]
    seed(args, env, collection, shape, args.docs)
    psql(db_url, f'DROP TABLE IF EXISTS "{collection}", "{collection}_copy", _migrate_ledger, '
                 "_migrate_rejects, _migrate_dead_letters, _migrate_keys")

    mapping = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    columns = ",\n".join(f'  {{ name = "{n}", path = "{p}", type = "{t}" }}' for n, p, t in MAPPINGS[shape])
    mapping.write(f'[collections.{collection}]\ncolumns = [\n{columns}\n]\n')
    mapping.close()

    run = f"bench-{shape}-{int(time.time() * 1000)}"
    run_env = dict(env, MIGRATION_RUN=run, RUST_LOG="warn", **(extra_env or {}))
    sampler = InfraSampler()
    sampler.start()
    start = time.time()
    consumers = [Proc(f"consumer {i}", [f"{bin_dir}/consumer", "run", "--exit-when-done", "--mapping", mapping.name],
                      run_env) for i in range(args.consumers)]
    producer = Proc("producer", [f"{bin_dir}/producer", "run", "--collection", collection], run_env)
    produced = producer.wait()
    consumed = [c.wait() for c in consumers]
    # The end is the last consumer's exit (`--exit-when-done`): every batch committed
    # and every key built after the load, as `\copy`'s end is psql's exit. Not the
    # ledger's or the key registry's timestamps: the system measured does not date its
    # own finish line.
    seconds = time.time() - start
    infra = sampler.finish()
    mapping_us = mapping_alone(bin_dir, env, collection, mapping.name, args.docs)
    os.unlink(mapping.name)

    # Of those seconds, the primary key's build after the load (none with the key during
    # the load, `KEY_AFTER_LOAD=false`).
    key_seconds = 0.0
    if psql(db_url, "SELECT to_regclass('_migrate_keys') IS NOT NULL") == "t":
        key_seconds = float(psql(db_url, "SELECT coalesce(sum(seconds), 0) FROM _migrate_keys "
                                         f"WHERE run = '{run}' AND state = 'built'"))
    rows = int(psql(db_url, f'SELECT count(*) FROM "{collection}"'))
    if rows != args.docs:
        die(f"{rows} rows landed for {args.docs} documents")
    match = re.search(r"([\d.]+) MB", produced["output"])
    megabytes = float(match.group(1)) if match else 0.0

    # PostgreSQL's own COPY of the same rows, from a file, into an identical fresh table.
    # The file is in key order, as MongoDB hands the documents out: the order a COPY
    # goes fastest in (each key appended to the primary key's last page), where the
    # table's own order interleaves the batches its sessions wrote.
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = os.path.join(tmp, "rows.copy")
        os.chmod(tmp, 0o755)
        _, key, _ = primary_key(db_url, collection)
        psql(db_url, f"\\copy (SELECT * FROM \"{collection}\" ORDER BY \"{key}\") TO '{rows_file}'")
        psql(db_url, f'CREATE TABLE "{collection}_copy" (LIKE "{collection}" INCLUDING ALL)')
        copy_start = time.time()
        psql(db_url, f"\\copy \"{collection}_copy\" FROM '{rows_file}'")
        copy_seconds = time.time() - copy_start
        file_mb = os.path.getsize(rows_file) / 1e6
    psql(db_url, f'DROP TABLE "{collection}_copy"')

    # `mongo2pg status` on the finished run: MongoDB's metadata count (must not scan the
    # collection, whatever its size), then --exact (a count, for comparison).
    status_seconds = {}
    for label, extra in (("metadata", []), ("exact", ["--exact"])):
        status_start = time.time()
        status = subprocess.run([f"{bin_dir}/mongo2pg", "status", *extra], env=run_env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        status_seconds[label] = round(time.time() - status_start, 3)
        if status.returncode != 0:
            die(f"mongo2pg status {' '.join(extra)} exited {status.returncode}: {status.stdout}{status.stderr}")

    ours_cpu = produced["cpu_s"] + sum(c["cpu_s"] for c in consumed)
    return {
        "shape": shape,
        "documents": args.docs,
        "consumers": args.consumers,
        "seconds": round(seconds, 3),
        "key_build_seconds": round(key_seconds, 3),
        "docs_per_s": round(args.docs / seconds),
        "mb_per_s": round(megabytes / seconds, 1),
        "psql_copy_seconds": round(copy_seconds, 3),
        "psql_copy_rows_per_s": round(args.docs / copy_seconds),
        "psql_copy_file_mb": round(file_mb, 1),
        "ratio_to_psql_copy": round(copy_seconds / seconds, 3),
        "our_cpu_us_per_doc": round(ours_cpu / args.docs * 1e6, 2),
        "mapping_us_per_doc": mapping_us,
        "status_seconds": status_seconds["metadata"],
        "status_exact_seconds": status_seconds["exact"],
        "producer": {k: v for k, v in produced.items() if k != "output"},
        "consumers_detail": [{k: v for k, v in c.items() if k != "output"} for c in consumed],
        "infra_cpu_s": infra,
        "infra_rss_mib_after": infra_rss(),
    }


def mapping_alone(bin_dir, env, collection, mapping_file, docs):
    """The consumer's mapping alone, one thread, on up to 200,000 of the collection's
    documents (e2e/src/bin/map_rate.rs): µs per document, median of three rounds. The
    steadier figure for a change to the mapping; the run's ratio moves with the machine."""
    done = subprocess.run([f"{bin_dir}/map_rate", env["MONGODB_URI"], env["MONGODB_DATABASE"], collection,
                           mapping_file, str(min(docs, 200_000)), "3"], capture_output=True, text=True)
    match = re.search(r"median: ([\d.]+) ", done.stdout)
    if done.returncode != 0 or not match:
        die(f"map_rate failed: {done.stdout}{done.stderr}")
    return float(match.group(1))


def measure_tracing(args, env, untraced):
    """The first shape with full tracing (every span exported to a local OTLP sink), then
    untraced again: overhead against the mean of the two untraced runs."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = subprocess.Popen([os.path.join(args.bin_dir, "otlp_sink"), f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    traced = run_shape(untraced["shape"], args, env, args.bin_dir,
                       {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_TRACES_SAMPLER": "always_on"})
    sink.terminate()
    out, _ = sink.communicate(timeout=30)
    match = re.search(r"spans received: (\d+)", out or "")
    again = run_shape(untraced["shape"], args, env, args.bin_dir)
    baseline = (untraced["seconds"] + again["seconds"]) / 2
    return {"shape": untraced["shape"], "traced_seconds": traced["seconds"], "untraced_seconds": round(baseline, 3),
            "spans": int(match.group(1)) if match else 0,
            "overhead_percent": round((traced["seconds"] / baseline - 1) * 100, 1)}


def measure_baseline(args, env, runs):
    """The script people use today, on the same flat collection, in this run."""
    flat = next((r for r in runs if r["shape"] == "flat"), None)
    if flat is None:
        die("--baseline needs the flat shape")
    pythonpath = os.pathsep.join(p for p in [env.get("BENCH_PYTHONPATH", ""), env.get("PYTHONPATH", "")] if p)
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "baseline_asyncpg.py"), env["MONGODB_URI"],
         env["MONGODB_DATABASE"], f"bench_flat_{args.docs}", env["DATABASE_URL"], "baseline_users"],
        capture_output=True, text=True, env=dict(env, PYTHONPATH=pythonpath))
    match = re.search(r"baseline: (\d+) rows in ([\d.]+) s", done.stdout)
    if done.returncode != 0 or not match:
        die(f"the baseline failed: {done.stderr.strip() or done.stdout.strip()}")
    if int(match.group(1)) != args.docs:
        die(f"the baseline landed {match.group(1)} rows for {args.docs} documents")
    seconds = float(match.group(2))
    return {"seconds": seconds, "pipeline_seconds": flat["seconds"], "speedup": round(seconds / flat["seconds"], 2)}


def medians(runs):
    """Per shape and size, the median round: its ratio to `psql \\copy` (each round's
    against its own), its rate, and its processes' peaks, which the scale aim compares."""
    groups = {}
    for r in runs:
        groups.setdefault((r["shape"], r["documents"]), []).append(r)
    out = []
    for (shape, documents), group in groups.items():
        ratios = [r["ratio_to_psql_copy"] for r in group]
        median = statistics.median_low(ratios)
        middle = next(r for r in group if r["ratio_to_psql_copy"] == median)
        out.append({"shape": shape, "documents": documents, "ratios": ratios,
                    "ratio_to_psql_copy": round(statistics.median(ratios), 3),
                    "docs_per_s": round(statistics.median(r["docs_per_s"] for r in group)),
                    "producer": {"peak_rss_mib": max(r["producer"]["peak_rss_mib"] for r in group)},
                    "consumers_detail": [{"peak_rss_mib": max(c["peak_rss_mib"] for r in group
                                                              for c in r["consumers_detail"])}],
                    "median_round": middle["round"]})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default="1000000",
                        help="comma-separated collection sizes: with two (1000000,10000000), the report "
                             "gives the larger's rate against the smaller's (the scale aim)")
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--shapes", default="users,flat", help="comma-separated: users, flat")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of every shape and size, alternating; each aim is judged on the median "
                             "round (this machine moves by 10-40%% from one run to the next)")
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "bench-results.json"))
    add_target_args(parser)
    parser.add_argument("--baseline", action="store_true",
                        help="also run the Python asyncio + asyncpg skip/limit migration on the flat users, "
                             "in this run, and report how much faster the pipeline is")
    parser.add_argument("--trace", action="store_true",
                        help="also measure the cost of full tracing: the first shape again with every span "
                             "exported over OTLP to a local sink, then once more without")
    args = parser.parse_args()

    env = target_env(args)

    results = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": []}
    sizes = [int(d) for d in str(args.docs).split(",")]
    if args.rounds < 1:
        die("--rounds must be at least 1")
    for round_number in range(1, args.rounds + 1):
        for size in sizes:
            args.docs = size
            for shape in args.shapes.split(","):
                run = run_shape(shape.strip(), args, env, args.bin_dir)
                run["round"] = round_number
                results["runs"].append(run)
    results["medians"] = medians(results["runs"])
    # Tracing and the baseline are measured at the first size.
    args.docs = sizes[0]
    if args.trace:
        results["tracing"] = measure_tracing(args, env, results["runs"][0])
    if args.baseline:
        results["baseline"] = measure_baseline(args, env, results["runs"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)

    m = results["machine"]
    print(f"machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}, Linux {m['kernel']}")
    print(f"{'round':>5} {'shape':<6} {'docs':>9} {'cons':>4} {'seconds':>8} {'key s':>6} {'docs/s':>8} {'MB/s':>6} "
          f"{'psql s':>7} {'ratio':>6} {'us/doc':>7} {'map us':>6} {'prod MiB':>8} {'cons MiB':>8}  infra CPU s")
    for r in results["runs"]:
        infra = " ".join(f"{k}={v}" for k, v in r["infra_cpu_s"].items())
        print(f"{r['round']:>5} {r['shape']:<6} {r['documents']:>9} {r['consumers']:>4} {r['seconds']:>8.2f} "
              f"{r['key_build_seconds']:>6.2f} {r['docs_per_s']:>8} "
              f"{r['mb_per_s']:>6} {r['psql_copy_seconds']:>7.2f} {r['ratio_to_psql_copy']:>6.3f} "
              f"{r['our_cpu_us_per_doc']:>7.1f} {r['mapping_us_per_doc']:>6.2f} {r['producer']['peak_rss_mib']:>8} "
              f"{max(c['peak_rss_mib'] for c in r['consumers_detail']):>8}  {infra}")
    for m in results["medians"]:
        rounds = ", ".join(f"{ratio:.2f}" for ratio in m["ratios"])
        print(f"aim: {m['shape']} end to end >= 1.0x psql \\copy ({m['documents']} documents, median of "
              f"{len(m['ratios'])} round(s): {rounds}): {m['ratio_to_psql_copy']:.2f}x, "
              f"{'met' if m['ratio_to_psql_copy'] >= 1.0 else 'not met'}")
    by_shape = {}
    for m in results["medians"]:
        by_shape.setdefault(m["shape"], []).append(m)
    for shape, runs in by_shape.items():
        if len(runs) >= 2:
            small, large = min(runs, key=lambda r: r["documents"]), max(runs, key=lambda r: r["documents"])
            scale = large["docs_per_s"] / small["docs_per_s"]
            growth = {name: large[name]["peak_rss_mib"] / small[name]["peak_rss_mib"] for name in ("producer",)}
            consumer_growth = (max(c["peak_rss_mib"] for c in large["consumers_detail"])
                               / max(c["peak_rss_mib"] for c in small["consumers_detail"]))
            print(f"aim: {shape} at {large['documents']} documents >= 0.95x the rate at {small['documents']}: "
                  f"{scale:.2f}x, {'met' if scale >= 0.95 else 'not met'}; peak RSS x{growth['producer']:.2f} "
                  f"(producer), x{consumer_growth:.2f} (consumers)")
    for r in results["runs"][:len(results["medians"])]:
        print(f"mongo2pg status on the {r['documents']}-document {r['shape']} run: {r['status_seconds']:.2f} s "
              f"(metadata count), {r['status_exact_seconds']:.2f} s with --exact (counted)")
    if "baseline" in results:
        b = results["baseline"]
        print(f"python asyncio + asyncpg (skip/limit), flat users: {b['seconds']:.2f} s; "
              f"the pipeline: {b['pipeline_seconds']:.2f} s, {b['speedup']:.1f}x faster")
    if "tracing" in results:
        t = results["tracing"]
        print(f"tracing: {t['traced_seconds']:.2f} s with every span exported ({t['spans']}), "
              f"{t['untraced_seconds']:.2f} s without (mean of 2): {t['overhead_percent']:+.1f}%")
    print(f"ratio: our end-to-end rate / psql \\copy rate of the same rows, in this run. results: {args.out}")


if __name__ == "__main__":
    main()
