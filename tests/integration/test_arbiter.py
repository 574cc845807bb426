"""The arbiter against a real database server: limits, wait windows, rotation, and racing dispatchers."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from structlog.testing import capture_logs

from app.domain.models import Campaign, CampaignSettings
from app.store import schema
from app.store.arbiter import USAGE_CHUNK, Arbiter, NoAccountAvailable, Reservation
from app.store.client import Database, make_client
from app.store.documents import NotFound
from tests.factories import CommandCounter

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
TOMORROW = datetime(2026, 3, 15, tzinfo=UTC)


def make_campaign(
    *, daily_limit: int | None = None, min_wait: float = 0.0, account_ids: tuple[str, ...] = ()
) -> Campaign:
    return Campaign(
        id=str(ObjectId()),
        name="Spring outreach",
        status="active",
        sequence_id="seq-1",
        settings=CampaignSettings(daily_limit=daily_limit, min_wait_time=min_wait, account_ids=account_ids),
    )


async def add_account(
    db: Database,
    n: int,
    *,
    status: str = "active",
    max_daily: int | None = None,
    daily_limit: int | None = None,
    min_wait: float | None = None,
    **fields: Any,
) -> str:
    """Insert a sending account (and its email_campaign_settings when any limit is given); return its id."""
    account_id = ObjectId()
    await db[schema.EMAIL_ACCOUNTS].insert_one(
        {
            "_id": account_id,
            "email": f"sender{n}@example.com",
            "smtp_host": "127.0.0.1",
            "smtp_port": 2525,
            "smtp_username": f"sender{n}",
            "smtp_password": "secret",
            "status": status,
            "provider": "smtp",
            **fields,
        }
    )
    settings = {"daily_limit": daily_limit, "min_wait_time": min_wait, "max_daily_sends": max_daily}
    if any(v is not None for v in settings.values()):
        given = {k: v for k, v in settings.items() if v is not None}
        await db[schema.EMAIL_CAMPAIGN_SETTINGS].insert_one({"email_id": str(account_id), **given})
    return str(account_id)


def reserved(outcome: Reservation | NoAccountAvailable) -> Reservation:
    assert isinstance(outcome, Reservation), outcome
    return outcome


def unavailable(outcome: Reservation | NoAccountAvailable) -> NoAccountAvailable:
    assert isinstance(outcome, NoAccountAvailable), outcome
    return outcome


async def many(arbiter: Arbiter, campaign: Campaign, now: datetime, wanted: int) -> list[Reservation]:
    """`reserve_many` for `wanted` sends from any account; the reservations made."""
    return [r for r in await arbiter.reserve_many(campaign, now, [None] * wanted) if r is not None]


async def reserve_all(arbiter: Arbiter, campaign: Campaign, now: datetime, limit: int = 50) -> list[Reservation]:
    """Reserve until nothing is free (bounded), at the same `now`."""
    got: list[Reservation] = []
    for _ in range(limit):
        outcome = await arbiter.reserve(campaign, now)
        if isinstance(outcome, NoAccountAvailable):
            return got
        got.append(outcome)
    raise AssertionError(f"more than {limit} reservations: limits are not enforced")


async def test_account_never_exceeds_max_daily_sends_across_campaigns(db: Database) -> None:
    account = await add_account(db, 1, max_daily=3)
    arbiter = Arbiter(db, owner="d1")
    first, second = make_campaign(), make_campaign()

    reserved(await arbiter.reserve(first, NOW))
    reserved(await arbiter.reserve(first, NOW))
    reserved(await arbiter.reserve(second, NOW))

    outcome = unavailable(await arbiter.reserve(first, NOW))
    assert outcome.retry_at == TOMORROW
    assert "max_daily_sends" in outcome.reason
    usage = await arbiter.usage(account, "2026-03-14")
    assert usage["sent"] == 3
    assert usage["campaigns"] == {first.id: 2, second.id: 1}


async def test_campaign_daily_limit_caps_one_campaign_but_not_the_others(db: Database) -> None:
    await add_account(db, 1, max_daily=10)
    arbiter = Arbiter(db, owner="d1")
    limited, other = make_campaign(daily_limit=2), make_campaign()

    assert len(await reserve_all(arbiter, limited, NOW)) == 2
    outcome = unavailable(await arbiter.reserve(limited, NOW))
    assert "daily_limit" in outcome.reason
    assert outcome.retry_at == TOMORROW
    reserved(await arbiter.reserve(other, NOW))


async def test_account_daily_limit_applies_when_lower_than_the_campaign_s(db: Database) -> None:
    await add_account(db, 1, daily_limit=1)
    arbiter = Arbiter(db, owner="d1")
    assert len(await reserve_all(arbiter, make_campaign(daily_limit=5), NOW)) == 1


async def test_limit_of_zero_never_reserves(db: Database) -> None:
    await add_account(db, 1, max_daily=0)
    await add_account(db, 2, daily_limit=0)
    arbiter = Arbiter(db, owner="d1")
    outcome = unavailable(await arbiter.reserve(make_campaign(), NOW))
    assert outcome.retry_at == TOMORROW
    assert await db[schema.ACCOUNT_USAGE].count_documents({}) == 0


async def test_account_never_sends_inside_its_wait_window(db: Database) -> None:
    account = await add_account(db, 1, min_wait=4)
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign(min_wait=2)  # the account's longer wait wins

    reserved(await arbiter.reserve(campaign, NOW))
    outcome = unavailable(await arbiter.reserve(campaign, NOW + timedelta(seconds=1)))
    assert outcome.retry_at == NOW + timedelta(minutes=4)
    assert "min_wait_time" in outcome.reason
    unavailable(await arbiter.reserve(campaign, NOW + timedelta(minutes=4) - timedelta(milliseconds=1)))

    again = reserved(await arbiter.reserve(campaign, NOW + timedelta(minutes=4)))
    assert again.account.id == account
    assert again.limits.min_wait_minutes == 4.0


async def test_least_recently_used_account_is_chosen_first(db: Database) -> None:
    ids = [await add_account(db, n) for n in range(3)]
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()

    picks = [reserved(await arbiter.reserve(campaign, NOW + timedelta(seconds=s))).account.id for s in range(6)]

    assert sorted(picks[:3]) == sorted(ids)  # never-used accounts first
    assert picks[3:] == picks[:3]  # then round-robin by last use
    assert Counter(picks) == dict.fromkeys(ids, 2)


async def test_exclude_and_only_narrow_the_choice(db: Database) -> None:
    a, b, c = [await add_account(db, n) for n in range(3)]
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()

    assert reserved(await arbiter.reserve(campaign, NOW, only=[c])).account.id == c
    picked = reserved(await arbiter.reserve(campaign, NOW, exclude=[a, c])).account.id
    assert picked == b
    assert reserved(await arbiter.reserve(campaign, NOW, only=[a, b], exclude=[b])).account.id == a
    outcome = unavailable(await arbiter.reserve(campaign, NOW, only=[]))
    assert outcome.retry_at == NOW + timedelta(seconds=60)


async def test_campaign_account_ids_restrict_the_pool(db: Database) -> None:
    a = await add_account(db, 1)
    b = await add_account(db, 2)
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign(account_ids=(b,))

    picks = {reserved(await arbiter.reserve(campaign, NOW + timedelta(seconds=s))).account.id for s in range(3)}
    assert picks == {b}
    assert unavailable(await arbiter.reserve(campaign, NOW, only=[a])).retry_at == NOW + timedelta(seconds=60)


async def test_paused_and_auth_failed_accounts_are_never_chosen(db: Database) -> None:
    await add_account(db, 1, status="paused")
    await add_account(db, 2, status="auth_failed")
    await add_account(db, 3, status="disabled")
    arbiter = Arbiter(db, owner="d1")

    outcome = unavailable(await arbiter.reserve(make_campaign(), NOW))
    assert outcome.retry_at == NOW + timedelta(seconds=60)
    assert "no active sending account" in outcome.reason


async def test_disabled_account_leaves_rotation_with_its_reason(db: Database) -> None:
    a = await add_account(db, 1)
    b = await add_account(db, 2)
    arbiter = Arbiter(db, owner="d1")

    await arbiter.disable(a, "535 5.7.8 authentication credentials invalid")

    doc = await db[schema.EMAIL_ACCOUNTS].find_one({"_id": ObjectId(a)})
    assert doc is not None
    assert doc["status"] == "auth_failed"
    assert doc["disabled_reason"] == "535 5.7.8 authentication credentials invalid"
    picks = {reserved(await arbiter.reserve(make_campaign(), NOW + timedelta(seconds=s))).account.id for s in range(3)}
    assert picks == {b}


async def test_disable_refuses_unknown_accounts_and_empty_reasons(db: Database) -> None:
    a = await add_account(db, 1)
    arbiter = Arbiter(db, owner="d1")
    with pytest.raises(NotFound):
        await arbiter.disable(str(ObjectId()), "auth failed")
    with pytest.raises(ValueError, match="reason"):
        await arbiter.disable(a, "  ")
    doc = await db[schema.EMAIL_ACCOUNTS].find_one({"_id": ObjectId(a)})
    assert doc is not None and doc["status"] == "active"


async def test_rollback_returns_the_count_and_reopens_the_wait_window(db: Database) -> None:
    account = await add_account(db, 1, max_daily=1, min_wait=10)
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()

    reservation = reserved(await arbiter.reserve(campaign, NOW))
    unavailable(await arbiter.reserve(campaign, NOW + timedelta(seconds=5)))
    await arbiter.rollback(reservation, NOW + timedelta(seconds=5), reason="recipient suppressed")

    usage = await arbiter.usage(account, "2026-03-14")
    assert (usage["sent"], usage["campaigns"][campaign.id]) == (0, 0)
    doc = await db[schema.EMAIL_ACCOUNTS].find_one({"_id": ObjectId(account)})
    assert doc is not None and "reservation_token" not in doc
    reserved(await arbiter.reserve(campaign, NOW + timedelta(seconds=5)))


async def test_rollback_twice_never_drives_counts_below_zero(db: Database) -> None:
    account = await add_account(db, 1)
    arbiter = Arbiter(db, owner="d1")
    reservation = reserved(await arbiter.reserve(make_campaign(), NOW))
    await arbiter.rollback(reservation, NOW, reason="not sent")
    await arbiter.rollback(reservation, NOW, reason="not sent")
    usage = await arbiter.usage(account, "2026-03-14")
    assert usage["sent"] == 0
    assert usage["campaigns"][reservation.campaign_id] == 0


async def test_late_rollback_keeps_a_newer_reservation_s_wait_window(db: Database) -> None:
    account = await add_account(db, 1, min_wait=1)
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()
    old = reserved(await arbiter.reserve(campaign, NOW))
    new = reserved(await arbiter.reserve(campaign, NOW + timedelta(minutes=1)))

    await arbiter.rollback(old, NOW + timedelta(minutes=1, seconds=1), reason="timed out")

    doc = await db[schema.EMAIL_ACCOUNTS].find_one({"_id": ObjectId(account)})
    assert doc is not None
    assert doc["reservation_token"] == new.token
    assert doc["next_available_at"] == NOW + timedelta(minutes=2)


async def test_commit_counts_the_send_and_clears_the_token(db: Database) -> None:
    account = await add_account(db, 1, min_wait=3)
    arbiter = Arbiter(db, owner="d1")
    reservation = reserved(await arbiter.reserve(make_campaign(), NOW))
    assert reservation.token.startswith("d1:")

    await arbiter.commit(reservation, NOW + timedelta(seconds=2))

    usage = await arbiter.usage(account, "2026-03-14")
    assert (usage["sent"], usage["committed"]) == (1, 1)
    stored = await db[schema.ACCOUNT_USAGE].find_one({"account_id": account, "day": "2026-03-14"})
    assert stored is not None and stored["_id"] == f"{account}:2026-03-14"  # the contract's fields, a keyed _id
    doc = await db[schema.EMAIL_ACCOUNTS].find_one({"_id": ObjectId(account)})
    assert doc is not None
    assert "reservation_token" not in doc
    # The wait runs from the hand-over (the commit), so the next send is a full wait after this one arrived.
    assert doc["next_available_at"] == NOW + timedelta(seconds=2, minutes=3)
    assert doc["last_used_at"] == NOW


async def test_uncommitted_reservation_still_counts_against_limits(db: Database) -> None:
    account = await add_account(db, 1, max_daily=2)
    crashed = Arbiter(db, owner="crashed")
    campaign = make_campaign()
    reserved(await crashed.reserve(campaign, NOW))
    reserved(await crashed.reserve(campaign, NOW))

    survivor = Arbiter(db, owner="survivor")
    unavailable(await survivor.reserve(campaign, NOW + timedelta(hours=1)))
    usage = await survivor.usage(account, "2026-03-14")
    assert (usage["sent"], usage["committed"]) == (2, 0)


async def test_a_new_utc_day_brings_fresh_capacity(db: Database) -> None:
    account = await add_account(db, 1, max_daily=1)
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()
    reserved(await arbiter.reserve(campaign, NOW))
    late = datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC)
    assert unavailable(await arbiter.reserve(campaign, late)).retry_at == TOMORROW

    tomorrow = reserved(await arbiter.reserve(campaign, TOMORROW))

    assert tomorrow.day == "2026-03-15"
    assert (await arbiter.usage(account, "2026-03-14"))["sent"] == 1
    assert (await arbiter.usage(account, "2026-03-15"))["sent"] == 1


async def test_malformed_account_is_skipped_and_logged(db: Database) -> None:
    await db[schema.EMAIL_ACCOUNTS].insert_one({"_id": ObjectId(), "email": "not an address", "status": "active"})
    await db[schema.EMAIL_ACCOUNTS].insert_one(
        {"email": "x@example.com", "smtp_host": "127.0.0.1", "status": "active", "next_available_at": "soon"}
    )
    good = await add_account(db, 1)
    arbiter = Arbiter(db, owner="d1")

    with capture_logs() as logs:
        picks = {
            reserved(await arbiter.reserve(make_campaign(), NOW + timedelta(seconds=s))).account.id for s in range(3)
        }

    assert picks == {good}
    invalid = [e for e in logs if e["event"] == "store.invalid_document"]
    assert {e["field"] for e in invalid} == {"email", "next_available_at"}


async def test_only_malformed_accounts_means_no_account_and_says_why(db: Database) -> None:
    await db[schema.EMAIL_ACCOUNTS].insert_one({"email": "broken", "status": "active"})
    outcome = unavailable(await Arbiter(db, owner="d1").reserve(make_campaign(), NOW))
    assert "malformed" in outcome.reason
    assert outcome.retry_at == NOW + timedelta(seconds=60)


async def test_account_with_malformed_limits_is_not_used_unlimited(db: Database) -> None:
    broken = await add_account(db, 1)
    await db[schema.EMAIL_CAMPAIGN_SETTINGS].insert_one({"email_id": broken, "max_daily_sends": "lots"})
    good = await add_account(db, 2)
    arbiter = Arbiter(db, owner="d1")

    picks = {reserved(await arbiter.reserve(make_campaign(), NOW + timedelta(seconds=s))).account.id for s in range(3)}
    assert picks == {good}


async def test_a_free_account_is_found_behind_many_exhausted_ones(db: Database) -> None:
    exhausted = [await add_account(db, n, max_daily=0) for n in range(USAGE_CHUNK + 3)]
    free = await add_account(db, 99)  # inserted last: last in least-recently-used order
    arbiter = Arbiter(db, owner="d1")

    assert reserved(await arbiter.reserve(make_campaign(), NOW)).account.id == free
    await arbiter.disable(free, "535 authentication failed")
    outcome = unavailable(await arbiter.reserve(make_campaign(), NOW))
    assert f"{len(exhausted)} at max_daily_sends" in outcome.reason
    assert outcome.retry_at == TOMORROW


async def test_a_free_account_is_found_behind_many_malformed_ones(db: Database) -> None:
    await db[schema.EMAIL_ACCOUNTS].insert_many(
        [{"_id": ObjectId(), "email": f"broken{n}", "status": "active"} for n in range(USAGE_CHUNK + 1)]
    )
    free = await add_account(db, 99)

    with capture_logs() as logs:
        assert reserved(await Arbiter(db, owner="d1").reserve(make_campaign(), NOW)).account.id == free

    assert len([e for e in logs if e["event"] == "store.invalid_document"]) == USAGE_CHUNK + 1


async def test_limits_of_a_new_account_apply_at_once_despite_the_settings_cache(db: Database) -> None:
    await add_account(db, 1, max_daily=1)
    arbiter = Arbiter(db, owner="d1", settings_ttl=3600)
    campaign = make_campaign()
    reserved(await arbiter.reserve(campaign, NOW))

    newcomer = await add_account(db, 2, max_daily=1)

    assert reserved(await arbiter.reserve(campaign, NOW)).account.id == newcomer
    unavailable(await arbiter.reserve(campaign, NOW))


async def test_changed_limits_apply_once_the_settings_cache_expires(db: Database) -> None:
    account = await add_account(db, 1, max_daily=1)
    arbiter = Arbiter(db, owner="d1", settings_ttl=0)
    campaign = make_campaign()
    reserved(await arbiter.reserve(campaign, NOW))
    unavailable(await arbiter.reserve(campaign, NOW))

    await db[schema.EMAIL_CAMPAIGN_SETTINGS].update_one({"email_id": account}, {"$set": {"max_daily_sends": 2}})

    reserved(await arbiter.reserve(campaign, NOW))


async def test_retry_at_is_the_earliest_moment_any_account_frees_up(db: Database) -> None:
    await add_account(db, 1, max_daily=1)
    await add_account(db, 2, min_wait=30)
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()
    assert len(await reserve_all(arbiter, campaign, NOW)) == 2

    with capture_logs() as logs:
        outcome = unavailable(await arbiter.reserve(campaign, NOW + timedelta(minutes=1)))

    assert outcome.retry_at == NOW + timedelta(minutes=30)  # the wait window ends before midnight
    assert "1 at max_daily_sends" in outcome.reason and "1 inside their min_wait_time window" in outcome.reason
    exhausted = [e for e in logs if e["event"] == "arbiter.exhausted"]
    assert exhausted and exhausted[0]["retry_at"] == outcome.retry_at.isoformat()
    assert exhausted[0]["campaign_id"] == campaign.id


async def test_reserved_event_carries_account_and_campaign(db: Database) -> None:
    account = await add_account(db, 1)
    campaign = make_campaign()
    arbiter = Arbiter(db, owner="d1")
    with capture_logs() as logs:
        reservation = reserved(await arbiter.reserve(campaign, NOW))
        await arbiter.commit(reservation, NOW)
        reservation = reserved(await arbiter.reserve(campaign, NOW))
        await arbiter.rollback(reservation, NOW, reason="template error")

    events = [(e["event"], e["account_id"], e["campaign_id"]) for e in logs if e["event"].startswith("arbiter.")]
    assert [e[0] for e in events] == ["arbiter.reserved", "arbiter.committed", "arbiter.reserved", "arbiter.rollback"]
    assert {e[1:] for e in events} == {(account, campaign.id)}
    assert [e["reason"] for e in logs if e["event"] == "arbiter.rollback"] == ["template error"]


async def test_usage_of_an_unused_day_is_zero_and_bad_days_are_refused(db: Database) -> None:
    arbiter = Arbiter(db, owner="d1")
    assert await arbiter.usage("nobody", "2026-03-14") == {
        "account_id": "nobody",
        "day": "2026-03-14",
        "sent": 0,
        "committed": 0,
        "campaigns": {},
    }
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        await arbiter.usage("nobody", "14/03/2026")


async def test_account_never_exceeds_daily_limit_when_dispatchers_race(
    db: Database, mongo_uri: str, db_name: str
) -> None:
    accounts = [await add_account(db, n, max_daily=5) for n in range(2)]
    campaign = make_campaign()
    clients = [make_client(mongo_uri) for _ in range(3)]
    try:
        arbiters = [Arbiter(db, owner="shared-1"), Arbiter(db, owner="shared-2")]
        arbiters += [Arbiter(c[db_name], owner=f"client-{i}") for i, c in enumerate(clients)]
        calls = [arbiters[i % len(arbiters)].reserve(campaign, NOW) for i in range(20)]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
    finally:
        for client in clients:
            await client.close()

    wins = [o for o in outcomes if isinstance(o, Reservation)]
    assert len(wins) == 10
    assert Counter(w.account.id for w in wins) == dict.fromkeys(accounts, 5)
    assert len({w.token for w in wins}) == 10
    for account in accounts:
        assert (await arbiters[0].usage(account, "2026-03-14"))["sent"] == 5


async def test_racing_dispatchers_share_one_wait_window(db: Database, mongo_uri: str, db_name: str) -> None:
    accounts = [await add_account(db, n, min_wait=5) for n in range(2)]
    campaign = make_campaign()
    client = make_client(mongo_uri)
    try:
        arbiters = [Arbiter(db, owner="a"), Arbiter(client[db_name], owner="b")]
        calls = [arbiters[i % 2].reserve(campaign, NOW) for i in range(20)]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
    finally:
        await client.close()

    wins = [o for o in outcomes if isinstance(o, Reservation)]
    assert sorted(w.account.id for w in wins) == sorted(accounts)
    total = sum([(await arbiters[0].usage(a, "2026-03-14"))["sent"] for a in accounts])
    assert total == 2  # a lost wait-window race never counts a send


async def test_a_reservation_costs_few_round_trips(db: Database, mongo_uri: str, db_name: str) -> None:
    for n in range(5):
        await add_account(db, n, max_daily=100, min_wait=1)
    counter = CommandCounter()
    client = make_client(mongo_uri, event_listeners=[counter])
    try:
        arbiter = Arbiter(client[db_name], owner="d1")
        campaign = make_campaign()
        await client.admin.command("ping")  # connection set-up is not the arbiter's cost

        counter.names.clear()
        first = reserved(await arbiter.reserve(campaign, NOW))
        cold = list(counter.names)
        counter.names.clear()
        reserved(await arbiter.reserve(campaign, NOW + timedelta(seconds=1)))
        warm = list(counter.names)
        counter.names.clear()
        await arbiter.commit(first, NOW)
        commit = list(counter.names)
    finally:
        await client.close()

    print(f"\nround trips per reserve: cold={len(cold)} {cold}; warm={len(warm)} {warm}; commit={len(commit)}")
    assert cold == ["find", "find", "find", "update", "update"]  # accounts, settings, usage, claim, count
    assert warm == ["find", "find", "update", "update"]  # settings come from the cache
    assert commit == ["update", "update"]


async def test_reserve_many_spreads_least_recently_used_first_within_the_limits(db: Database) -> None:
    accounts = [await add_account(db, n, max_daily=3) for n in range(3)]
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign(daily_limit=2)
    # The first account was used most recently: it comes last in the rotation.
    await db[schema.EMAIL_ACCOUNTS].update_one({"_id": ObjectId(accounts[0])}, {"$set": {"last_used_at": NOW}})

    got = await many(arbiter, campaign, NOW, 5)

    assert Counter(r.account.id for r in got) == {accounts[1]: 2, accounts[2]: 2, accounts[0]: 1}
    assert len({r.token for r in got}) == 5
    for account, k in Counter(r.account.id for r in got).items():
        usage = await arbiter.usage(account, "2026-03-14")
        assert (usage["sent"], usage["campaigns"]) == (k, {campaign.id: k})
    # The campaign's daily_limit of 2 per account leaves one send (on the first account) for today.
    assert [r.account.id for r in await many(arbiter, campaign, NOW, 5)] == [accounts[0]]
    assert await many(arbiter, campaign, NOW, 5) == []
    assert "daily_limit" in unavailable(await arbiter.reserve(campaign, NOW)).reason


async def test_reserve_many_takes_one_send_per_wait_window(db: Database) -> None:
    accounts = [await add_account(db, n, min_wait=2) for n in range(2)]
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()

    got = await many(arbiter, campaign, NOW, 5)

    assert sorted(r.account.id for r in got) == sorted(accounts)
    assert await many(arbiter, campaign, NOW + timedelta(minutes=1), 5) == []
    await arbiter.commit_many(got, NOW)
    again = await many(arbiter, campaign, NOW + timedelta(minutes=2), 5)
    assert sorted(r.account.id for r in again) == sorted(accounts)


async def test_reserve_many_rollback_and_commit_keep_the_counters_exact(db: Database) -> None:
    account = await add_account(db, 1, max_daily=10)
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()

    got = await many(arbiter, campaign, NOW, 4)
    assert len(got) == 4
    await arbiter.rollback(got[0], NOW, reason="render failed")
    await arbiter.commit_many(got[1:], NOW)

    usage = await arbiter.usage(account, "2026-03-14")
    assert (usage["sent"], usage["committed"], usage["campaigns"]) == (3, 3, {campaign.id: 3})


async def test_reserve_many_never_exceeds_a_limit_when_dispatchers_race(
    db: Database, mongo_uri: str, db_name: str
) -> None:
    accounts = [await add_account(db, n, max_daily=5) for n in range(3)]
    campaign = make_campaign()
    clients = [make_client(mongo_uri) for _ in range(3)]
    try:
        arbiters = [Arbiter(c[db_name], owner=f"client-{i}") for i, c in enumerate(clients)]
        calls = [many(arbiters[i % 3], campaign, NOW, 4) for i in range(9)]
        batches = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
        singles = await asyncio.wait_for(asyncio.gather(*(a.reserve(campaign, NOW) for a in arbiters * 3)), timeout=60)
    finally:
        for client in clients:
            await client.close()

    wins = [r for batch in batches for r in batch] + [o for o in singles if isinstance(o, Reservation)]
    assert Counter(w.account.id for w in wins) == dict.fromkeys(accounts, 5)
    arbiter = Arbiter(db, owner="check")
    for account in accounts:
        assert (await arbiter.usage(account, "2026-03-14"))["sent"] == 5


async def test_reserve_many_costs_a_fixed_number_of_round_trips(db: Database, mongo_uri: str, db_name: str) -> None:
    for n in range(8):
        await add_account(db, n, max_daily=100)
    counter = CommandCounter()
    client = make_client(mongo_uri, event_listeners=[counter])
    try:
        arbiter = Arbiter(client[db_name], owner="d1")
        campaign = make_campaign()
        await many(arbiter, campaign, NOW, 1)  # warms the settings cache
        counter.names.clear()
        got = await many(arbiter, campaign, NOW, 20)
        reserve = list(counter.names)
        counter.names.clear()
        await arbiter.commit_many(got, NOW)
        commit = list(counter.names)
    finally:
        await client.close()

    assert len(got) == 20
    assert reserve == ["find", "find", "update", "update"]  # accounts, usage, rotation, all counts together
    assert commit == ["update"]


# Open reservations and their reclaim: a gone holder's unsent reservations come back, in-flight ones do not.

LATER = NOW + timedelta(seconds=30)


def fenced(db: Database, owner: str, **kwargs: Any) -> Arbiter:
    """An arbiter whose holder marks each send in flight before its SMTP exchange (as the pipeline does)."""
    return Arbiter(db, owner=owner, marks_in_flight=True, **kwargs)


async def account_doc(db: Database, account: str) -> dict[str, Any]:
    doc = await db[schema.EMAIL_ACCOUNTS].find_one({"_id": ObjectId(account)})
    assert doc is not None
    return doc


async def test_a_reservation_is_recorded_open_by_the_upsert_that_counts_it(db: Database) -> None:
    account = await add_account(db, 1, min_wait=1)
    arbiter = fenced(db, "d1")
    campaign = make_campaign()

    reservation = reserved(await arbiter.reserve(campaign, NOW))

    usage = await arbiter.usage(account, "2026-03-14")
    assert usage["open"] == {
        reservation.token.rpartition(":")[2]: {
            "owner": "d1",
            "campaign": campaign.id,
            "at": NOW,
            "hour": "09",
            "flown": False,
        }
    }
    await arbiter.commit(reservation, NOW)
    assert (await arbiter.usage(account, "2026-03-14"))["open"] == {}


async def test_reserve_many_records_one_open_entry_per_reservation(db: Database) -> None:
    accounts = [await add_account(db, n, max_daily=10) for n in range(2)]
    arbiter = fenced(db, "d1")

    got = await many(arbiter, make_campaign(), NOW, 5)

    entries = {}
    for account in accounts:
        entries.update((await arbiter.usage(account, "2026-03-14"))["open"])
    assert sorted(entries) == sorted(r.token.rpartition(":")[2] for r in got)
    await arbiter.commit_many(got[1:], NOW)
    await arbiter.rollback(got[0], NOW, reason="render failed")
    for account in accounts:
        assert (await arbiter.usage(account, "2026-03-14"))["open"] == {}


async def test_reclaim_returns_a_gone_holder_s_unsent_reservation_and_reopens_its_window(db: Database) -> None:
    account = await add_account(db, 1, max_daily=1, min_wait=10)
    crashed = fenced(db, "crashed", hold_seconds=120)
    campaign = make_campaign()
    reserved(await crashed.reserve(campaign, NOW))
    survivor = fenced(db, "survivor")
    unavailable(await survivor.reserve(campaign, LATER))

    with capture_logs() as logs:
        reclaimed = await survivor.reclaim(LATER, {"crashed"})

    assert (reclaimed.returned, reclaimed.in_flight, reclaimed.windows) == (1, 0, 1)
    usage = await survivor.usage(account, "2026-03-14")
    assert (usage["sent"], usage["campaigns"][campaign.id], usage["open"]) == (0, 0, {})
    doc = await account_doc(db, account)
    assert doc["next_available_at"] == LATER and "reservation_token" not in doc
    assert [e["returned"] for e in logs if e["event"] == "arbiter.reclaimed"] == [1]
    assert reserved(await survivor.reserve(campaign, LATER)).account.id == account


async def test_reclaim_keeps_the_count_and_hold_of_a_reservation_that_may_be_in_flight(db: Database) -> None:
    account = await add_account(db, 1, max_daily=1, min_wait=10)
    crashed = fenced(db, "crashed", hold_seconds=120)
    campaign = make_campaign()
    reservation = reserved(await crashed.reserve(campaign, NOW))
    assert await crashed.mark_in_flight([reservation]) == [True]
    survivor = fenced(db, "survivor")

    reclaimed = await survivor.reclaim(LATER, {"crashed"})

    assert (reclaimed.returned, reclaimed.in_flight) == (0, 1)
    usage = await survivor.usage(account, "2026-03-14")
    assert (usage["sent"], usage["open"]) == (1, {})  # the record is closed, the count stays
    doc = await account_doc(db, account)
    assert doc["next_available_at"] == NOW + timedelta(minutes=10, seconds=120)  # the long hold stays
    assert "reservation_token" not in doc
    outcome = unavailable(await survivor.reserve(campaign, LATER))
    assert outcome.retry_at == TOMORROW


async def test_reclaim_leaves_a_live_holder_s_reservations_alone(db: Database) -> None:
    account = await add_account(db, 1, min_wait=10)
    live = fenced(db, "live")
    reservation = reserved(await live.reserve(make_campaign(), NOW))
    other = fenced(db, "other")

    async def nobody_is_gone(owners: set[str]) -> set[str]:
        assert owners == {"live"}  # the owners found open, never the reclaimer itself
        return set()

    assert not await other.reclaim(LATER, nobody_is_gone)
    assert not await live.reclaim(LATER, {"live"})  # a dispatcher never reclaims its own reservations
    usage = await other.usage(account, "2026-03-14")
    assert usage["sent"] == 1 and list(usage["open"]) == [reservation.token.rpartition(":")[2]]
    assert (await account_doc(db, account))["reservation_token"] == reservation.token
    assert await live.mark_in_flight([reservation]) == [True]


async def test_a_returned_reservation_is_never_sent_nor_given_back_twice(db: Database) -> None:
    account = await add_account(db, 1, max_daily=5, min_wait=1)
    paused = fenced(db, "paused")
    campaign = make_campaign()
    reservation = reserved(await paused.reserve(campaign, NOW))
    survivor = fenced(db, "survivor")
    assert (await survivor.reclaim(LATER, {"paused"})).returned == 1
    again = reserved(await survivor.reserve(campaign, LATER))

    # The paused holder resumes: it must not send, and its late rollback changes nothing.
    assert await paused.mark_in_flight([reservation]) == [False]
    await paused.rollback(reservation, LATER, reason="returned while paused")
    assert (await survivor.reclaim(LATER, {"paused"})).returned == 0

    usage = await survivor.usage(account, "2026-03-14")
    assert (usage["sent"], usage["campaigns"][campaign.id]) == (1, 1)  # only the survivor's reservation
    assert (await account_doc(db, account))["reservation_token"] == again.token


async def test_reclaim_racing_a_flight_mark_lets_exactly_one_win(db: Database) -> None:
    account = await add_account(db, 1, min_wait=1)
    holder = fenced(db, "slow")
    reservation = reserved(await holder.reserve(make_campaign(), NOW))
    reclaimers = [fenced(db, f"r{i}") for i in range(3)]

    flown, *reclaims = await asyncio.gather(
        holder.mark_in_flight([reservation]), *(r.reclaim(LATER, {"slow"}) for r in reclaimers)
    )

    returned = sum(r.returned for r in reclaims)
    usage = await holder.usage(account, "2026-03-14")
    if flown == [True]:
        assert returned == 0 and usage["sent"] == 1
    else:
        assert returned == 1 and usage["sent"] == 0


async def test_mark_in_flight_reports_each_reservation_of_a_batch(db: Database, mongo_uri: str, db_name: str) -> None:
    for n in range(3):
        await add_account(db, n, max_daily=10)
    counter = CommandCounter()
    client = make_client(mongo_uri, event_listeners=[counter])
    try:
        arbiter = fenced(client[db_name], "d1")
        got = await many(arbiter, make_campaign(), NOW, 6)
        # Another dispatcher returned one of them (as after this one was taken for gone).
        victim = got[0]
        await db[schema.ACCOUNT_USAGE].update_one(
            {"_id": f"{victim.account.id}:2026-03-14"}, {"$unset": {f"open.{victim.token.rpartition(':')[2]}": ""}}
        )
        counter.names.clear()
        healthy = await arbiter.mark_in_flight([r for r in got if r.account.id != victim.account.id])
        one_trip = list(counter.names)
        flags = await arbiter.mark_in_flight(got)
    finally:
        await client.close()

    assert healthy == [True] * 4 and one_trip == ["update"]  # two accounts' documents, one round trip
    assert flags == [r.token != victim.token for r in got]  # marking again is harmless; the returned one says so


async def test_a_holder_that_does_not_mark_flights_keeps_its_reservations_counted(db: Database) -> None:
    account = await add_account(db, 1, max_daily=1, min_wait=1)
    legacy = Arbiter(db, owner="legacy")
    reserved(await legacy.reserve(make_campaign(), NOW))

    reclaimed = await fenced(db, "survivor").reclaim(LATER, {"legacy"})

    # Nothing proves its message did not go out: counted as if a crash caught it mid-send.
    assert (reclaimed.returned, reclaimed.in_flight) == (0, 1)
    assert (await legacy.usage(account, "2026-03-14"))["sent"] == 1


async def test_a_window_held_by_a_live_reservation_is_retried_after_the_wait_not_the_crash_hold(
    db: Database,
) -> None:
    await add_account(db, 1, min_wait=0.01)  # 0.6 s
    arbiter = fenced(db, "d1", hold_seconds=120)
    campaign = make_campaign()
    reserved(await arbiter.reserve(campaign, NOW))

    outcome = unavailable(await arbiter.reserve(campaign, NOW + timedelta(milliseconds=100)))

    # The live holder moves the window to its hand-over + 0.6 s: look a second after that, not 2 minutes later.
    assert outcome.retry_at == NOW + timedelta(seconds=0.6 + 1)
    later = unavailable(await arbiter.reserve(campaign, NOW + timedelta(seconds=5)))
    assert later.retry_at == NOW + timedelta(seconds=6)  # the send runs long: look again a second later


async def test_a_limit_filled_by_unsent_reservations_is_retried_before_tomorrow(db: Database) -> None:
    await add_account(db, 1, max_daily=1)
    holder = fenced(db, "holder")
    campaign = make_campaign()
    reservation = reserved(await holder.reserve(campaign, NOW))
    other = fenced(db, "other")

    outcome = unavailable(await other.reserve(campaign, NOW + timedelta(seconds=1)))
    # Its holder sends or returns it soon, or is taken for gone and it is reclaimed within 20 s.
    assert outcome.retry_at == NOW + timedelta(seconds=20)

    assert await holder.mark_in_flight([reservation]) == [True]
    assert unavailable(await other.reserve(campaign, NOW + timedelta(seconds=2))).retry_at == TOMORROW


async def test_reserve_many_that_loses_every_wait_window_to_a_race_returns_none(db: Database) -> None:
    for n in range(2):
        await add_account(db, n, min_wait=5)
    arbiters = [fenced(db, f"d{i}") for i in range(6)]

    batches = await asyncio.wait_for(asyncio.gather(*(many(a, make_campaign(), NOW, 2) for a in arbiters)), timeout=60)

    assert sum(len(b) for b in batches) == 2  # one send per window; the losers get nothing, not an error


# A recipient's follow-ups are pinned to its mailbox: that account or a wait for it, another only once it is gone.


async def test_a_pinned_reservation_takes_its_mailbox_waits_for_it_and_leaves_it_once_paused(db: Database) -> None:
    mailbox = await add_account(db, 1, min_wait=5)
    other = await add_account(db, 2)
    await db[schema.EMAIL_ACCOUNTS].update_one({"_id": ObjectId(mailbox)}, {"$set": {"last_used_at": NOW}})
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign(account_ids=(mailbox, other))

    taken = reserved(await arbiter.reserve(campaign, NOW, pin=mailbox))
    busy = unavailable(await arbiter.reserve(campaign, NOW + timedelta(minutes=1), pin=mailbox))
    await db[schema.EMAIL_ACCOUNTS].update_one({"_id": ObjectId(mailbox)}, {"$set": {"status": "paused"}})
    moved = reserved(await arbiter.reserve(campaign, NOW + timedelta(minutes=1), pin=mailbox))
    unassigned = make_campaign(account_ids=(other,))
    gone = reserved(await arbiter.reserve(unassigned, NOW + timedelta(minutes=2), pin=mailbox))

    assert taken.account.id == mailbox  # though the other account was less recently used
    assert "min_wait_time" in busy.reason and busy.retry_at == NOW + timedelta(minutes=5)
    assert moved.account.id == other == gone.account.id


async def test_reserve_many_gives_each_follow_up_its_mailbox_in_the_same_few_round_trips(
    db: Database, mongo_uri: str, db_name: str
) -> None:
    first, second = [await add_account(db, n, max_daily=100) for n in range(2)]
    campaign = make_campaign()
    counter = CommandCounter()
    client = make_client(mongo_uri, event_listeners=[counter])
    try:
        arbiter = Arbiter(client[db_name], owner="d1")
        await many(arbiter, campaign, NOW, 1)  # warms the settings cache
        counter.names.clear()
        pinned = await arbiter.reserve_many(campaign, NOW, [second, second, first])
        pinned_trips = list(counter.names)
        counter.names.clear()
        mixed = await arbiter.reserve_many(campaign, NOW, [second, None, None])
        mixed_trips = list(counter.names)
    finally:
        await client.close()

    assert [r.account.id if r else None for r in pinned] == [second, second, first]
    assert pinned_trips == ["find", "find", "update", "update"]  # the mailboxes, usage, counts, rotation
    assert mixed[0] is not None and mixed[0].account.id == second and all(mixed)
    assert mixed_trips == ["find", "find", "find", "update", "update"]  # and the free accounts


async def test_reserve_many_leaves_a_follow_up_whose_mailbox_is_busy_without_a_reservation(db: Database) -> None:
    mailbox = await add_account(db, 1, min_wait=5)
    other = await add_account(db, 2)
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()

    first = await arbiter.reserve_many(campaign, NOW, [mailbox, None])
    again = await arbiter.reserve_many(campaign, NOW + timedelta(minutes=1), [mailbox, None])

    assert [r.account.id if r else None for r in first] == [mailbox, other]
    assert [r.account.id if r else None for r in again] == [None, other]  # the other is free: it is not taken
