"""Failed logins, one document per failure and key (email or client address), kept for the limit's window.

The limit is counted here rather than in memory so that every web process behind the proxy sees the same
failures; a TTL index removes them once they no longer count. An attempt is recorded before its password is
checked (`reserve`) and counts the others recorded before it: however many arrive at once, no more than the
limit are checked. One that is refused, or whose password was right, is taken back (`take_back`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING

from app.domain.collections import LOGIN_ATTEMPTS as LOGIN_ATTEMPTS
from app.store.client import Database


async def reserve(db: Database, keys: Sequence[str], now: datetime, keep: timedelta) -> list[ObjectId]:
    """Record an attempt under each key before its password is checked, counted as a failure until taken back;
    the ids of its records."""
    ids = [ObjectId() for _ in keys]
    if ids:
        docs = [{"_id": i, "key": key, "at": now, "expires_at": now + keep} for i, key in zip(ids, keys, strict=True)]
        await db[LOGIN_ATTEMPTS].insert_many(docs)
    return ids


async def take_back(db: Database, ids: Sequence[ObjectId]) -> None:
    """Remove an attempt's records: it was refused before its password was checked, or the password was right."""
    if ids:
        await db[LOGIN_ATTEMPTS].delete_many({"_id": {"$in": list(ids)}})


async def recent_failures(
    db: Database, key: str, now: datetime, window: timedelta, most: int, exclude: Sequence[ObjectId] = ()
) -> list[datetime]:
    """The times of the `most` latest failures under `key` within `window` before `now`, newest first; those
    recorded meanwhile by attempts racing this one count as `now` (another process's clock may be ahead), and
    `exclude` (this attempt's own records) not at all."""
    query: dict[str, Any] = {"key": key, "at": {"$gt": now - window}}
    if exclude:
        query["_id"] = {"$nin": list(exclude)}
    cursor = db[LOGIN_ATTEMPTS].find(query, projection={"at": 1}).sort("at", DESCENDING).limit(most)
    return [min(doc["at"], now) async for doc in cursor]


async def clear(db: Database, key: str) -> None:
    """Forget the failures under `key` (after a successful login with that email)."""
    await db[LOGIN_ATTEMPTS].delete_many({"key": key})
