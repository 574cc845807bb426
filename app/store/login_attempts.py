"""Failed logins, one document per failure and key (email or client address), kept for the limit's window.

The limit is counted here rather than in memory so that every web process behind the proxy sees the same
failures; a TTL index removes them once they no longer count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pymongo import DESCENDING

from app.domain.collections import LOGIN_ATTEMPTS as LOGIN_ATTEMPTS
from app.store.client import Database


async def record_failures(db: Database, keys: Sequence[str], now: datetime, keep: timedelta) -> None:
    """Record one failed login under each key, kept for `keep`."""
    if keys:
        await db[LOGIN_ATTEMPTS].insert_many([{"key": key, "at": now, "expires_at": now + keep} for key in keys])


async def recent_failures(db: Database, key: str, now: datetime, window: timedelta, most: int) -> list[datetime]:
    """The times of the `most` latest failures under `key` within `window` before `now`, newest first."""
    query = {"key": key, "at": {"$gt": now - window, "$lte": now}}
    cursor = db[LOGIN_ATTEMPTS].find(query, projection={"at": 1}).sort("at", DESCENDING).limit(most)
    return [doc["at"] async for doc in cursor]


async def clear(db: Database, key: str) -> None:
    """Forget the failures under `key` (after a successful login with that email)."""
    await db[LOGIN_ATTEMPTS].delete_many({"key": key})
