"""The suppression list: addresses and domains never to be mailed, read a batch at a time, added in bulk.

Values are stored as `domain/suppression_entries.py` normalises them, which is how the send-time gate
compares a recipient's address (`gates.suppression_keys` of the address as `normalize_email` reads it).
"""

from __future__ import annotations

from collections.abc import Collection as Many
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.errors import BulkWriteError

from app.domain.gates import suppression_keys
from app.domain.suppression_entries import InvalidEntry, suppression_value
from app.store.documents import Collection

MAX_LIST = 10_000  # the most entries `list_entries` returns at once
_DUPLICATE_KEY = 11000


def _canonical(value: str) -> str | None:
    """`value` (an address or a bare domain) as the gate compares it; None when it is not a valid one."""
    try:
        return suppression_value(value if "@" in value else f"@{value}")
    except InvalidEntry:
        return None


def _lookup_keys(email: str) -> set[str]:
    keys = set(suppression_keys(email))
    canonical = _canonical(email)
    if canonical is not None:
        keys.update(suppression_keys(canonical))
    return keys


async def load(coll: Collection, emails: Many[str]) -> dict[str, str]:
    """Suppressed values (address or domain) among `emails`, with their reasons, in one query.

    Each value found is returned as stored and in its normalised form, so the gate finds it for a
    recipient's address whichever way (case, IDNA or Unicode domain) either was written.
    """
    values = sorted({key for email in emails for key in _lookup_keys(email)})
    if not values:
        return {}
    found: dict[str, str] = {}
    async for doc in coll.find({"value": {"$in": values}}, projection={"value": 1, "reason": 1}):
        value, reason = str(doc["value"]), str(doc.get("reason", "listed"))
        found[value] = reason
        found.setdefault(_canonical(value) or value, reason)
    return found


async def add(coll: Collection, entries: Sequence[tuple[str, str, str]], now: datetime) -> int:
    """Suppress values: (address or domain, reason, detail) each, in one write; an existing entry is kept as it
    is. Each value is stored normalised (one that is not valid, lower-cased). Returns how many were new."""
    if not entries:
        return 0
    ops = []
    for value, reason, detail in entries:
        stored = _canonical(value) or value.strip().lower()
        doc = {"value": stored, "reason": reason, "detail": detail, "created_at": now}
        ops.append(UpdateOne({"value": stored}, {"$setOnInsert": doc}, upsert=True))
    try:
        result = await coll.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        # Another writer inserting the same value at the same moment: it is suppressed, which is what was asked.
        if any(error.get("code") != _DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
            raise
        return int(exc.details.get("nUpserted", 0))
    return result.upserted_count


async def find(coll: Collection, values: Many[str]) -> dict[str, dict[str, Any]]:
    """The stored entries of exactly these values, by value, in one query."""
    if not values:
        return {}
    return {str(doc["value"]): doc async for doc in coll.find({"value": {"$in": sorted(values)}})}


async def remove(coll: Collection, values: Many[str]) -> int:
    """Take these values off the list, in one write; returns how many entries were removed."""
    if not values:
        return 0
    result = await coll.delete_many({"value": {"$in": sorted(values)}})
    return result.deleted_count


async def list_entries(coll: Collection, *, limit: int, after: str | None = None) -> list[dict[str, Any]]:
    """At most `limit` (up to MAX_LIST) entries in value order, those after `after` when given."""
    if not 1 <= limit <= MAX_LIST:
        raise ValueError(f"limit must be between 1 and {MAX_LIST}, got {limit}")
    flt: dict[str, Any] = {"value": {"$gt": after}} if after is not None else {}
    return [doc async for doc in coll.find(flt, sort=[("value", ASCENDING)], limit=limit)]


async def count(coll: Collection) -> int:
    """How many entries the list holds."""
    return await coll.count_documents({})
