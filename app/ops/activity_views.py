"""Recent activities (sent, failed, replied, bounced, ...) of campaigns and accounts, newest first, a page at a
time; and the failed recipients with their errors.

Pages follow (`created_at`, `_id`) downwards, so an activity recorded while someone pages appears on no page
they have not reached yet and none is listed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from app.store import schema
from app.store.client import Database
from app.store.documents import id_filter

MAX_LIMIT = 200
FAILED = "failed"
ACTIVITY_FIELDS = (
    "campaign_id",
    "lead_id",
    "account_id",
    "step_order",
    "recipient_index",
    "email",
    "type",
    "message_id",
    "smtp_code",
    "error",
    "variant",
    "source",
    "note",
    "created_at",
)


@dataclass(frozen=True)
class ActivityFilter:
    """Which activities: of one campaign, one account, some types, since a time (each None: any)."""

    campaign_id: str | None = None
    account_id: str | None = None
    types: tuple[str, ...] = ()
    since: datetime | None = None


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last activity's `created_at` and `_id`."""

    created_at: datetime
    id: ObjectId


@dataclass(frozen=True)
class ActivityPage:
    """One page of activities (each cut down to ACTIVITY_FIELDS plus `id`) and where the next one starts."""

    items: tuple[dict[str, Any], ...]
    next: Position | None


def activity_query(which: ActivityFilter, before: Position | None) -> dict[str, Any]:
    """The activities matching `which` that come after `before` in newest-first order."""
    parts: list[dict[str, Any]] = []
    if which.campaign_id is not None:
        parts.append(id_filter(which.campaign_id, "campaign_id"))
    if which.account_id is not None:
        parts.append(id_filter(which.account_id, "account_id"))
    if which.types:
        parts.append({"type": which.types[0]} if len(which.types) == 1 else {"type": {"$in": list(which.types)}})
    if which.since is not None:
        parts.append({"created_at": {"$gte": which.since}})
    if before is not None:
        parts.append(
            {
                "$or": [
                    {"created_at": {"$lt": before.created_at}},
                    {"created_at": before.created_at, "_id": {"$lt": before.id}},
                ]
            }
        )
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _item(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(doc["_id"]), **{name: doc.get(name) for name in ACTIVITY_FIELDS}}


async def list_activities(db: Database, which: ActivityFilter, *, before: Position | None, limit: int) -> ActivityPage:
    """Up to `limit` (1 to MAX_LIMIT) activities matching `which`, newest first, after `before`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    cursor = db[schema.ACTIVITIES].find(
        activity_query(which, before), sort=[("created_at", -1), ("_id", -1)], limit=limit + 1
    )
    docs = [doc async for doc in cursor]
    page = docs[:limit]
    last = page[-1] if page and len(docs) > limit else None
    position = None
    if last is not None and isinstance(last.get("created_at"), datetime) and isinstance(last["_id"], ObjectId):
        position = Position(last["created_at"], last["_id"])
    return ActivityPage(tuple(_item(doc) for doc in page), position)
