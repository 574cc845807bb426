"""Dashboard sessions: one document per signed-in browser, keyed by a hash of the session id in its cookie.

Only the hash is stored, so a copy of the database lets nobody take over a session. `expires_at` carries a
TTL index that removes old sessions; reads check it too, since a TTL monitor runs only now and then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from app.domain.collections import SESSIONS as SESSIONS
from app.store.client import Database


@dataclass(frozen=True)
class Session:
    """A live session: whose it is and until when."""

    user_id: str
    created_at: datetime
    expires_at: datetime


def session_hash(session_id: str) -> str:
    """What is stored of a session id."""
    return hashlib.sha256(session_id.encode()).hexdigest()


async def create(db: Database, session_id: str, user_id: str, now: datetime, expires_at: datetime) -> None:
    """Store a new session of `user_id` until `expires_at`."""
    doc: dict[str, Any] = {
        "_id": ObjectId(),
        "hash": session_hash(session_id),
        "user_id": user_id,
        "created_at": now,
        "expires_at": expires_at,
    }
    await db[SESSIONS].insert_one(doc)


async def find_active(db: Database, session_id: str, now: datetime) -> Session | None:
    """The session of this id unless it has expired or was ended."""
    doc = await db[SESSIONS].find_one({"hash": session_hash(session_id), "expires_at": {"$gt": now}})
    if doc is None:
        return None
    return Session(user_id=str(doc["user_id"]), created_at=doc["created_at"], expires_at=doc["expires_at"])


async def delete(db: Database, session_id: str) -> bool:
    """End the session (sign-out); True when there was one."""
    result = await db[SESSIONS].delete_one({"hash": session_hash(session_id)})
    return result.deleted_count > 0


async def delete_for_user(db: Database, user_id: str) -> int:
    """End every session of a user (removed, or their password changed); how many there were."""
    result = await db[SESSIONS].delete_many({"user_id": user_id})
    return result.deleted_count
