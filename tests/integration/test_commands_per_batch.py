"""Fewer database commands per batch, with the same guarantees: the in-flight mark commits a reservation that has
no wait window, and a dispatcher's batch reservations plan on recent reads but never count a send a fresh read
would have refused."""

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


async def test_the_in_flight_mark_commits_a_reservation_without_a_wait_window(
    db: Database, mongo_uri: str, db_name: str
) -> None:
    account = await add_account(db, 1, max_daily=10)
    counter = CommandCounter()
    client = make_client(mongo_uri, event_listeners=[counter])
    try:
        arbiter = Arbiter(client[db_name], owner="d1", marks_in_flight=True)
        got = await many(arbiter, make_campaign(), NOW, 2)
        assert await arbiter.mark_in_flight(got) == [True, True]
        marked = await usage_of(db, account)
        counter.names.clear()
        await arbiter.commit_many(got, NOW)
        commit = list(counter.names)
    finally:
        await client.close()

    assert (marked["sent"], marked["committed"], marked.get("open") or {}) == (2, 2, {})
    assert commit == []  # the mark already did what the commit would have
    assert (await usage_of(db, account))["committed"] == 2


async def test_a_send_refused_after_its_in_flight_commit_gives_its_count_back(db: Database) -> None:
    account = await add_account(db, 1, max_daily=10)
    arbiter = Arbiter(db, owner="d1", marks_in_flight=True)
    got = await many(arbiter, make_campaign(), NOW, 2)
    await arbiter.mark_in_flight(got)

    returned = await arbiter.rollback_many(got[:1], NOW, reason="421 try again later")
    await arbiter.commit_many(got[1:], NOW)

    usage = await usage_of(db, account)
    assert returned == 1
    assert (usage["sent"], usage["committed"]) == (1, 1)


async def test_a_reservation_with_a_wait_window_stays_open_until_its_commit(db: Database) -> None:
    account = await add_account(db, 1, max_daily=10, min_wait=1)
    arbiter = Arbiter(db, owner="d1", marks_in_flight=True)
    got = await many(arbiter, make_campaign(), NOW, 1)
    await arbiter.mark_in_flight(got)

    records = list((await usage_of(db, account))["open"].values())
    await arbiter.commit_many(got, NOW)

    assert [r["flown"] for r in records] == [True]  # a reclaim still finds it and keeps the window's hold
    assert (await usage_of(db, account)).get("open") in ({}, None)


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
