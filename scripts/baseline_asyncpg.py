#!/usr/bin/env python3
"""The migration people run today, for the benchmark to measure against in the same run:
Python asyncio, pymongo's async client paging with skip/limit, asyncpg's COPY per page,
everything in one process. Flat 3-field users only.

  baseline_asyncpg.py MONGODB_URI DATABASE COLLECTION POSTGRES_URL TABLE
"""

import asyncio
import sys
import time

import asyncpg
from pymongo import AsyncMongoClient

# Pages of 10,000: with 1,000 the skips alone took over 100 s here; 10,000 matches the
# 12.8 s of paging reported for the script people run today, the kinder comparison.
PAGE = 10_000


async def main(mongodb_uri, database, collection, postgres_url, table):
    mongo = AsyncMongoClient(mongodb_uri)
    source = mongo[database][collection]
    pg = await asyncpg.connect(postgres_url)
    await pg.execute(f'DROP TABLE IF EXISTS "{table}"')
    await pg.execute(f'CREATE TABLE "{table}" (id text PRIMARY KEY, username text, email text, age int4)')
    start = time.time()
    skip = 0
    while True:
        docs = await source.find({}).sort("_id", 1).skip(skip).limit(PAGE).to_list(PAGE)
        if not docs:
            break
        records = [(str(d["_id"]), d.get("username"), d.get("email"), d.get("age")) for d in docs]
        await pg.copy_records_to_table(table, records=records, columns=["id", "username", "email", "age"])
        skip += len(docs)
    seconds = time.time() - start
    count = await pg.fetchval(f'SELECT count(*) FROM "{table}"')
    await pg.execute(f'DROP TABLE "{table}"')
    await pg.close()
    await mongo.close()
    print(f"baseline: {count} rows in {seconds:.3f} s")


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    asyncio.run(main(*sys.argv[1:]))
