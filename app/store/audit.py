"""The audit log: one document per action through the API, the dashboard or the admin commands.

Entries are never changed. They are read newest first, a page at a time, with the last `_id` seen as the
cursor (ObjectIds grow with time, so `_id` order is insertion order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import DESCENDING

from app.domain.collections import AUDIT as AUDIT
from app.store.client import Database

MAX_PAGE = 500


@dataclass(frozen=True)
class Actor:
    """Who acted: an API token, a dashboard user, or an operator at the command line (`cli`, the OS user)."""

    kind: str  # "token" | "user" | "cli" | "anonymous"
    id: str
    name: str
    role: str | None = None


@dataclass(frozen=True)
class Entry:
    """One audit document: who, what, on what, with what outcome, when and from where."""

    actor: Actor
    action: str
    target: dict[str, str]
    outcome: str
    at: datetime
    client_address: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] | None = None


class BadCursor(ValueError):
    """A pagination cursor that is not one this log handed out."""

    def __init__(self, cursor: str) -> None:
        super().__init__(f"cursor {cursor!r} is not valid: pass the next_cursor of the previous page, or none")


def _document(entry: Entry) -> dict[str, Any]:
    actor = {"kind": entry.actor.kind, "id": entry.actor.id, "name": entry.actor.name, "role": entry.actor.role}
    return {
        "_id": ObjectId(),
        "at": entry.at,
        "actor": actor,
        "action": entry.action,
        "target": dict(entry.target),
        "outcome": entry.outcome,
        "client": {"address": entry.client_address, "user_agent": entry.user_agent},
        "details": dict(entry.details or {}),
    }


async def record(db: Database, entry: Entry) -> str:
    """Write one entry; its id."""
    doc = _document(entry)
    await db[AUDIT].insert_one(doc)
    return str(doc["_id"])


def cursor_id(cursor: str | None) -> ObjectId | None:
    """The `_id` a cursor stands for; BadCursor when it is not one."""
    if cursor is None:
        return None
    try:
        return ObjectId(cursor)
    except (InvalidId, TypeError):
        raise BadCursor(cursor) from None


async def list_entries(
    db: Database,
    *,
    limit: int,
    actor: str | None = None,
    action: str | None = None,
    before: str | None = None,
) -> list[dict[str, Any]]:
    """Entries newest first, at most `limit` (capped at MAX_PAGE); `actor` matches the actor's id or name,
    `action` the action exactly, `before` is the id of the last entry of the previous page."""
    query: dict[str, Any] = {}
    if actor is not None:
        query["$or"] = [{"actor.id": actor}, {"actor.name": actor}]
    if action is not None:
        query["action"] = action
    last = cursor_id(before)
    if last is not None:
        query["_id"] = {"$lt": last}
    cursor = db[AUDIT].find(query).sort("_id", DESCENDING).limit(max(1, min(limit, MAX_PAGE)))
    return [doc async for doc in cursor]


def entry_json(doc: dict[str, Any]) -> dict[str, Any]:
    """An audit document as --json and the API show it."""
    return {
        "id": str(doc["_id"]),
        "at": doc["at"].isoformat(),
        "actor": doc.get("actor", {}),
        "action": doc.get("action"),
        "target": doc.get("target", {}),
        "outcome": doc.get("outcome"),
        "client": doc.get("client", {}),
        "details": doc.get("details", {}),
    }
