#!/usr/bin/env python3
"""Typed child tables against a jsonb child, measured in one run.

The same orders (each with 1 to 5 lines of a product reference, a quantity and a
Decimal128 price; `mongo2pg seed --shape orders`) are migrated twice per round by the
real pipeline: once with the lines as a jsonb child table (`order_items(_parent,
_position, value jsonb)`), once as a typed child table (`product_id text, qty int4,
price numeric`, the product a reference). Rounds alternate the two; the figure is the
median typed time over the median jsonb time. The aim: within 10% (ratio <= 1.10).

  scripts/bench.sh --relational --docs 1000000 --consumers 4 --rounds 3
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

ROOT = bench.ROOT

COLUMNS = """columns = [
  { name = "id", path = "_id", type = "text" },
  { name = "user_id", path = "userId", type = "text" },
  { name = "created_at", path = "createdAt", type = "timestamptz" },
  { name = "status", path = "status", type = "text" },
]"""

CHILDREN = {
    "jsonb": '[ { path = "items", table = "{table}_items", type = "jsonb" } ]',
    "typed": """[ { path = "items", table = "{table}_items", columns = [
    { name = "product_id", path = "productId", type = "text", references = "products", required = true },
    { name = "qty", path = "qty", type = "int4", required = true },
    { name = "price", path = "price", type = "numeric", required = true },
  ] } ]""",
}


def migrate(kind, collection, args, env):
    table = f"{collection}_{kind}"
    db_url = env["DATABASE_URL"]
    bench.psql(db_url, f'DROP TABLE IF EXISTS "{table}", "{table}_items", _migrate_ledger, _migrate_rejects, '
                       "_migrate_dead_letters, _migrate_versions")
    children = CHILDREN[kind].replace("{table}", table)
    mapping = (f'[collections.{collection}]\ntable = "{table}"\njson = "relaxed"\n{COLUMNS}\n'
               f'children = {children}\n')
    _, seconds, peak = bench.migrate_mapped(args, env, collection, mapping, kind)
    rows = int(bench.psql(db_url, f'SELECT count(*) FROM "{table}"'))
    lines = int(bench.psql(db_url, f'SELECT count(*) FROM "{table}_items"'))
    rejects = int(bench.psql(db_url, "SELECT count(*) FROM _migrate_rejects"))
    if rows != args.docs or rejects:
        bench.die(f"{kind}: {rows} orders landed for {args.docs}, {rejects} rejects")
    return {"seconds": seconds, "lines": lines, "consumer_peak_rss_mib": peak}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    bench.add_target_args(parser)
    args = parser.parse_args()

    env = bench.target_env(args)

    collection = f"bench_orders_{args.docs}"
    bench.seed(args, env, collection, "orders", args.docs)
    runs = {"jsonb": [], "typed": []}
    for _ in range(args.rounds):
        for kind in ("jsonb", "typed"):
            runs[kind].append(migrate(kind, collection, args, env))
    if runs["jsonb"][0]["lines"] != runs["typed"][0]["lines"]:
        bench.die(f"{runs['jsonb'][0]['lines']} jsonb lines, {runs['typed'][0]['lines']} typed ones")
    jsonb = statistics.median(r["seconds"] for r in runs["jsonb"])
    typed = statistics.median(r["seconds"] for r in runs["typed"])
    ratio = typed / jsonb
    m = bench.machine()
    print(f"machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}, Linux {m['kernel']}")
    print(f"orders: {args.docs} with {runs['typed'][0]['lines']} lines, {args.consumers} consumers, "
          f"median of {args.rounds} round(s)")
    for kind, seconds in (("jsonb child", jsonb), ("typed child", typed)):
        peak = max(r["consumer_peak_rss_mib"] for r in runs[kind.split()[0]])
        print(f"{kind:<12} {seconds:8.2f} s  {args.docs / seconds:9.0f} orders/s  consumer peak {peak} MiB")
    verdict = "met" if ratio <= 1.10 else "not met"
    print(f"typed child tables / jsonb child: {ratio:.3f} (aim <= 1.10: {verdict})")


if __name__ == "__main__":
    main()
