"""Hourly limits, account days, random gaps and ramps against a real database: atomic counts, races, give-backs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from app.domain.campaigns import Campaign, CampaignSettings
from app.store import schema
from app.store.arbiter import Arbiter, NoAccountAvailable, Reservation
from app.store.client import Database
from tests.integration.test_arbiter import add_account, fenced, make_campaign, reserve_all, reserved

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def paced_campaign(*, hourly_limit: int | None = None, min_wait: float = 0.0, jitter: float = 0.0) -> Campaign:
    settings = CampaignSettings(min_wait_time=min_wait, hourly_limit=hourly_limit, wait_jitter=jitter)
    return Campaign(str(ObjectId()), "Paced", "active", "seq-1", settings)


async def hourly_account(db: Database, n: int, max_hourly: int, **fields: object) -> str:
    account = await add_account(db, n, **fields)
    await db[schema.EMAIL_CAMPAIGN_SETTINGS].insert_one({"email_id": account, "max_hourly_sends": max_hourly})
    return account


async def test_max_hourly_sends_caps_the_clock_hour_and_the_next_hour_has_room(db: Database) -> None:
    account = await hourly_account(db, 1, 3)
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()

    assert len(await reserve_all(arbiter, campaign, NOW)) == 3
    refused = await arbiter.reserve(campaign, NOW + timedelta(minutes=29))
    assert isinstance(refused, NoAccountAvailable)
    assert refused.retry_at == datetime(2026, 3, 14, 10, tzinfo=UTC)
    assert "max_hourly_sends" in refused.reason
    assert len(await reserve_all(arbiter, campaign, datetime(2026, 3, 14, 10, 0, 1, tzinfo=UTC))) == 3
    usage = await arbiter.usage(account, "2026-03-14")
    assert (usage["sent"], usage["hours"]) == (6, {"09": 3, "10": 3})


async def test_the_campaigns_hourly_limit_caps_one_campaign_only(db: Database) -> None:
    await add_account(db, 1)
    arbiter = Arbiter(db, owner="d1")
    capped, other = paced_campaign(hourly_limit=2), make_campaign()

    assert len(await reserve_all(arbiter, capped, NOW)) == 2
    assert isinstance(await arbiter.reserve(capped, NOW), NoAccountAvailable)
    assert isinstance(await arbiter.reserve(other, NOW), Reservation)


async def test_racing_dispatchers_never_exceed_the_hourly_limit(db: Database) -> None:
    await hourly_account(db, 1, 4)
    await hourly_account(db, 2, 4)
    campaign = make_campaign()
    arbiters = [Arbiter(db, owner=f"d{i}", settings_ttl=0.0) for i in range(6)]

    singles = await asyncio.gather(*(a.reserve(campaign, NOW) for a in arbiters for _ in range(3)))
    batches = await asyncio.gather(*(a.reserve_many(campaign, NOW, [None] * 4) for a in arbiters))

    given = [r for r in singles if isinstance(r, Reservation)] + [r for b in batches for r in b if r is not None]
    per_account = {r.account.id for r in given}
    assert len(given) == 8 and len(per_account) == 2
    docs = [d async for d in db[schema.ACCOUNT_USAGE].find({})]
    assert sorted(d["hours"]["09"] for d in docs) == [4, 4]


async def test_a_rollback_gives_the_hour_back(db: Database) -> None:
    account = await hourly_account(db, 1, 1)
    arbiter = Arbiter(db, owner="d1")
    campaign = paced_campaign(hourly_limit=1)

    first = reserved(await arbiter.reserve(campaign, NOW))
    await arbiter.rollback(first, NOW, reason="connection refused")

    usage = await arbiter.usage(account, "2026-03-14")
    assert (usage["sent"], usage["hours"]["09"], usage["hours_campaigns"]["09"][campaign.id]) == (0, 0, 0)
    assert isinstance(await arbiter.reserve(campaign, NOW), Reservation)


async def test_a_crashed_holders_unsent_reservation_gives_its_hour_back_and_a_flown_one_keeps_it(
    db: Database,
) -> None:
    account = await hourly_account(db, 1, 2)
    campaign = make_campaign()
    crashed, survivor = fenced(db, "crashed"), fenced(db, "survivor")
    unsent = reserved(await crashed.reserve(campaign, NOW))
    flown = reserved(await crashed.reserve(campaign, NOW))
    assert await crashed.mark_in_flight([flown]) == [True]
    assert isinstance(await survivor.reserve(campaign, NOW), NoAccountAvailable)

    found = await survivor.reclaim(NOW + timedelta(minutes=5), {"crashed"})

    assert (found.returned, found.in_flight) == (1, 1)
    usage = await survivor.usage(account, "2026-03-14")
    assert (usage["sent"], usage["hours"]["09"], usage["hours_campaigns"]["09"][campaign.id]) == (1, 1, 1)
    assert await crashed.mark_in_flight([unsent]) == [False]
    assert isinstance(await survivor.reserve(campaign, NOW + timedelta(minutes=5)), Reservation)


async def test_an_accounts_day_rolls_over_at_its_local_midnight(db: Database) -> None:
    account = await add_account(db, 1, max_daily=2, timezone="Asia/Tokyo")
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()
    evening = datetime(2026, 3, 14, 14, 30, tzinfo=UTC)  # 23:30 in Tokyo

    assert len(await reserve_all(arbiter, campaign, evening)) == 2
    refused = await arbiter.reserve(campaign, evening)
    assert isinstance(refused, NoAccountAvailable)
    assert refused.retry_at == datetime(2026, 3, 14, 15, tzinfo=UTC)  # Tokyo's midnight
    after = reserved(await arbiter.reserve(campaign, datetime(2026, 3, 14, 15, 0, 1, tzinfo=UTC)))
    assert after.day == "2026-03-15"
    assert (await arbiter.usage(account, "2026-03-14"))["sent"] == 2
    assert (await arbiter.usage(account, "2026-03-15"))["sent"] == 1


async def test_a_ramp_caps_each_day_at_its_step(db: Database) -> None:
    account = await add_account(db, 1, ramp_started_on="2026-03-13")
    await db[schema.EMAIL_CAMPAIGN_SETTINGS].insert_one(
        {"email_id": account, "max_daily_sends": 6, "ramp": {"start": 2, "increase": 3}}
    )
    arbiter = Arbiter(db, owner="d1")
    campaign = make_campaign()

    assert len(await reserve_all(arbiter, campaign, datetime(2026, 3, 13, 9, tzinfo=UTC))) == 2  # day 0
    assert len(await reserve_all(arbiter, campaign, NOW)) == 5  # day 1
    assert len(await reserve_all(arbiter, campaign, datetime(2026, 3, 16, 9, tzinfo=UTC))) == 6  # the ceiling
    batch = await arbiter.reserve_many(campaign, datetime(2026, 3, 17, 9, tzinfo=UTC), [None] * 10)
    assert sum(r is not None for r in batch) == 6


async def test_each_gap_is_drawn_at_commit_and_never_below_the_minimum(db: Database) -> None:
    account = await add_account(db, 1)
    arbiter = Arbiter(db, owner="d1")
    campaign = paced_campaign(min_wait=2.0, jitter=3.0)
    gaps: list[float] = []
    now = NOW
    for _ in range(12):
        reservation = reserved(await arbiter.reserve(campaign, now))
        await arbiter.commit(reservation, now)
        doc = await db[schema.EMAIL_ACCOUNTS].find_one({"_id": ObjectId(account)})
        assert doc is not None
        opens = doc["next_available_at"].replace(tzinfo=UTC)
        assert isinstance(await arbiter.reserve(campaign, opens - timedelta(seconds=1)), NoAccountAvailable)
        gaps.append((opens - now).total_seconds() / 60)
        now = opens
    assert all(2.0 <= g <= 5.0 for g in gaps), gaps
    assert len({round(g, 3) for g in gaps}) > 6, gaps  # they vary
