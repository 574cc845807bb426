"""Dispatcher heartbeats against a real database server: who is gone, and what a running dispatcher reclaims."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

from app import __version__
from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions
from app.domain.collections import DISPATCHERS
from app.store import dispatchers, schema
from app.store.arbiter import Arbiter, Reservation
from app.store.catalog import Catalog
from app.store.client import Database
from app.transport.dryrun import DryRunSender
from tests.factories import add_account, add_campaign

NOW = datetime.now(UTC).replace(microsecond=0)


async def test_a_dispatcher_is_gone_once_it_stopped_or_its_beats_stopped(db: Database) -> None:
    coll = db[DISPATCHERS]
    await dispatchers.beat(coll, "fresh", NOW, beat_seconds=2, host="h", pid=1)
    await dispatchers.beat(coll, "stale", NOW - timedelta(seconds=7), beat_seconds=2, host="h", pid=2)
    await dispatchers.beat(coll, "slow", NOW - timedelta(seconds=7), beat_seconds=5, host="h", pid=3)
    await dispatchers.beat(coll, "done", NOW, beat_seconds=2, host="h", pid=4)
    await dispatchers.stopped(coll, "done", NOW)

    found = await dispatchers.gone(coll, {"fresh", "stale", "slow", "done", "unknown"}, NOW, beat_seconds=2)

    # "slow" beats every 5 s by its own record; "unknown" never beat, so nothing says it died.
    assert found == {"stale", "done"}
    doc = await coll.find_one({"_id": "done"})
    assert doc is not None
    assert (doc["host"], doc["pid"], doc["started_at"], doc["stopped_at"]) == ("h", 4, NOW, NOW)


async def test_a_run_beats_before_it_reserves_and_marks_its_clean_stop(db: Database) -> None:
    options = DispatcherOptions(once=True, poll_interval=0.05, lease_seconds=10)
    dispatcher = build_dispatcher(db, Settings(), DryRunSender(), options)

    await asyncio.wait_for(dispatcher.run(), timeout=30)

    doc = await db[DISPATCHERS].find_one({"_id": dispatcher.owner})
    assert doc is not None
    assert doc["pid"] == os.getpid() and doc["beat_seconds"] == 2.0
    assert doc["stopped_at"] >= doc["started_at"]


async def test_a_running_dispatcher_gives_back_what_a_gone_one_reserved_but_never_sent(db: Database) -> None:
    campaign_id = await add_campaign(db)
    account = await add_account(db, 2525, email="s@example.com", max_daily_sends=1, min_wait_time=5)
    campaign = await Catalog(db).campaign(campaign_id)
    assert campaign is not None
    crashed = Arbiter(db, owner="crashed", marks_in_flight=True, hold_seconds=120)
    reservation = await crashed.reserve(campaign, datetime.now(UTC))
    assert isinstance(reservation, Reservation)
    await dispatchers.beat(
        db[DISPATCHERS], "crashed", datetime.now(UTC) - timedelta(minutes=1), beat_seconds=2, host="h", pid=1
    )
    # A short lease: beats every half second, so the reclaim comes within a second or two.
    options = DispatcherOptions(poll_interval=0.05, lease_seconds=2)
    dispatcher = build_dispatcher(db, Settings(), DryRunSender(), options)
    run = asyncio.create_task(dispatcher.run())

    async def returned() -> dict[str, object]:
        while True:
            usage = await crashed.usage(account, reservation.day)
            if usage["sent"] == 0:
                return usage
            await asyncio.sleep(0.1)

    try:
        usage = await asyncio.wait_for(returned(), timeout=20)
    finally:
        dispatcher.stop()
        await asyncio.wait_for(run, timeout=30)
    assert usage["open"] == {}
    doc = await db[schema.EMAIL_ACCOUNTS].find_one({"email": "s@example.com"})
    assert doc is not None and "reservation_token" not in doc
    assert await crashed.mark_in_flight([reservation]) == [False]


async def test_heartbeats_older_than_two_days_are_forgotten_when_a_dispatcher_starts(db: Database) -> None:
    coll = db[DISPATCHERS]
    await dispatchers.beat(coll, "last-week", NOW - timedelta(days=7), beat_seconds=2, host="h", pid=1)
    await dispatchers.beat(coll, "yesterday", NOW - timedelta(days=1), beat_seconds=2, host="h", pid=2)
    sender = DryRunSender()
    dispatcher = build_dispatcher(db, Settings(), sender, DispatcherOptions(once=True, poll_interval=0.05))
    await asyncio.wait_for(dispatcher.run(), timeout=30)

    left = sorted([doc["_id"] async for doc in coll.find({}, projection={"_id": 1})])
    # Yesterday's may still answer for reservations a reclaim looks at; last week's answers for nothing.
    assert left == sorted(["yesterday", dispatcher.owner])


async def test_a_dispatcher_pass_records_its_version_leads_in_flight_and_no_error(db: Database) -> None:
    options = DispatcherOptions(once=True, poll_interval=0.05, lease_seconds=10)
    dispatcher = build_dispatcher(db, Settings(), DryRunSender(), options)

    await asyncio.wait_for(dispatcher.run(), timeout=30)

    [heartbeat] = await dispatchers.heartbeats(db[DISPATCHERS])
    assert heartbeat.owner == dispatcher.owner
    assert (heartbeat.version, heartbeat.pid, heartbeat.leads_in_flight) == (__version__, os.getpid(), 0)
    assert heartbeat.host and heartbeat.started_at and heartbeat.beat_at and heartbeat.stopped_at
    assert (heartbeat.last_error, heartbeat.last_error_at) == (None, None)


async def test_a_beat_records_the_last_error_and_the_leads_in_flight_in_one_write(db: Database) -> None:
    coll = db[DISPATCHERS]
    await dispatchers.beat(coll, "d", NOW, beat_seconds=2, host="h", pid=1, version="9.9", leads_in_flight=3)
    error = dispatchers.LastError("scan: connection refused", NOW + timedelta(seconds=1))
    later = NOW + timedelta(seconds=2)
    await dispatchers.beat(coll, "d", later, beat_seconds=2, host="h", pid=1, version="9.9", last_error=error)

    [heartbeat] = await dispatchers.heartbeats(coll)
    assert (heartbeat.started_at, heartbeat.beat_at, heartbeat.version) == (NOW, later, "9.9")
    assert heartbeat.leads_in_flight == 0
    assert (heartbeat.last_error, heartbeat.last_error_at) == ("scan: connection refused", error.at)
