"""Collection names (seed 001 plus ours) and the indexes every feature relies on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from app.domain.collections import (
    ACCOUNT_USAGE as ACCOUNT_USAGE,
)
from app.domain.collections import (
    ACTIVITIES as ACTIVITIES,
)
from app.domain.collections import (
    ALL_COLLECTIONS as ALL_COLLECTIONS,
)
from app.domain.collections import (
    CAMPAIGN_LEADS as CAMPAIGN_LEADS,
)
from app.domain.collections import (  # re-exported: one list of names
    CAMPAIGNS as CAMPAIGNS,
)
from app.domain.collections import (
    EMAIL_ACCOUNTS as EMAIL_ACCOUNTS,
)
from app.domain.collections import (
    EMAIL_CAMPAIGN_SETTINGS as EMAIL_CAMPAIGN_SETTINGS,
)
from app.domain.collections import (
    EMAIL_GENERAL_SETTINGS as EMAIL_GENERAL_SETTINGS,
)
from app.domain.collections import (
    SENDS as SENDS,
)
from app.domain.collections import (
    SEQUENCE_STEPS as SEQUENCE_STEPS,
)
from app.domain.collections import (
    SUPPRESSIONS as SUPPRESSIONS,
)
from app.domain.collections import (
    TEMPLATES as TEMPLATES,
)

INDEXES: dict[str, list[IndexModel]] = {
    CAMPAIGN_LEADS: [
        # Due leads, oldest first: the dispatcher's main query.
        IndexModel([("progress.next_due_at", ASCENDING)], name="due"),
        IndexModel([("campaign_id", ASCENDING), ("progress.next_due_at", ASCENDING)], name="campaign_due"),
        # Expired leases are found and taken over by another dispatcher.
        IndexModel([("progress.lease_until", ASCENDING)], name="lease_until", sparse=True),
        # Import idempotency: one lead per grouping key per campaign.
        IndexModel(
            [("campaign_id", ASCENDING), ("lead_key", ASCENDING)],
            name="campaign_lead_key",
            unique=True,
            partialFilterExpression={"lead_key": {"$type": "string"}},
        ),
        IndexModel([("lead_data.email", ASCENDING)], name="recipient_email"),
        # Import finds a batch's existing leads by key alone: SecantusDB scans the collection for the compound
        # filter above, so the import filters on this single field and checks the campaign in the results.
        IndexModel([("lead_key", ASCENDING)], name="lead_key", sparse=True),
    ],
    SEQUENCE_STEPS: [
        IndexModel([("sequence_id", ASCENDING), ("step_order", ASCENDING)], name="sequence_step", unique=True),
    ],
    EMAIL_CAMPAIGN_SETTINGS: [IndexModel([("email_id", ASCENDING)], name="email_id")],
    EMAIL_GENERAL_SETTINGS: [IndexModel([("email_id", ASCENDING)], name="email_id")],
    ACTIVITIES: [
        IndexModel([("lead_id", ASCENDING), ("created_at", ASCENDING)], name="lead_time"),
        IndexModel([("campaign_id", ASCENDING), ("created_at", ASCENDING)], name="campaign_time"),
        IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING)], name="account_time"),
    ],
    SENDS: [
        # The idempotency key: one send per (lead, step, recipient index).
        IndexModel(
            [("lead_id", ASCENDING), ("step_order", ASCENDING), ("recipient_index", ASCENDING)],
            name="send_key",
            unique=True,
        ),
        IndexModel([("state", ASCENDING), ("updated_at", ASCENDING)], name="state"),
        IndexModel([("message_id", ASCENDING)], name="message_id", unique=True),
    ],
    ACCOUNT_USAGE: [
        IndexModel([("account_id", ASCENDING), ("day", ASCENDING)], name="account_day", unique=True),
    ],
    SUPPRESSIONS: [IndexModel([("value", ASCENDING)], name="value", unique=True)],
}


async def ensure_schema(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Create every collection and index Outbound needs. Safe to run any number of times, concurrently."""
    existing = set(await db.list_collection_names())
    for name in ALL_COLLECTIONS:
        if name not in existing:
            try:
                await db.create_collection(name)
            except Exception as exc:  # another process created it first
                if "already exists" not in str(exc).lower() and getattr(exc, "code", None) != 48:
                    raise
    for name, indexes in INDEXES.items():
        await db[name].create_indexes(indexes)


# An index's keys in order, each with its kind (1, -1, "text", ...), as `list_indexes()` reports them.
KeyPattern = tuple[tuple[str, int | str], ...]


@dataclass(frozen=True)
class MissingIndex:
    """An index of `INDEXES` that the database does not have."""

    collection: str
    name: str
    keys: KeyPattern

    def __str__(self) -> str:
        return f"{self.collection}.{self.name} ({', '.join(field for field, _ in self.keys)})"


def _key_pattern(keys: Mapping[str, Any]) -> KeyPattern:
    # Servers may return 1.0 for 1; special kinds ("text", "2dsphere") stay strings.
    return tuple((field, kind if isinstance(kind, str) else int(kind)) for field, kind in keys.items())


async def missing_collections(db: AsyncDatabase[dict[str, Any]]) -> list[str]:
    """The collections of `ALL_COLLECTIONS` the database does not have, in that order. Only reads."""
    existing = set(await db.list_collection_names())
    return [name for name in ALL_COLLECTIONS if name not in existing]


async def missing_indexes(db: AsyncDatabase[dict[str, Any]]) -> list[MissingIndex]:
    """The indexes of `INDEXES` the database does not have, in that order. Only reads.

    Compared by key pattern, not by name: an index on the same keys under another name serves the same queries.
    Options (unique, sparse, partial filter) are not compared. A collection that does not exist has none of its
    indexes.
    """
    existing = set(await db.list_collection_names())
    missing: list[MissingIndex] = []
    for collection, wanted in INDEXES.items():
        have: set[KeyPattern] = set()
        if collection in existing:
            have = {_key_pattern(index["key"]) async for index in await db[collection].list_indexes()}
        for model in wanted:
            keys = _key_pattern(model.document["key"])
            if keys not in have:
                missing.append(MissingIndex(collection, model.document["name"], keys))
    return missing
