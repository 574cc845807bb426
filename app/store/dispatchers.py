"""Dispatcher heartbeats (`dispatchers`): who is running, and who is gone.

One document per dispatcher process, `_id` = its owner name (the prefix of its lease and reservation tokens):
`{host, pid, started_at, beat_at, beat_seconds, stopped_at}`. The liveness rule itself is pure
(`app/domain/liveness.py`); this module only reads and writes the documents, always by `_id`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from app.domain.liveness import is_gone
from app.store.documents import Collection as MongoCollection


async def beat(coll: MongoCollection, owner: str, now: datetime, *, beat_seconds: float, host: str, pid: int) -> None:
    """Record that `owner` is alive at `now` and beats every `beat_seconds` (the first beat creates it)."""
    await coll.update_one(
        {"_id": owner},
        {
            "$set": {"beat_at": now, "beat_seconds": beat_seconds},
            "$setOnInsert": {"host": host, "pid": pid, "started_at": now},
        },
        upsert=True,
    )


# Reclaims look at today's and yesterday's reservations only: a heartbeat older than this answers for nothing.
KEEP = timedelta(days=2)


async def prune(coll: MongoCollection, now: datetime, keep: timedelta = KEEP) -> int:
    """Forget dispatchers that last beat more than `keep` ago (one document per process start adds up)."""
    result = await coll.delete_many({"beat_at": {"$lt": now - keep}})
    return result.deleted_count


async def stopped(coll: MongoCollection, owner: str, now: datetime) -> None:
    """Record that `owner` exited cleanly: what it still holds may be returned at once."""
    await coll.update_one({"_id": owner}, {"$set": {"stopped_at": now, "beat_at": now}})


async def gone(coll: MongoCollection, owners: Collection[str], now: datetime, *, beat_seconds: float) -> set[str]:
    """The `owners` that stopped or stopped beating, in one query by `_id`.

    Each is judged by its own beat interval when it recorded one (dispatchers may run with different leases),
    else by `beat_seconds`. Owners without a heartbeat document are not gone: nothing says they died.
    """
    if not owners:
        return set()
    found: set[str] = set()
    async for doc in coll.find(
        {"_id": {"$in": sorted(owners)}}, projection={"beat_at": 1, "stopped_at": 1, "beat_seconds": 1}
    ):
        interval = doc.get("beat_seconds")
        own = float(interval) if isinstance(interval, int | float) and interval > 0 else beat_seconds
        beat_at, stopped_at = doc.get("beat_at"), doc.get("stopped_at")
        if is_gone(
            beat_at if isinstance(beat_at, datetime) else None,
            stopped_at if isinstance(stopped_at, datetime) else None,
            now,
            own,
        ):
            found.add(str(doc["_id"]))
    return found
