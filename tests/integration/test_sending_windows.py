"""Sending windows end to end: a real dispatcher pass against the database server and the loopback SMTP server,
`run-dispatcher --dry-run --at`, and what `show-due-leads` and `show-lead-details` say of a closed window."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from app.store import schema
from app.store.client import Database, make_client
from app.transport.mailbox import MailboxServer
from tests.factories import add_account, add_campaign, add_lead
from tests.integration.test_threaded_followups import Clock, run_once

OFFICE_HOURS_NY = {
    "timezone": "America/New_York",
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "start": "09:00",
    "end": "17:00",
}
SATURDAY = datetime(2025, 3, 8, 15, 0, tzinfo=UTC)  # 10:00 EST; clocks go forward on Sunday 2025-03-09
MONDAY_OPENING = datetime(2025, 3, 10, 13, 0, tzinfo=UTC)  # 09:00 EDT


async def windowed_campaign(db: Database, schedule: dict[str, Any], name: str = "Office hours") -> str:
    campaign_id = await add_campaign(db, name=name, steps=[{"subject": "Hi {{ first_name }}", "body_text": "Hello"}])
    await db[schema.CAMPAIGNS].update_one({"_id": ObjectId(campaign_id)}, {"$set": {"settings.schedule": schedule}})
    return campaign_id


async def test_a_closed_window_sends_nothing_and_leaves_the_lead_due_at_the_next_opening(
    db: Database, smtp: MailboxServer
) -> None:
    clock = Clock()
    clock.now = SATURDAY
    campaign_id = await windowed_campaign(db, OFFICE_HOURS_NY)
    await add_account(db, smtp.port, email="ann@sender.example")
    lead_id = await add_lead(db, campaign_id, [{"email": "bo@acme.example", "first_name": "Bo"}], due=SATURDAY)

    stats = await run_once(db, clock)

    assert stats.outcomes.get("sent", 0) == 0
    assert smtp.messages == []
    lead = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
    assert lead["progress"]["next_due_at"].replace(tzinfo=UTC) == MONDAY_OPENING
    assert lead["progress"]["processed_recipients"] == {}

    clock.now = MONDAY_OPENING + timedelta(minutes=30)
    stats = await run_once(db, clock)

    assert stats.outcomes["sent"] == 1
    assert [m.recipients for m in smtp.messages] == [("bo@acme.example",)]


async def test_a_recipients_own_time_zone_decides_when_the_schedule_says_so(db: Database, smtp: MailboxServer) -> None:
    clock = Clock()
    clock.now = MONDAY_OPENING + timedelta(hours=1)  # Monday 10:00 in New York, Tuesday 01:00 in Sydney
    campaign_id = await windowed_campaign(db, {**OFFICE_HOURS_NY, "recipient_timezone": True})
    await add_account(db, smtp.port, email="ann@sender.example")
    here = await add_lead(db, campaign_id, [{"email": "ny@acme.example", "first_name": "Ny"}], due=clock.now)
    there = await add_lead(
        db, campaign_id, [{"email": "syd@acme.example", "first_name": "Syd", "timezone": "Australia/Sydney"}]
    )
    await db[schema.CAMPAIGN_LEADS].update_one({"_id": there}, {"$set": {"progress.next_due_at": clock.now}})

    await run_once(db, clock)

    assert [m.recipients for m in smtp.messages] == [("ny@acme.example",)]
    waiting = await db[schema.CAMPAIGN_LEADS].find_one({"_id": there})
    # Tuesday 09:00 AEDT is Monday 22:00 UTC.
    assert waiting["progress"]["next_due_at"].replace(tzinfo=UTC) == datetime(2025, 3, 10, 22, 0, tzinfo=UTC)
    assert (await db[schema.CAMPAIGN_LEADS].find_one({"_id": here}))["progress"]["processed_recipients"]


def seed(mongo_uri: str, db_name: str, port: int, schedule: dict[str, Any], due: datetime) -> dict[str, Any]:
    """A windowed campaign with two due leads and one account, inserted through the async factories."""

    async def go() -> dict[str, Any]:
        client = make_client(mongo_uri)
        db = client[db_name]
        try:
            campaign_id = await windowed_campaign(db, schedule)
            await add_account(db, port, email="ann@sender.example")
            leads = [
                await add_lead(db, campaign_id, [{"email": f"p{n}@acme.example", "first_name": f"P{n}"}], due=due)
                for n in range(2)
            ]
            return {"campaign": campaign_id, "leads": [str(lead) for lead in leads]}
        finally:
            await client.close()

    return asyncio.run(go())


def test_dry_run_at_a_saturday_shows_nothing_and_says_when_the_window_opens_then_monday_shows_the_sends(
    cli, mongo_uri, db_name, smtp
) -> None:
    seed(mongo_uri, db_name, smtp.port, OFFICE_HOURS_NY, due=datetime(2025, 3, 7, 12, 0, tzinfo=UTC))

    saturday = cli("run-dispatcher", "--dry-run", "--no-inbox", "--at", "2025-03-08T10:00:00-05:00")

    assert saturday.exit_code == 0, saturday.output
    assert "0 emails would be sent at 2025-03-08T10:00:00-05:00" in saturday.stdout
    assert (
        "campaign Office hours: the sending window is closed at Sat 2025-03-08 10:00 EST; "
        "it opens Mon 2025-03-10 09:00 EDT (America/New_York)"
    ) in saturday.stdout
    rows = json.loads(cli("run-dispatcher", "--dry-run", "--no-inbox", "--json", "--at", "2025-03-08T15:00Z").stdout)
    assert [r["action"] for r in rows] == ["wait", "wait"]
    assert {r["problem"] for r in rows} == {
        "waiting for the sending window (opens Mon 2025-03-10 09:00 EDT (America/New_York))"
    }
    assert {r["send_at"] for r in rows} == {"2025-03-10T13:00:00+00:00"}

    monday = cli("run-dispatcher", "--dry-run", "--no-inbox", "--json", "--at", "2025-03-10T09:30:00-04:00")

    assert monday.exit_code == 0, monday.output
    sends = [r for r in json.loads(monday.stdout) if r["action"] == "send"]
    assert sorted(r["email"] for r in sends) == ["p0@acme.example", "p1@acme.example"]
    assert {r["send_at"] for r in sends} == {"2025-03-10T13:30:00+00:00"}
    assert "sending window is closed" not in monday.stderr
    assert smtp.messages == []


def test_dry_run_at_refuses_a_time_without_a_zone_and_a_real_run(cli) -> None:
    naive = cli("run-dispatcher", "--dry-run", "--at", "2025-03-08T10:00:00")
    assert naive.exit_code == 1
    assert "has no time zone: add Z (UTC) or an offset" in naive.stderr
    garbled = cli("run-dispatcher", "--dry-run", "--at", "next saturday")
    assert garbled.exit_code == 1
    assert "is not an ISO time" in garbled.stderr
    real = cli("run-dispatcher", "--once", "--at", "2025-03-08T10:00:00Z")
    assert real.exit_code == 1
    assert "--at goes with --dry-run" in real.stderr


def closed_now() -> dict[str, Any]:
    """A window every day that opens in two hours (UTC) and lasts one: closed now whenever the test runs."""
    opens = datetime.now(UTC) + timedelta(hours=2)
    return {
        "timezone": "UTC",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": f"{opens:%H:%M}",
        "end": f"{opens + timedelta(hours=1):%H:%M}",
    }


def test_due_leads_and_lead_details_say_they_wait_for_the_sending_window(cli, mongo_uri, db_name, smtp) -> None:
    schedule = closed_now()
    seeded = seed(mongo_uri, db_name, smtp.port, schedule, due=datetime.now(UTC) - timedelta(minutes=5))
    waits = f"waiting for the sending window (opens {{day}} {schedule['start']} UTC (UTC))"

    due = json.loads(cli("show-due-leads", "--json").stdout)

    assert len(due["leads"]) == 2
    assert all(d["window"].startswith("waiting for the sending window (opens ") for d in due["leads"])
    assert all(d["window"].endswith(f" {schedule['start']} UTC (UTC))") for d in due["leads"])
    table = cli("show-due-leads")
    assert "waiting for the sending window" in table.stdout

    details = cli("show-lead-details", seeded["leads"][0], "--json")
    window = json.loads(details.stdout)["window"]
    assert window == waits.format(day=window.split("opens ")[1][:14])
    assert "waiting for the sending window (opens" in cli("show-lead-details", seeded["leads"][0]).stdout
