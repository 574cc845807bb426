"""What `ensure_schema` would create: the collections and indexes a database lacks. Only reads (the dry run)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from app.store.schema import ALL_COLLECTIONS, INDEXES, KeyPattern, key_pattern


@dataclass(frozen=True)
class MissingIndex:
    """An index of `INDEXES` that the database does not have."""

    collection: str
    name: str
    keys: KeyPattern

    def __str__(self) -> str:
        return f"{self.collection}.{self.name} ({', '.join(field for field, _ in self.keys)})"


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
            have = {key_pattern(index["key"]) async for index in await db[collection].list_indexes()}
        for model in wanted:
            keys = key_pattern(model.document["key"])
            if keys not in have:
                missing.append(MissingIndex(collection, model.document["name"], keys))
    return missing
