"""What one database command costs the client: PyMongo's process CPU per command, by shape, async and sync.

    .venv/bin/python scripts/bench_client.py [--commands 1000] [--disk]

Starts its own SecantusDB on 127.0.0.1 (`:memory:` unless `--disk`) and sends, one at a time, the shapes of
command a dispatcher's batch of 20 sends: a lookup by `_id`, a single update, an `update_many` over 20
documents, a `bulk_write` of 20 single-document updates, an `insert_many` of 20, a read of 20 documents, and a
`ping`. Each shape is sent three ways: by PyMongo's asyncio client (the dispatcher's), by its synchronous
client called directly, and by the synchronous client called from an event loop through `asyncio.to_thread`
(what a store layer of threads under the asyncio dispatcher would pay). Each figure is this process's CPU per
command, every thread's (the server's CPU is not counted), so it is the part of the dispatcher's CPU per email
that no change in Outbound's own code can remove. Figures go to docs/PERFORMANCE.md ("What limits the missed
targets").
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from bench_common import start_database
from pymongo import AsyncMongoClient, MongoClient, UpdateOne

BATCH = 20
WARM_UP = 50


def _doc(number: int) -> dict[str, Any]:
    return {"_id": number, "v": 0, "email": f"lead{number}@acme.example", "state": "sending", "note": "x" * 200}


def _shapes(coll: Any, ping: Callable[[], Any], ids: list[int]) -> dict[str, Callable[[], Any]]:
    """The commands a batch sends, as calls of `coll` (an async or a sync collection: the same calls)."""
    inserted = iter(range(10_000_000))
    return {
        "find_one by _id": lambda: coll.find_one({"_id": 1}),
        "update_one": lambda: coll.update_one({"_id": 1}, {"$inc": {"v": 1}}),
        "update_many of 20": lambda: coll.update_many({"_id": {"$in": ids}}, {"$inc": {"v": 1}}),
        "bulk_write of 20 updates": lambda: coll.bulk_write(
            [UpdateOne({"_id": n}, {"$inc": {"v": 1}}) for n in ids], ordered=False
        ),
        "insert_many of 20": lambda: coll.insert_many([_doc(BATCH + next(inserted)) for _ in range(BATCH)]),
        "find 20 documents": lambda: coll.find({"_id": {"$in": ids}}).to_list(),
        "ping": ping,
    }


async def _timed(shapes: Mapping[str, Callable[[], Awaitable[Any]]], commands: int, label: str) -> dict[str, float]:
    """Process CPU (every thread's) per awaited command, microseconds, after a warm-up."""
    figures: dict[str, float] = {}
    for name, command in shapes.items():
        for _ in range(WARM_UP):
            await command()
        started = time.process_time()
        for _ in range(commands):
            await command()
        figures[f"{label} {name}"] = 1e6 * (time.process_time() - started) / commands
    return figures


async def _async_figures(uri: str, commands: int) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    coll = client.bench_client.async_docs
    await coll.insert_many([_doc(n) for n in range(BATCH)])
    try:
        shapes = _shapes(coll, lambda: client.admin.command("ping"), list(range(BATCH)))
        return await _timed(shapes, commands, "async")
    finally:
        await client.close()


async def _threaded_figures(uri: str, commands: int, label: str, threaded: bool) -> dict[str, float]:
    """The synchronous client: called directly (`threaded` False: what a synchronous program pays) or from the
    event loop through `asyncio.to_thread` (what an asyncio program would pay for a threaded store layer)."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    coll = client.bench_client[f"{label.replace(' ', '_')}_docs"]
    coll.insert_many([_doc(n) for n in range(BATCH)])
    try:
        shapes = _shapes(coll, lambda: client.admin.command("ping"), list(range(BATCH)))
        if threaded:
            calls = {name: functools.partial(asyncio.to_thread, call) for name, call in shapes.items()}
        else:
            calls = {name: functools.partial(_done, call) for name, call in shapes.items()}
        return await _timed(calls, commands, label)
    finally:
        client.close()


async def _done(call: Callable[[], Any]) -> Any:
    return call()


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
            figures.update(asyncio.run(_threaded_figures(server.uri, args.commands, "sync", threaded=False)))
            figures.update(asyncio.run(_threaded_figures(server.uri, args.commands, "sync in a thread", threaded=True)))
        finally:
            server.stop()
    print(f"Client CPU per database command, {args.commands} of each (microseconds, this process only)")
    for name, value in figures.items():
        print(f"  {name:44s} {value:8.1f}")
    print(json.dumps({"commands": args.commands, "figures": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
