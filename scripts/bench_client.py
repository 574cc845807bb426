"""What one database command costs the client: PyMongo's process CPU per command, by shape, async and sync.

    .venv/bin/python scripts/bench_client.py [--commands 1000] [--disk]

Starts its own SecantusDB on 127.0.0.1 (`:memory:` unless `--disk`) and sends, one at a time, the shapes of
command a dispatcher's batch of 20 sends: a lookup by `_id`, a single update, an `update_many` over 20
documents, a `bulk_write` of 20 single-document updates, an `insert_many` of 20, a read of 20 documents, and a
`ping`. Each figure is this process's CPU per command (the server's CPU is not counted), so it is the part of
the dispatcher's CPU per email that no change in Outbound's own code can remove. Figures go to
docs/PERFORMANCE.md ("What limits the missed targets").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench_common import start_database
from pymongo import AsyncMongoClient, MongoClient, UpdateOne

BATCH = 20
WARM_UP = 50


def _doc(number: int) -> dict[str, Any]:
    return {"_id": number, "v": 0, "email": f"lead{number}@acme.example", "state": "sending", "note": "x" * 200}


async def _async_figures(uri: str, commands: int) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    coll = client.bench_client.async_docs
    await coll.insert_many([_doc(n) for n in range(BATCH)])
    ids = list(range(BATCH))
    inserted = iter(range(10_000_000))

    async def insert_twenty() -> None:
        await coll.insert_many([_doc(BATCH + next(inserted)) for _ in range(BATCH)])

    shapes: dict[str, Callable[[], Awaitable[Any]]] = {
        "find_one by _id": lambda: coll.find_one({"_id": 1}),
        "update_one": lambda: coll.update_one({"_id": 1}, {"$inc": {"v": 1}}),
        "update_many of 20": lambda: coll.update_many({"_id": {"$in": ids}}, {"$inc": {"v": 1}}),
        "bulk_write of 20 updates": lambda: coll.bulk_write(
            [UpdateOne({"_id": n}, {"$inc": {"v": 1}}) for n in ids], ordered=False
        ),
        "insert_many of 20": insert_twenty,
        "find 20 documents": lambda: coll.find({"_id": {"$in": ids}}).to_list(),
        "ping": lambda: client.admin.command("ping"),
    }
    figures: dict[str, float] = {}
    try:
        for name, command in shapes.items():
            for _ in range(WARM_UP):
                await command()
            started = time.process_time()
            for _ in range(commands):
                await command()
            figures[f"async {name}"] = 1e6 * (time.process_time() - started) / commands
    finally:
        await client.close()
    return figures


def _sync_figures(uri: str, commands: int) -> dict[str, float]:
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    coll = client.bench_client.sync_docs
    coll.insert_many([_doc(n) for n in range(BATCH)])
    shapes: dict[str, Callable[[], Any]] = {
        "find_one by _id": lambda: coll.find_one({"_id": 1}),
        "update_one": lambda: coll.update_one({"_id": 1}, {"$inc": {"v": 1}}),
        "ping": lambda: client.admin.command("ping"),
    }
    figures: dict[str, float] = {}
    try:
        for name, command in shapes.items():
            for _ in range(WARM_UP):
                command()
            started = time.process_time()
            for _ in range(commands):
                command()
            figures[f"sync {name}"] = 1e6 * (time.process_time() - started) / commands
    finally:
        client.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=1000, help="commands timed per shape (default 1000)")
    parser.add_argument("--disk", action="store_true", help="a WiredTiger directory instead of :memory:")
    args = parser.parse_args(argv)
    if args.commands < 1:
        parser.error("--commands must be at least 1")
    with tempfile.TemporaryDirectory(prefix="outbound-bench-client-") as workdir:
        server = start_database(Path(workdir), in_memory=not args.disk)
        try:
            figures = asyncio.run(_async_figures(server.uri, args.commands))
            figures.update(_sync_figures(server.uri, args.commands))
        finally:
            server.stop()
    print(f"Client CPU per database command, {args.commands} of each (microseconds, this process only)")
    for name, value in figures.items():
        print(f"  {name:34s} {value:8.1f}")
    print(json.dumps({"commands": args.commands, "figures": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
