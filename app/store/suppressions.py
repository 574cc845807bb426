"""The suppression list: addresses and domains never to be mailed, read a batch at a time, added in bulk."""

from __future__ import annotations

from collections.abc import Collection as Many
from datetime import datetime

from pymongo import UpdateOne

from app.domain.gates import suppression_keys
from app.store.documents import Collection


async def load(coll: Collection, emails: Many[str]) -> dict[str, str]:
    """Suppressed values (address or domain) among `emails`, with their reasons, in one query."""
    values = sorted({key for email in emails for key in suppression_keys(email)})
    if not values:
        return {}
    return {
        str(doc["value"]): str(doc.get("reason", "listed"))
        async for doc in coll.find({"value": {"$in": values}}, projection={"value": 1, "reason": 1})
    }


async def add(coll: Collection, entries: list[tuple[str, str, str]], now: datetime) -> None:
    """Suppress addresses: (address, reason, detail) each, in one write; an existing entry is kept as it is."""
    if not entries:
        return
    ops = [
        UpdateOne(
            {"value": email.lower()},
            {"$setOnInsert": {"value": email.lower(), "reason": reason, "detail": detail, "created_at": now}},
            upsert=True,
        )
        for email, reason, detail in entries
    ]
    await coll.bulk_write(ops, ordered=False)
