#!/usr/bin/env python3
"""Benchmark of the change path (`producer run --follow`), in one run:

  1. seeds flat users, starts the producer following them and K consumers, and waits
     for `mongo2pg cutover` (the snapshot has landed);
  2. applied changes per second: stops the consumers, makes M updates ($inc on random
     documents, unordered bulk writes) while the producer publishes them, then starts
     the K consumers again and times them from start to `cutover` returning: M changes
     applied in that time. The same number of rows copied by `psql \\copy` into a
     fresh table gives the ratio, measured in the same run (the table's rows, again
     with a suffixed key where the changes outnumber them). With --rounds N (3 by
     default) this step is repeated, each round against its own `\\copy`, and the aim
     is judged on the median round;
  3. lag at a steady write rate: the consumers running, a writer makes R updates/s for
     S seconds while `mongo2pg cutover --no-finish` is run back to back; each cutover's
     wait, as it reports it, is the time from its start (connecting, reading MongoDB's
     cluster time) to PostgreSQL holding every change committed up to that time
     (polled every 50 ms; the process's own start is left out), reported as median, p99 and
     max, with the whole command's median beside it;
  4. with --soak-seconds, a soak: the writer goes on at R writes/s for that long while
     the resident memory (RSS) of the producer and of every consumer is sampled every
     few seconds; each process's median RSS over the first and the last tenth of the
     soak, and its peak, are reported (flat is the goal: what a process holds must not
     grow with a change backlog or with time), then a cutover shows it caught up.

  scripts/bench.sh --live --docs 100000 --changes 200000 --rate 2000 --seconds 30
  scripts/bench.sh --live --rate 2000 --soak-seconds 1800     # the 30-minute soak

With --plot DIR, every process serves /metrics and is scraped twice a second for the
whole run; the charts of the operating guide (throughput, lag, headroom over time) are
drawn from those samples into DIR (scripts/plots.py):

  scripts/bench.sh --live --docs 1000000 --changes 200000 --plot docs/images
"""

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  the snapshot benchmark's helpers: die, psql, with_database
import plots  # noqa: E402  charts drawn from the processes' /metrics
from bench import die, psql, with_database  # noqa: E402

ROOT = bench.ROOT
sys.path.insert(0, os.path.join(os.environ.get("MONGO2PG_HOME", os.path.expanduser("~/.cache/mongo2pg")), "mongodb"))
from pymongo import MongoClient, UpdateOne  # noqa: E402  installed by scripts/services.sh


