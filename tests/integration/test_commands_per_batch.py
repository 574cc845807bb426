"""Fewer database commands per batch, with the same guarantees: a dispatcher's batch reservations plan on recent
reads but never count a send a fresh read would have refused."""

from __future__ import annotations

from bson import ObjectId

from app.store import schema
from app.store.arbiter import Arbiter
from app.store.client import Database, make_client
from tests.factories import CommandCounter
from tests.integration.test_arbiter import NOW, add_account, make_campaign, many

DAY = "2026-03-14"


async def usage_of(db: Database, account_id: str) -> dict:
    doc = await db[schema.ACCOUNT_USAGE].find_one({"_id": f"{account_id}:{DAY}"})
    assert doc is not None
    return doc


async def test_a_kept_plan_costs_no_reads_and_never_counts_on_an_account_paused_meanwhile(
    db: Database, mongo_uri: str, db_name: str
) -> None:
    accounts = [await add_account(db, n, max_daily=100) for n in range(2)]
    counter = CommandCounter()
    client = make_client(mongo_uri, event_listeners=[counter])
    try:
        arbiter = Arbiter(client[db_name], owner="d1", plan_seconds=5.0)
        campaign = make_campaign()
        await many(arbiter, campaign, NOW, 2)
        counter.names.clear()
        again = await many(arbiter, campaign, NOW, 2)
        kept = list(counter.names)
        await db[schema.EMAIL_ACCOUNTS].update_one({"_id": ObjectId(accounts[0])}, {"$set": {"status": "paused"}})
        after_pause = await many(arbiter, campaign, NOW, 2)
    finally:
        await client.close()

    assert len(again) == 2 and kept == ["update", "update"]  # rotation (checked), then the counts
    assert {r.account.id for r in after_pause} == {accounts[1]}
    assert (await usage_of(db, accounts[0]))["sent"] == 2  # the first two plans only
