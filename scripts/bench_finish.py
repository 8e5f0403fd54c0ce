#!/usr/bin/env python3
"""`mongo2pg finish` against the same statements run by hand in psql, in one run.

The orders of `mongo2pg seed --shape orders` (1 to 5 lines each) get four MongoDB
indexes (`{userId: 1, createdAt: -1}`, `{status: 1}` partial on paid orders,
`{createdAt: 1}`, and the multikey `{items.productId: 1}`), are migrated with typed
order lines, then:
  1. `mongo2pg finish --jobs J` builds the indexes (CONCURRENTLY, tables in parallel);
  2. they are dropped, and the statements `finish --plan` prints are run by `psql`,
     one after another, as a person would;
and the figure is psql's time over finish's.

  scripts/bench.sh --finish --docs 1000000 --jobs 2
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

ROOT = bench.ROOT

MAPPING = """[collections.{collection}]
table = "{table}"
json = "relaxed"
columns = [
  {{ name = "id", path = "_id", type = "text" }},
  {{ name = "user_id", path = "userId", type = "text" }},
  {{ name = "created_at", path = "createdAt", type = "timestamptz" }},
  {{ name = "status", path = "status", type = "text" }},
]
children = [ {{ path = "items", table = "{table}_items", columns = [
  {{ name = "product_id", path = "productId", type = "text" }},
  {{ name = "qty", path = "qty", type = "int4" }},
  {{ name = "price", path = "price", type = "numeric" }},
] }} ]
"""


def mongo_indexes(uri, database, collection):
    sys.path.insert(0, os.path.join(os.environ.get("MONGO2PG_HOME", os.path.expanduser("~/.cache/mongo2pg")), "mongodb"))
    from pymongo import MongoClient  # installed by scripts/services.sh

    client = MongoClient(uri)
    try:
        c = client[database][collection]
        c.create_index([("userId", 1), ("createdAt", -1)])
        c.create_index([("status", 1)], partialFilterExpression={"status": "paid"})
        c.create_index([("createdAt", 1)])
        c.create_index([("items.productId", 1)])
    finally:
        client.close()


def timed(args, env, what):
    start = time.time()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        bench.die(f"{what} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return time.time() - start, done.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    bench.add_target_args(parser)
    args = parser.parse_args()

    env = bench.target_env(args)
    db_url = env["DATABASE_URL"]

    collection = f"bench_orders_{args.docs}"
    bench.seed(args, env, collection, "orders", args.docs)
    mongo_indexes(env["MONGODB_URI"], env["MONGODB_DATABASE"], collection)

    table = f"{collection}_finish"
    bench.psql(db_url, f'DROP TABLE IF EXISTS "{table}", "{table}_items", _migrate_ledger, _migrate_rejects, '
                       "_migrate_dead_letters, _migrate_versions, _migrate_finish")
    mapping = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    mapping.write(MAPPING.format(collection=collection, table=table))
    mapping.close()
    run = f"bench-finish-{int(time.time() * 1000)}"
    run_env = dict(env, MIGRATION_RUN=run, RUST_LOG="warn")
    consumers = [bench.Proc(f"consumer {i}", [f"{args.bin_dir}/consumer", "run", "--exit-when-done", "--mapping",
                                              mapping.name], run_env) for i in range(args.consumers)]
    bench.Proc("producer", [f"{args.bin_dir}/producer", "run", "--collection", collection], run_env).wait()
    for c in consumers:
        c.wait()

    finish = [f"{args.bin_dir}/mongo2pg", "finish", "--mapping", mapping.name]
    _, plan = timed(finish + ["--plan"], run_env, "finish --plan")
    statements = [line.rstrip(";") for line in plan.splitlines() if line.startswith("CREATE ")]
    if len(statements) != 4:
        bench.die(f"expected 4 indexes, finish plans {len(statements)}:\n{plan}")
    ours, report = timed(finish + ["--jobs", str(args.jobs)], run_env, "finish")
    names = bench.psql(db_url, f"SELECT string_agg(quote_ident(indexname), ', ') FROM pg_indexes "
                               f"WHERE tablename IN ('{table}', '{table}_items') AND indexname NOT LIKE '%_pkey'")
    if names.count(",") != 3:
        bench.die(f"finish built {names}:\n{report}")
    bench.psql(db_url, f"DROP INDEX {names}")
    by_hand = time.time()
    for statement in statements:
        bench.psql(db_url, statement)
    by_hand = time.time() - by_hand
    os.unlink(mapping.name)

    m = bench.machine()
    print(f"machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}, Linux {m['kernel']}")
    print(f"orders: {args.docs}, 4 indexes on 2 tables (orders and their lines)")
    print(f"mongo2pg finish --jobs {args.jobs}: {ours:.2f} s")
    print(f"psql, the same statements one after another: {by_hand:.2f} s")
    print(f"psql / finish: {by_hand / ours:.2f}")


if __name__ == "__main__":
    main()
