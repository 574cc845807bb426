"""missing_collections and missing_indexes say what ensure_schema would create, and create nothing themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo import ASCENDING

from app.store import schema
from app.store.client import Database, make_client
from app.store.schema import ensure_schema
from app.store.schema_checks import MissingIndex, missing_collections, missing_indexes


@pytest.fixture
async def fresh_db(mongo_uri: str, db_name: str) -> AsyncIterator[Database]:
    """A handle on a database nothing has touched; dropped afterwards."""
    client = make_client(mongo_uri)
    try:
        yield client[db_name]
    finally:
        await client.drop_database(db_name)
        await client.close()


def _every_index() -> list[tuple[str, str]]:
    return [(collection, model.document["name"]) for collection, models in schema.INDEXES.items() for model in models]


async def test_a_database_that_does_not_exist_lacks_everything_and_is_not_created(fresh_db: Database) -> None:
    assert await missing_collections(fresh_db) == list(schema.ALL_COLLECTIONS)
    assert [(m.collection, m.name) for m in await missing_indexes(fresh_db)] == _every_index()
    assert fresh_db.name not in await fresh_db.client.list_database_names()


async def test_after_ensure_schema_nothing_is_missing(fresh_db: Database) -> None:
    await ensure_schema(fresh_db)
    assert await missing_collections(fresh_db) == []
    assert await missing_indexes(fresh_db) == []


async def test_a_collection_with_documents_but_no_indexes_lacks_all_of_them(fresh_db: Database) -> None:
    await fresh_db[schema.SEQUENCE_STEPS].insert_one({"sequence_id": "s1", "step_order": 1})
    missing = await missing_indexes(fresh_db)
    assert MissingIndex(schema.SEQUENCE_STEPS, "sequence_step", (("sequence_id", 1), ("step_order", 1))) in missing
    assert schema.SEQUENCE_STEPS not in await missing_collections(fresh_db)


async def test_a_dropped_index_is_missing_and_the_others_are_not(fresh_db: Database) -> None:
    await ensure_schema(fresh_db)
    await fresh_db[schema.SENDS].drop_index("state")
    assert [str(m) for m in await missing_indexes(fresh_db)] == ["sends.state (state, updated_at)"]


async def test_an_index_on_the_same_keys_under_another_name_counts_as_present(fresh_db: Database) -> None:
    await ensure_schema(fresh_db)
    await fresh_db[schema.SENDS].drop_index("state")
    await fresh_db[schema.SENDS].create_index([("state", ASCENDING), ("updated_at", ASCENDING)], name="by_state")
    assert await missing_indexes(fresh_db) == []


async def test_an_index_on_the_same_fields_in_another_order_does_not_count(fresh_db: Database) -> None:
    await ensure_schema(fresh_db)
    await fresh_db[schema.SENDS].drop_index("state")
    await fresh_db[schema.SENDS].create_index([("updated_at", ASCENDING), ("state", ASCENDING)], name="by_time")
    assert [m.name for m in await missing_indexes(fresh_db)] == ["state"]
