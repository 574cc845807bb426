"""Dispatcher heartbeats (`dispatchers`): who is running, and who is gone.

One document per dispatcher process, `_id` = its owner name (the prefix of its lease and reservation tokens):
`{host, pid, version, started_at, beat_at, beat_seconds, leads_in_flight, last_error: {message, at},
stopped_at}`. The liveness rule itself is pure (`app/domain/liveness.py`); this module only reads and writes the
documents, always by `_id` (or all of them, for `/ready` and `outbound status`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from app.domain.collections import DISPATCHERS
from app.domain.liveness import is_gone
from app.domain.readiness import Heartbeat, Readiness, judge
from app.store.client import Database
from app.store.documents import Collection as MongoCollection


@dataclass(frozen=True)
class LastError:
    """The last database or pass error a dispatcher logged, and when."""

    message: str
    at: datetime


async def beat(
    coll: MongoCollection,
    owner: str,
    now: datetime,
    *,
    beat_seconds: float,
    host: str,
    pid: int,
    version: str | None = None,
    leads_in_flight: int = 0,
    last_error: LastError | None = None,
) -> None:
    """Record that `owner` is alive at `now`, beats every `beat_seconds` and works on `leads_in_flight` claimed
    leads, with its last error; one write (the first beat creates the document)."""
    fields: dict[str, Any] = {"beat_at": now, "beat_seconds": beat_seconds, "leads_in_flight": leads_in_flight}
    if last_error is not None:
        fields["last_error"] = {"message": last_error.message, "at": last_error.at}
    await coll.update_one(
        {"_id": owner},
        {"$set": fields, "$setOnInsert": {"host": host, "pid": pid, "version": version, "started_at": now}},
        upsert=True,
    )


def _typed(doc: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(name)
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def heartbeat_of(doc: dict[str, Any]) -> Heartbeat:
    """A heartbeat document as the pure readiness rules see it; malformed fields read as missing."""
    error = doc.get("last_error")
    error = error if isinstance(error, dict) else {}
    interval = _typed(doc, "beat_seconds", (int, float))
    return Heartbeat(
        owner=str(doc["_id"]),
        host=_typed(doc, "host", str),
        pid=_typed(doc, "pid", int),
        version=_typed(doc, "version", str),
        started_at=_typed(doc, "started_at", datetime),
        beat_at=_typed(doc, "beat_at", datetime),
        beat_seconds=float(interval) if interval is not None else None,
        stopped_at=_typed(doc, "stopped_at", datetime),
        leads_in_flight=_typed(doc, "leads_in_flight", int),
        last_error=_typed(error, "message", str),
        last_error_at=_typed(error, "at", datetime),
    )


async def heartbeats(coll: MongoCollection) -> list[Heartbeat]:
    """Every dispatcher's heartbeat (pruned after `KEEP`, so there are few)."""
    return [heartbeat_of(doc) async for doc in coll.find({})]


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


async def readiness(db: Database, now: datetime) -> Readiness:
    """Ping the database and judge the heartbeats at `now` (`GET /ready`, `outbound status`). Only reads."""
    try:
        await db.command("ping")
        found = await heartbeats(db[DISPATCHERS])
    except PyMongoError:
        return judge(None, now)
    return judge(found, now)