class Fleet:
    """The producer and the consumers, their output in temporary files."""

    def __init__(self, bin_dir, env, metrics=False):
        self.bin_dir, self.env = bin_dir, env
        self.consumers = []
        # With metrics, each process serves /metrics on a port of its own.
        self.metrics = metrics
        self.metrics_urls = {}  # pid -> URL

    def spawn(self, binary, *args):
        out = tempfile.TemporaryFile()
        port = None
        if self.metrics:
            port = bench_free_port()
            args = (*args, "--metrics-addr", f"127.0.0.1:{port}")
        proc = subprocess.Popen([f"{self.bin_dir}/{binary}", *args], env=self.env, stdout=out,
                                stderr=subprocess.STDOUT)
        if port:
            self.metrics_urls[proc.pid] = f"http://127.0.0.1:{port}/metrics"
        return proc, out

    def live_metrics_urls(self):
        """The /metrics of the processes running now."""
        return [url for pid, url in list(self.metrics_urls.items()) if os.path.exists(f"/proc/{pid}")]

    def start_consumers(self, count):
        self.consumers = [self.spawn("consumer", "run", "--writers", "2") for _ in range(count)]

    def stop_consumers(self):
        for proc, _ in self.consumers:
            proc.send_signal(signal.SIGTERM)
        for proc, out in self.consumers:
            code = proc.wait(timeout=120)
            self.metrics_urls.pop(proc.pid, None)
            if code != 0:
                out.seek(0)
                die(f"a consumer failed: {out.read().decode(errors='replace')}")
        self.consumers = []

    def cutover(self, timeout="600s"):
        return self.cutover_timed(timeout)[0]

    def cutover_timed(self, timeout="600s"):
        """`mongo2pg cutover --no-finish`: the command's seconds, and the wait it reports
        ("caught up in X s": from connecting and reading MongoDB's cluster time to
        PostgreSQL holding every change up to it, polled every 50 ms), the lag without
        the process's own start."""
        started = time.monotonic()
        done = subprocess.run([f"{self.bin_dir}/mongo2pg", "cutover", "--no-finish", "--timeout", timeout],
                              env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            die(f"cutover failed: {done.stderr.strip()}")
        total = time.monotonic() - started
        waited = re.search(r"caught up in ([0-9.]+) s", done.stdout)
        return total, float(waited.group(1)) if waited else total

    def events_published(self):
        done = subprocess.run([f"{self.bin_dir}/mongo2pg", "status"], env=self.env, capture_output=True, text=True)
        match = re.search(r"change stream: (\d+) events published", done.stdout)
        return int(match.group(1)) if match else 0


# Seconds of steady writes before the first cutover of the lag measurement is timed.
LAG_WARMUP_SECONDS = 2


def bench_free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_seconds(db_url, table, rows):
    """psql \\copy of `rows` rows like the table's into a fresh copy of it, in key order
    (the order a COPY goes fastest in). A run makes more changes than the table has rows
    (200,000 updates of 100,000 documents): the table's rows are written again with
    their key prefixed (`~000001.<key>`, `~000002.<key>`, …, each pass after the one before in
    key order) until the file holds `rows`, so `\\copy` writes as many rows as the
    changes, each as wide as the table's."""
    path = tempfile.NamedTemporaryFile(suffix=".copy", delete=False).name
    position, key, key_type = bench.primary_key(db_url, table)
    try:
        psql(db_url, f"\\copy (SELECT * FROM \"{table}\" ORDER BY \"{key}\" LIMIT {rows}) TO '{path}'")
        with open(path) as f:
            lines = f.read().splitlines()
        if not lines:
            die(f"{table} is empty: nothing to \\copy")
        if len(lines) < rows:
            if key_type != "text":
                die(f"{table}'s key is {key_type}: only a text key can be prefixed to make more rows")
            more = []
            for n in range(len(lines), rows):
                fields = lines[n % len(lines)].split("\t")
                # '~' sorts after the digits and letters of the keys written before.
                fields[position] = f"~{n // len(lines):06d}.{fields[position]}"
                more.append("\t".join(fields))
            with open(path, "a") as f:
                f.write("\n".join(more) + "\n")
        psql(db_url, f'DROP TABLE IF EXISTS "{table}_copy"',
             f'CREATE TABLE "{table}_copy" (LIKE "{table}" INCLUDING ALL)')
        started = time.monotonic()
        psql(db_url, f"\\copy \"{table}_copy\" FROM '{path}'")
        seconds = time.monotonic() - started
        copied = int(psql(db_url, f'SELECT count(*) FROM "{table}_copy"'))
        if copied != rows:
            die(f"psql \\copy wrote {copied} rows where {rows} were to be compared")
        return seconds
    finally:
        os.unlink(path)
        psql(db_url, f'DROP TABLE IF EXISTS "{table}_copy"')


def rss_mb(pid):
    """Resident memory of a process in MB, from /proc; None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def steady_writer(users, ids, rate, stop, written):
    """Updates random documents at `rate` per second until `stop`, counting in `written`."""
    tick = 0.05
    per_tick = max(1, int(rate * tick))
    next_at = time.monotonic()
    while not stop.is_set():
        users.bulk_write(updates(ids, per_tick), ordered=False)
        written[0] += per_tick
        next_at += tick
        time.sleep(max(0.0, next_at - time.monotonic()))


def soak(fleet, producer, users, ids, rate, seconds):
    """Writes at `rate` for `seconds`, sampling each process's RSS; see the docstring."""
    processes = {"producer": producer.pid}
    processes.update({f"consumer-{i + 1}": proc.pid for i, (proc, _) in enumerate(fleet.consumers)})
    samples = {name: [] for name in processes}
    stop = threading.Event()
    written = [0]
    every = max(1.0, min(10.0, seconds / 20))
    thread = threading.Thread(target=steady_writer, args=(users, ids, rate, stop, written))
    started = time.monotonic()
    thread.start()
    while time.monotonic() - started < seconds:
        for name, pid in processes.items():
            mb = rss_mb(pid)
            if mb is None:
                stop.set()
                die(f"{name} exited during the soak")
            samples[name].append((time.monotonic() - started, mb))
        time.sleep(every)
    stop.set()
    thread.join()
    achieved = written[0] / (time.monotonic() - started)
    caught_up = fleet.cutover()
    tenth = max(seconds / 10, every)
    report = {}
    for name, taken in samples.items():
        first = [mb for at, mb in taken if at <= tenth] or [taken[0][1]]
        last = [mb for at, mb in taken if at >= seconds - tenth] or [taken[-1][1]]
        report[name] = {"first_mb": round(statistics.median(first), 1), "last_mb": round(statistics.median(last), 1),
                        "peak_mb": round(max(mb for _, mb in taken), 1), "samples": len(taken)}
    return {"seconds": seconds, "rate_target": rate, "rate_achieved": round(achieved),
            "cutover_after_s": round(caught_up, 2), "rss": report}


def updates(ids, count):
    return [UpdateOne({"_id": random.choice(ids)}, {"$inc": {"age": 1}, "$set": {"note": f"n{random.random()}"}})
            for _ in range(count)]


def apply_round(fleet, env, users, ids, args, collection, record):
    """One round of applied changes per second: the consumers stopped, M updates wait in
    the stream; then K consumers apply them, timed from their start to `cutover`
    returning, and `psql \\copy` of as many rows gives the round's ratio. `record`: this
    round's apply phase is the one --perf records."""
    fleet.stop_consumers()
    db_url = env["DATABASE_URL"]
    # The change batches of earlier rounds, left out of this round's span.
    after = psql(db_url, "SELECT coalesce(max(committed_at), '-infinity') FROM _migrate_ledger "
                         "WHERE kind = 'changes'")
    before = fleet.events_published()
    started = time.monotonic()
    for start in range(0, args.changes, 1000):
        users.bulk_write(updates(ids, min(1000, args.changes - start)), ordered=False)
    write_seconds = time.monotonic() - started
    deadline = time.monotonic() + 600
    while fleet.events_published() < before + args.changes:
        if time.monotonic() > deadline:
            die("the producer did not publish the changes within 10 minutes")
        time.sleep(0.2)
    publish_seconds = time.monotonic() - started
    recorder = None
    if args.perf and record:
        recorder = subprocess.Popen(["perf", "record", "-a", "-g", "-e", "cpu-clock", "-o", args.perf],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    started = time.monotonic()
    fleet.start_consumers(args.consumers)
    fleet.cutover()
    apply_seconds = time.monotonic() - started
    if recorder:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
    # Of that time, the span from the first change batch's transaction to the last's:
    # the rest is the consumers' start and cutover's own.
    landing_span = float(psql(db_url, "SELECT coalesce(extract(epoch FROM max(committed_at) - min(committed_at)), 0) "
                                      f"FROM _migrate_ledger WHERE kind = 'changes' AND committed_at > '{after}'")
                         or 0)
    copy = copy_seconds(db_url, collection, args.changes)
    return {"write_seconds": round(write_seconds, 2), "publish_seconds": round(publish_seconds, 2),
            "apply_seconds": round(apply_seconds, 2), "applied_per_s": round(args.changes / apply_seconds),
            "landing_span_seconds": round(landing_span, 2),
            "psql_copy_seconds": round(copy, 2), "copy_rows_per_s": round(args.changes / copy),
            "ratio_to_psql_copy": round(copy / apply_seconds, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of applied changes, each against its own psql \\copy; the aim is judged on "
                             "the median round")
    parser.add_argument("--rate", type=int, default=2000, help="writes per second of the lag measurement")
    parser.add_argument("--seconds", type=int, default=30, help="how long the lag is measured")
    parser.add_argument("--soak-seconds", type=int, default=0,
                        help="after the lag, write at --rate this long sampling every process's RSS (0: no soak)")
    parser.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "bench-live.json"))
    parser.add_argument("--mongodb-database", default="mongo2pg_bench_live")
    parser.add_argument("--pg-database", default="mongo2pg_bench_live")
    parser.add_argument("--stream", default="BENCHLIVE")
    parser.add_argument("--perf", metavar="FILE",
                        help="record the apply phase system-wide with `perf record -a -g` into FILE")
    parser.add_argument("--plot", metavar="DIR",
                        help="scrape every process's /metrics twice a second and draw the run's charts into DIR")
    args = parser.parse_args()
    if args.rounds < 1:
        die("--rounds must be at least 1")
    if args.seconds < LAG_WARMUP_SECONDS + 1:
        die(f"--seconds must be at least {LAG_WARMUP_SECONDS + 1}: the lag is measured after "
            f"{LAG_WARMUP_SECONDS} s of writes, so a shorter run would give no cutover to measure")

    env = dict(os.environ)
    admin_url = env.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if psql(admin_url, f"SELECT count(*) FROM pg_database WHERE datname = '{args.pg_database}'") == "0":
        psql(admin_url, f'CREATE DATABASE "{args.pg_database}"')
    run = f"live{int(time.time())}"
    collection = "users"
    env.update(DATABASE_URL=with_database(admin_url, args.pg_database), MONGODB_DATABASE=args.mongodb_database,
               NATS_STREAM=args.stream, MIGRATION_RUN=run, RUST_LOG="warn")
    psql(env["DATABASE_URL"], f'DROP TABLE IF EXISTS "{collection}", _migrate_ledger, _migrate_rejects, '
                              "_migrate_dead_letters, _migrate_versions")
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    fleet = Fleet(args.bin_dir, env, metrics=bool(args.plot))
    sampler = plots.Sampler(fleet.live_metrics_urls) if args.plot else None

    subprocess.run([f"{args.bin_dir}/mongo2pg", "seed", "--count", str(args.docs), "--collection", collection,
                    "--shape", "flat", "--drop"], env=env, check=True, stdout=subprocess.DEVNULL)
    mongo = MongoClient(env.get("MONGODB_URI", "mongodb://127.0.0.1:27017"))
    users = mongo[args.mongodb_database][collection]
    ids = [doc["_id"] for doc in users.find({}, {"_id": 1})]

    producer, producer_out = fleet.spawn("producer", "run", "--follow", "--collection", collection)
    fleet.start_consumers(args.consumers)
    if sampler:
        sampler.start()
    deadline = time.monotonic() + 60
    while subprocess.run([f"{args.bin_dir}/mongo2pg", "status"], env=env, capture_output=True).returncode == 1:
        if time.monotonic() > deadline:
            die("the producer did not start the run within a minute")
        time.sleep(0.2)
    snapshot_seconds = fleet.cutover()
    print(f"bench: snapshot of {args.docs} landed ({snapshot_seconds:.1f} s); measuring the change path",
          file=sys.stderr)

    # Applied changes per second, --rounds times, each against its own \\copy.
    rounds = [apply_round(fleet, env, users, ids, args, collection, number == 0)
              for number in range(args.rounds)]
    ratios = [r["ratio_to_psql_copy"] for r in rounds]
    median = next(r for r in rounds if r["ratio_to_psql_copy"] == statistics.median_low(ratios))

    # Lag at a steady write rate.
    stop = threading.Event()
    written = [0]
    thread = threading.Thread(target=steady_writer, args=(users, ids, args.rate, stop, written))
    started = time.monotonic()
    thread.start()
    time.sleep(LAG_WARMUP_SECONDS)  # past the start
    lags = []
    commands = []
    while time.monotonic() - started < args.seconds:
        total, waited = fleet.cutover_timed("60s")
        commands.append(total)
        lags.append(waited)
        time.sleep(0.5)
    stop.set()
    thread.join()
    achieved_rate = written[0] / (time.monotonic() - started)
    soaked = soak(fleet, producer, users, ids, args.rate, args.soak_seconds) if args.soak_seconds > 0 else None
    charts = []
    if sampler:
        sampler.stop()
        charts = plots.write_run_plots(sampler, args.plot)

    fleet.stop_consumers()
    producer.send_signal(signal.SIGTERM)
    if producer.wait(timeout=120) != 0:
        producer_out.seek(0)
        die(f"the producer failed: {producer_out.read().decode(errors='replace')}")
    subprocess.run([f"{args.bin_dir}/mongo2pg", "cleanup", "--force"], env=env, capture_output=True)

    results = {
        "documents": args.docs, "consumers": args.consumers, "changes": args.changes,
        # The median round's figures, then every round's.
        **median, "rounds": rounds, "ratios": ratios,
        "ratio_to_psql_copy": round(statistics.median(ratios), 3),
        "lag_rate_target": args.rate, "lag_rate_achieved": round(achieved_rate),
        "lag_samples": len(lags), "lag_median_s": round(statistics.median(lags), 2), "lag_max_s": round(max(lags), 2),
        "lag_p99_s": round(sorted(lags)[min(len(lags) - 1, int(len(lags) * 0.99))], 2),
        "cutover_command_median_s": round(statistics.median(commands), 2),
        "soak": soaked,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    r = results
    print(f"change path, {r['consumers']} consumers, {r['changes']} updates of {r['documents']} flat users:")
    for number, one in enumerate(r["rounds"], 1):
        print(f"  round {number}: written by MongoDB clients in {one['write_seconds']} s; published by the "
              f"producer within {one['publish_seconds']} s of the first write")
        print(f"    applied in {one['apply_seconds']} s: {one['applied_per_s']} changes/s "
              f"(psql \\copy of as many rows: {one['psql_copy_seconds']} s, {one['copy_rows_per_s']} rows/s; "
              f"ratio {one['ratio_to_psql_copy']}); first to last change batch's transaction: "
              f"{one['landing_span_seconds']} s")
    print(f"  lag at {r['lag_rate_achieved']} writes/s (target {r['lag_rate_target']}): median "
          f"{r['lag_median_s']} s, max {r['lag_max_s']} s over {r['lag_samples']} cutovers "
          f"(each cutover's own wait, polled every 50 ms; the whole command: median "
          f"{r['cutover_command_median_s']} s)")
    print(f"  aim: changes at >= 0.25x psql \\copy's rows/s (median of {len(r['ratios'])} round(s): "
          f"{', '.join(str(x) for x in r['ratios'])}): {r['ratio_to_psql_copy']}x, "
          f"{'met' if r['ratio_to_psql_copy'] >= 0.25 else 'not met'}")
    if r["lag_rate_target"] >= 10000:
        print(f"  aim: lag p99 < 1 s at 10,000 writes/s: {r['lag_p99_s']} s at {r['lag_rate_achieved']} writes/s, "
              f"{'met' if r['lag_p99_s'] < 1 and r['lag_rate_achieved'] >= 9500 else 'not met'}")
    else:
        print(f"  aim: lag p99 < 1 s at 10,000 writes/s: not measured (--rate {r['lag_rate_target']}; "
              f"p99 {r['lag_p99_s']} s at this rate)")
    if soaked:
        print(f"  soak: {soaked['seconds']} s at {soaked['rate_achieved']} writes/s (target {soaked['rate_target']}), "
              f"caught up {soaked['cutover_after_s']} s after; RSS, median of the first and last tenth, and peak:")
        for name, rss in soaked["rss"].items():
            print(f"    {name}: {rss['first_mb']} MB -> {rss['last_mb']} MB (peak {rss['peak_mb']} MB, "
                  f"{rss['samples']} samples)")
    for chart in charts:
        print(f"chart: {chart}")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
