#!/usr/bin/env python3
"""Field transforms against the same run untransformed, measured in one run.

The same users (`mongo2pg seed --shape users`) are migrated twice per round by the real
pipeline, with one mapping of typed columns: once as they are, once with three
transformed columns, `email` hashed (HMAC-SHA-256), `username` and `address.street`
encrypted (AES-256-GCM, a fresh nonce per value). Rounds alternate the two; the figure
is the median transformed time over the median plain time. The aim: within 10%
(ratio <= 1.10).

  scripts/bench.sh --transforms --docs 1000000 --consumers 4 --rounds 3
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

# A throwaway key: the benchmark's, never a real one.
KEY = "11" * 32

COLUMNS = {
    "plain": """columns = [
  { name = "id", path = "_id", type = "text" },
  { name = "email", path = "email", type = "text" },
  { name = "username", path = "username", type = "text" },
  { name = "street", path = "address.street", type = "text" },
  { name = "age", path = "age", type = "int4" },
]""",
    "transformed": """columns = [
  { name = "id", path = "_id", type = "text" },
  { name = "email", path = "email", type = "text", transform = { kind = "hash", key = "pii" } },
  { name = "username", path = "username", type = "bytea", transform = { kind = "encrypt", key = "pii" } },
  { name = "street", path = "address.street", type = "bytea", transform = { kind = "encrypt", key = "pii" } },
  { name = "age", path = "age", type = "int4" },
]""",
}


def migrate(kind, collection, args, env):
    table = f"{collection}_{kind}"
    db_url = env["DATABASE_URL"]
    bench.psql(db_url, f'DROP TABLE IF EXISTS "{table}", _migrate_ledger, _migrate_rejects, '
                       "_migrate_dead_letters, _migrate_versions")
    mapping = (f'[keys]\npii = {{ env = "BENCH_PII_KEY" }}\n\n'
               f'[collections.{collection}]\ntable = "{table}"\n{COLUMNS[kind]}\n')
    _, seconds, peak = bench.migrate_mapped(args, env, collection, mapping, kind, {"BENCH_PII_KEY": KEY})
    rows = int(bench.psql(db_url, f'SELECT count(*) FROM "{table}"'))
    rejects = int(bench.psql(db_url, "SELECT count(*) FROM _migrate_rejects"))
    if rows != args.docs or rejects:
        bench.die(f"{kind}: {rows} users landed for {args.docs}, {rejects} rejects")
    if kind == "transformed":
        # The hash is 64 hex digits, the ciphertexts nonce + text + tag.
        shape = bench.psql(db_url, f'SELECT bool_and(length(email) = 64 AND length(username) > 28 '
                                   f'AND length(street) > 28) FROM "{table}"')
        if shape != "t":
            bench.die("transformed values are not digests and ciphertexts")
    return {"seconds": seconds, "consumer_peak_rss_mib": peak}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--consumers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    bench.add_target_args(parser)
    args = parser.parse_args()

    env = bench.target_env(args)
    collection = f"bench_users_{args.docs}"
    bench.seed(args, env, collection, "users", args.docs)
    runs = {"plain": [], "transformed": []}
    for _ in range(args.rounds):
        for kind in ("plain", "transformed"):
            runs[kind].append(migrate(kind, collection, args, env))
    plain = statistics.median(r["seconds"] for r in runs["plain"])
    transformed = statistics.median(r["seconds"] for r in runs["transformed"])
    ratio = transformed / plain
    m = bench.machine()
    print(f"machine: {m['cores']} cores, {m['memory_gib']} GiB, {m['cpu']}, Linux {m['kernel']}")
    print(f"users: {args.docs}, {args.consumers} consumers, median of {args.rounds} round(s)")
    for kind, seconds in (("plain", plain), ("transformed", transformed)):
        peak = max(r["consumer_peak_rss_mib"] for r in runs[kind])
        print(f"{kind:<12} {seconds:8.2f} s  {args.docs / seconds:9.0f} users/s  consumer peak {peak} MiB")
    verdict = "met" if ratio <= 1.10 else "not met"
    print(f"hash + 2 x encrypt / untransformed: {ratio:.3f} (aim <= 1.10: {verdict})")


if __name__ == "__main__":
    main()
