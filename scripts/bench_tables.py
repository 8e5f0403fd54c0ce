#!/usr/bin/env python3
"""A run of several collections against `psql \\copy` of the same rows, measured in one run.

COLLECTIONS collections of flat users (`mongo2pg seed --shape flat`), of DOCS documents
in all, their sizes 1 to COLLECTIONS in proportion (a database's collections differ),
are migrated by the real pipeline in one run (one producer, `--consumers` consumers,
each with `--exit-when-done`), to the last consumer's exit. Then the same rows are
copied table after table by `psql \\copy` into identical tables with their keys, as a
one-job restore would. Printed per round: the run's seconds, the ratio, the tail
after the last batch's transaction (the keys still to build and the exit), and how
many of the tables' keys were built before that last batch, while others loaded.

  scripts/bench.sh --tables --docs 2000000 --collections 8 --consumers 4 --rounds 3
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def sizes(docs, collections):
    """DOCS split over the collections in proportion 1 : 2 : … : COLLECTIONS."""
    weights = range(1, collections + 1)
    counts = [docs * w // sum(weights) for w in weights]
    counts[-1] += docs - sum(counts)
    return counts


def migrate(args, env, names):
    """One run of every collection; its seconds, tail and keys built early."""
    db_url = env["DATABASE_URL"]
    tables = ", ".join(f'"{n}"' for n in names)
    bench.psql(db_url, f"DROP TABLE IF EXISTS {tables}, _migrate_ledger, _migrate_rejects, "
                       "_migrate_dead_letters, _migrate_keys")
    mapping = "".join(f'[collections.{n}]\ncolumns = [\n' +
                      ",\n".join(f'  {{ name = "{c}", path = "{p}", type = "{t}" }}'
                                 for c, p, t in bench.MAPPINGS["flat"]) + "\n]\n" for n in names)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as file:
        file.write(mapping)
    run = f"bench-tables-{int(time.time() * 1000)}"
    run_env = dict(env, MIGRATION_RUN=run, RUST_LOG="warn")
    start = time.time()
    consumers = [bench.Proc(f"consumer {i}", [f"{args.bin_dir}/consumer", "run", "--exit-when-done",
                                              "--mapping", file.name], run_env)
                 for i in range(args.consumers)]
    producer = bench.Proc("producer", [f"{args.bin_dir}/producer", "run", "--collection", ",".join(names)],
                          run_env)
    producer.wait()
    for consumer in consumers:
        consumer.wait()
    end = time.time()
    os.unlink(file.name)
    last_batch = float(bench.psql(db_url, "SELECT extract(epoch FROM max(committed_at)) FROM _migrate_ledger "
                                          f"WHERE run = '{run}'"))
    early = int(bench.psql(db_url, "SELECT count(*) FROM _migrate_keys WHERE state = 'built' AND "
                                   f"run = '{run}' AND built_at < to_timestamp({last_batch})"))
    built = int(bench.psql(db_url, f"SELECT count(*) FROM _migrate_keys WHERE state = 'built' AND run = '{run}'"))
    if built != len(names):
        bench.die(f"{built} keys built for {len(names)} tables")
    rows = sum(int(bench.psql(db_url, f'SELECT count(*) FROM "{n}"')) for n in names)
    if rows != args.docs:
        bench.die(f"{rows} rows landed for {args.docs} documents")
    return {"seconds": round(end - start, 3), "tail_seconds": round(end - last_batch, 3),
            "keys_built_before_last_batch": early}


def copy_all(env, names):
    """`psql \\copy` of every table's rows, one table after the other, into a fresh
    table with its key: the seconds of the copies alone."""
    db_url = env["DATABASE_URL"]
    seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        for name in names:
            rows = os.path.join(tmp, f"{name}.copy")
            _, key, _ = bench.primary_key(db_url, name)
            bench.psql(db_url, f"\\copy (SELECT * FROM \"{name}\" ORDER BY \"{key}\") TO '{rows}'")
            bench.psql(db_url, f'DROP TABLE IF EXISTS "{name}_copy"',
                       f'CREATE TABLE "{name}_copy" (LIKE "{name}" INCLUDING ALL)')
            start = time.time()
            bench.psql(db_url, f"\\copy \"{name}_copy\" FROM '{rows}'")
            seconds += time.time() - start
            bench.psql(db_url, f'DROP TABLE "{name}_copy"')
    return round(seconds, 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2_000_000)
    parser.add_argument("--collections", type=int, default=8)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    bench.add_target_args(parser)
    args = parser.parse_args()
    env = bench.target_env(args)

    names = []
    for i, count in enumerate(sizes(args.docs, args.collections)):
        name = f"bench_tables_{args.docs}_{i}"
        bench.seed(args, env, name, "flat", count)
        names.append(name)
    rounds = []
    for _ in range(args.rounds):
        run = migrate(args, env, names)
        run["psql_copy_seconds"] = copy_all(env, names)
        run["ratio_to_psql_copy"] = round(run["psql_copy_seconds"] / run["seconds"], 3)
        rounds.append(run)

    m = bench.machine()
    print(f"machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}, Linux {m['kernel']}")
    print(f"{args.docs} flat users in {args.collections} collections, {args.consumers} consumers")
    print(f"{'round':>5} {'seconds':>8} {'psql s':>7} {'ratio':>6} {'tail s':>7}  keys built before the last batch")
    for i, r in enumerate(rounds, 1):
        print(f"{i:>5} {r['seconds']:8.2f} {r['psql_copy_seconds']:7.2f} {r['ratio_to_psql_copy']:6.3f} "
              f"{r['tail_seconds']:7.2f}  {r['keys_built_before_last_batch']} of {args.collections}")
    print(f"median: ratio {statistics.median(r['ratio_to_psql_copy'] for r in rounds):.3f}, "
          f"tail {statistics.median(r['tail_seconds'] for r in rounds):.2f} s")


if __name__ == "__main__":
    main()
