"""ensure_schema creates every collection and index, is idempotent and race-safe, and the unique keys hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from bson import ObjectId
from pymongo.errors import DuplicateKeyError
from structlog.testing import capture_logs

from app.store import schema
from app.store.client import Database, make_client
from app.store.schema import ensure_schema

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

SEED_001_COLLECTIONS = {
    "campaigns",
    "campaign_leads",
    "sequence_steps",
    "templates",
    "email_accounts",
    "email_general_settings",
    "email_campaign_settings",
    "activities",
}


@pytest.fixture
async def empty_db(mongo_uri: str, db_name: str) -> AsyncIterator[Database]:
    """A database with nothing in it yet (no schema); dropped afterwards."""
    client = make_client(mongo_uri)
    try:
        yield client[db_name]
    finally:
        await client.drop_database(db_name)
        await client.close()


async def _index_names(db: Database, collection: str) -> set[str]:
    return {index["name"] async for index in await db[collection].list_indexes()}


async def _assert_full_schema(db: Database) -> None:
    assert set(schema.ALL_COLLECTIONS) <= set(await db.list_collection_names())
    for collection, indexes in schema.INDEXES.items():
        expected = {index.document["name"] for index in indexes}
        assert expected <= await _index_names(db, collection), collection


def test_collection_names_keep_seed_001_names() -> None:
    assert set(schema.ALL_COLLECTIONS) >= SEED_001_COLLECTIONS
    assert {"sends", "account_usage", "suppressions"} <= set(schema.ALL_COLLECTIONS)


async def test_ensure_schema_creates_every_collection_and_named_index(empty_db: Database) -> None:
    assert await empty_db.list_collection_names() == []
    await ensure_schema(empty_db)
    await _assert_full_schema(empty_db)
    lead_indexes = await _index_names(empty_db, "campaign_leads")
    assert {"campaign_due", "campaign_lead_key"} <= lead_indexes
    assert not {"due", "lease_until"} & lead_indexes  # retired: see test_ensure_schema_drops_the_retired_indexes
    assert "send_key" in await _index_names(empty_db, "sends")
    assert "account_day" in await _index_names(empty_db, "account_usage")


async def test_ensure_schema_drops_the_retired_indexes(empty_db: Database) -> None:
    """A database an earlier version set up has `due` and `lease_until` on campaign_leads: they go (each costs
    every write of a lead), concurrently run ensure_schemas agree, and an index of the operator's own that
    happens to bear a retired name, on other keys, stays."""
    leads = empty_db["campaign_leads"]
    await leads.create_index([("progress.next_due_at", 1)], name="due")
    await leads.create_index([("progress.lease_until", 1)], name="lease_until", sparse=True)
    await empty_db["account_usage"].create_index([("progress.next_due_at", 1)], name="due")
    with capture_logs() as logs:
        await asyncio.gather(*(ensure_schema(empty_db) for _ in range(3)))
    names = await _index_names(empty_db, "campaign_leads")
    assert not {"due", "lease_until"} & names
    assert {m.document["name"] for m in schema.INDEXES["campaign_leads"]} <= names
    assert "due" in await _index_names(empty_db, "account_usage")  # not a retired index of that collection
    dropped = sorted(e["index"] for e in logs if e["event"] == "schema.index_dropped")
    assert set(dropped) == {"due", "lease_until"}

    await leads.create_index([("campaign_id", 1), ("lead_key", 1)], name="lease_until")  # someone's own
    await ensure_schema(empty_db)
    assert "lease_until" in await _index_names(empty_db, "campaign_leads")


async def test_ensure_schema_twice_changes_nothing(empty_db: Database) -> None:
    await ensure_schema(empty_db)
    before = {name: await _index_names(empty_db, name) for name in schema.ALL_COLLECTIONS}
    await ensure_schema(empty_db)
    after = {name: await _index_names(empty_db, name) for name in schema.ALL_COLLECTIONS}
    assert after == before


async def test_ensure_schema_keeps_existing_documents(empty_db: Database) -> None:
    await empty_db.campaigns.insert_one({"name": "Existing", "status": "active"})
    await ensure_schema(empty_db)
    assert await empty_db.campaigns.count_documents({}) == 1
    await _assert_full_schema(empty_db)


async def test_concurrent_ensure_schema_calls_all_succeed(empty_db: Database) -> None:
    await asyncio.gather(*(ensure_schema(empty_db) for _ in range(3)))
    await _assert_full_schema(empty_db)


async def test_concurrent_ensure_schema_from_separate_clients_all_succeed(mongo_uri: str, empty_db: Database) -> None:
    clients = [make_client(mongo_uri) for _ in range(3)]
    try:
        await asyncio.gather(*(ensure_schema(client[empty_db.name]) for client in clients))
    finally:
        for client in clients:
            await client.close()
    await _assert_full_schema(empty_db)


def _send(lead_id: ObjectId, step: int, index: int, message_id: str) -> dict[str, object]:
    # The _id differs per call so that the send_key index itself, not the _id, is what refuses a duplicate.
    return {
        "_id": f"{lead_id}:{step}:{index}:{message_id}",
        "lead_id": lead_id,
        "step_order": step,
        "recipient_index": index,
        "campaign_id": "c1",
        "email": "user@example.com",
        "message_id": message_id,
        "account_id": "a1",
        "attempts": 0,
        "state": "reserved",
        "created_at": NOW,
        "updated_at": NOW,
    }


async def test_sends_refuse_a_second_document_for_the_same_lead_step_and_recipient(db: Database) -> None:
    lead = ObjectId()
    await db.sends.insert_one(_send(lead, 1, 0, "<a@outbound>"))
    with pytest.raises(DuplicateKeyError) as caught:
        await db.sends.insert_one(_send(lead, 1, 0, "<b@outbound>"))
    assert "send_key" in str(caught.value)
    assert await db.sends.count_documents({"lead_id": lead}) == 1


async def test_sends_allow_other_steps_and_recipients_of_the_same_lead(db: Database) -> None:
    lead = ObjectId()
    await db.sends.insert_many(
        [
            _send(lead, 1, 0, "<a@o>"),
            _send(lead, 1, 1, "<b@o>"),
            _send(lead, 2, 0, "<c@o>"),
            _send(ObjectId(), 1, 0, "<d@o>"),
        ]
    )
    assert await db.sends.count_documents({}) == 4


async def test_sends_refuse_a_reused_message_id(db: Database) -> None:
    await db.sends.insert_one(_send(ObjectId(), 1, 0, "<same@outbound>"))
    with pytest.raises(DuplicateKeyError):
        await db.sends.insert_one(_send(ObjectId(), 1, 0, "<same@outbound>"))


async def test_account_usage_is_unique_per_account_and_day(db: Database) -> None:
    await db.account_usage.insert_one({"account_id": "a1", "day": "2026-03-02", "sent": 1, "committed": 1})
    with pytest.raises(DuplicateKeyError) as caught:
        await db.account_usage.insert_one({"account_id": "a1", "day": "2026-03-02", "sent": 0, "committed": 0})
    assert "account_day" in str(caught.value)
    await db.account_usage.insert_many(
        [{"account_id": "a1", "day": "2026-03-03", "sent": 0}, {"account_id": "a2", "day": "2026-03-02", "sent": 0}]
    )
    assert await db.account_usage.count_documents({}) == 3


async def test_campaign_leads_are_unique_per_campaign_and_lead_key(db: Database) -> None:
    await db.campaign_leads.insert_one({"campaign_id": "c1", "lead_key": "acme.com", "lead_data": []})
    with pytest.raises(DuplicateKeyError):
        await db.campaign_leads.insert_one({"campaign_id": "c1", "lead_key": "acme.com", "lead_data": []})
    await db.campaign_leads.insert_one({"campaign_id": "c2", "lead_key": "acme.com", "lead_data": []})
    # Seed 001 leads have no lead_key; any number of them may exist in one campaign.
    await db.campaign_leads.insert_many([{"campaign_id": "c1", "lead_data": []} for _ in range(2)])
    assert await db.campaign_leads.count_documents({}) == 4


async def test_sequence_steps_are_unique_per_sequence_and_order(db: Database) -> None:
    await db.sequence_steps.insert_one({"sequence_id": "s1", "step_order": 1, "template_id": "t1"})
    with pytest.raises(DuplicateKeyError):
        await db.sequence_steps.insert_one({"sequence_id": "s1", "step_order": 1, "template_id": "t2"})


async def test_an_address_is_in_at_most_one_lead_of_a_campaign(db: Database) -> None:
    await db.campaign_leads.insert_one(
        {"campaign_id": "c1", "lead_key": "website:a.com", "lead_data": [{"email": "a@x.com"}]}
    )
    with pytest.raises(DuplicateKeyError) as caught:
        await db.campaign_leads.insert_one(
            {
                "campaign_id": "c1",
                "lead_key": "company_name:a",
                "lead_data": [{"email": "b@x.com"}, {"email": "a@x.com"}],
            }
        )
    assert schema.CAMPAIGN_RECIPIENT_INDEX in str(caught.value)
    # Another campaign may have the address; leads without addresses are not indexed.
    await db.campaign_leads.insert_one({"campaign_id": "c2", "lead_data": [{"email": "a@x.com"}]})
    await db.campaign_leads.insert_many([{"campaign_id": "c1", "lead_data": []} for _ in range(2)])
    assert await db.campaign_leads.count_documents({}) == 4


async def test_pushing_an_address_another_lead_of_the_campaign_has_is_refused(db: Database) -> None:
    await db.campaign_leads.insert_many(
        [
            {"campaign_id": "c1", "lead_key": "k1", "lead_data": [{"email": "a@x.com"}]},
            {"campaign_id": "c1", "lead_key": "k2", "lead_data": [{"email": "b@x.com"}]},
        ]
    )
    with pytest.raises(DuplicateKeyError):
        await db.campaign_leads.update_one({"lead_key": "k2"}, {"$push": {"lead_data": {"email": "a@x.com"}}})
    assert (await db.campaign_leads.find_one({"lead_key": "k2"}) or {})["lead_data"] == [{"email": "b@x.com"}]


async def test_existing_duplicates_are_reported_and_every_other_index_is_built(empty_db: Database) -> None:
    first, second = ObjectId(), ObjectId()
    await empty_db.campaign_leads.insert_many(
        [
            {"_id": first, "campaign_id": "c1", "lead_data": [{"email": "a@x.com"}, {"email": "b@x.com"}]},
            {"_id": second, "campaign_id": "c1", "lead_data": [{"email": "a@x.com"}]},
            {"campaign_id": "c2", "lead_data": [{"email": "a@x.com"}]},
        ]
    )

    with capture_logs() as logs:
        unbuilt = await ensure_schema(empty_db)

    assert [(u.collection, u.name) for u in unbuilt] == [("campaign_leads", schema.CAMPAIGN_RECIPIENT_INDEX)]
    assert unbuilt[0].duplicates == (
        {"campaign_id": "c1", "email": "a@x.com", "leads": sorted([first, second], key=str)},
    )
    (warning,) = [log for log in logs if log["event"] == "schema.unique_index_not_built"]
    assert warning["log_level"] == "warning"
    assert warning["duplicates"] == [
        {"campaign_id": "c1", "email": "a@x.com", "leads": sorted([str(first), str(second)])}
    ]
    assert "remove it from all but one" in warning["action"]
    built = await _index_names(empty_db, "campaign_leads")
    wanted = {index.document["name"] for index in schema.INDEXES["campaign_leads"]}
    assert built >= wanted - {schema.CAMPAIGN_RECIPIENT_INDEX}
    assert schema.CAMPAIGN_RECIPIENT_INDEX not in built
    for collection in set(schema.INDEXES) - {"campaign_leads"}:
        assert {i.document["name"] for i in schema.INDEXES[collection]} <= await _index_names(empty_db, collection)

    # Once the operator removes the address from one of the leads, the next run builds the index.
    await empty_db.campaign_leads.update_one({"_id": second}, {"$pull": {"lead_data": {"email": "a@x.com"}}})
    assert await ensure_schema(empty_db) == []
    await _assert_full_schema(empty_db)
