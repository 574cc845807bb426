"""The daily report against SecantusDB and a loopback SMTP server: it arrives once, with yesterday's counts,
whatever the number of dispatchers, and a crashed or failing attempt is taken over or retried within bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from app.config import Settings
from app.report.loop import ReportLoop, daily_reports
from app.store import daily_report as store
from app.store import schema
from app.store.client import Database
from app.transport.mailbox import Fault, MailboxServer
from app.transport.smtp import SmtpSender
from tests.factories import add_account, add_campaign

pytestmark = pytest.mark.asyncio

# 07:00 in Berlin on 2 December 2026 (UTC+1): the report covers 1 December, 23:00 UTC on 30 Nov to 23:00 on 1 Dec.
NOW = datetime(2026, 12, 2, 6, 0, 5, tzinfo=UTC)
DAY = "2026-12-01"
YESTERDAY = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RECIPIENTS = ("ops@example.com", "founder@example.com")


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


def report_settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "report_to": RECIPIENTS,
        "report_at": time(7, 0),
        "report_timezone": "Europe/Berlin",
        "smtp_timeout": 5.0,
    }
    values.update(changes)
    return Settings(**values)


@pytest.fixture
async def sender() -> AsyncIterator[SmtpSender]:
    smtp = SmtpSender(timeout=5, local_hostname="client.test")
    try:
        yield smtp
    finally:
        await smtp.close()


async def activity(db: Database, campaign_id: str, kind: str, when: datetime, n: int = 1) -> None:
    await db[schema.ACTIVITIES].insert_many(
        [
            {"campaign_id": campaign_id, "type": kind, "email": f"r{i}@lead.example", "created_at": when}
            for i in range(n)
        ]
    )


async def seed(db: Database, port: int) -> dict[str, str]:
    """Two campaigns with yesterday's (and other days') activities, a failure, an uncertain send, a paused one and
    an account near its limit."""
    spring = await add_campaign(db, name="Spring")
    paused = await add_campaign(db, name="Old list", status="paused")
    await db[schema.CAMPAIGNS].update_one(
        {"name": "Old list"},
        {
            "$set": {
                "paused_reason": "12 of the last 20 attempts failed",
                "paused_at": YESTERDAY,
                "paused_by": {"kind": "cli", "name": "alice"},
            }
        },
    )
    account = await add_account(db, port, email="sender@example.com", max_daily_sends=100)
    await add_account(db, port, email="broken@example.com", status="auth_failed")
    await activity(db, spring, "sent", YESTERDAY, 9)
    await activity(db, spring, "replied", YESTERDAY, 2)
    await activity(db, spring, "bounced", YESTERDAY)
    await activity(db, paused, "sent", YESTERDAY, 3)
    await activity(db, paused, "unsubscribed", YESTERDAY)
    # Just inside and just outside the Berlin day.
    await activity(db, spring, "sent", datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    await activity(db, spring, "sent", datetime(2026, 11, 30, 22, 59, tzinfo=UTC), 5)
    await activity(db, spring, "sent", datetime(2026, 12, 1, 23, 0, tzinfo=UTC), 7)
    ledger: list[dict[str, Any]] = [
        {"_id": "L1:1:0", "campaign_id": spring, "state": "failed", "updated_at": YESTERDAY, "email": "x@lead.example"},
        {"_id": "L2:1:0", "campaign_id": spring, "state": "failed", "updated_at": NOW, "email": "y@lead.example"},
        {
            "_id": "L3:1:0",
            "campaign_id": spring,
            "account_id": account,
            "state": "uncertain",
            "updated_at": YESTERDAY,
            "email": "secret@lead.example",
            "last_error": "connection dropped after DATA",
        },
    ]
    keyed = [
        {**d, "lead_id": d["_id"][:2], "step_order": 1, "recipient_index": 0, "message_id": f"<{d['_id']}@x>"}
        for d in ledger
    ]
    await db[schema.SENDS].insert_many(keyed)
    await db[schema.ACCOUNT_USAGE].insert_one(
        {"_id": f"{account}:{DAY}", "account_id": account, "day": DAY, "sent": 85}
    )
    return {"spring": spring, "paused": paused, "account": account}


async def test_the_report_arrives_once_with_yesterdays_counts(
    db: Database, smtp: MailboxServer, sender: SmtpSender
) -> None:
    ids = await seed(db, smtp.port)
    loop = ReportLoop(db, report_settings(), sender, clock=Clock())
    assert await loop.check() == store.SENT
    assert await loop.check() is None, "a second check the same day sends nothing"
    messages = await smtp.wait_for(2)
    assert sorted(r for m in messages for r in m.recipients) == sorted(RECIPIENTS)
    parsed = messages[0].parse()
    assert parsed["Subject"] == (
        "Outbound daily report 2026-12-01: 13 sent, 2 replies, 1 bounce, 1 unsubscribe, 1 failed; "
        "2 accounts to check, 1 uncertain send, 1 paused campaign"
    )
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["From"].addresses[0].addr_spec == "sender@example.com"
    assert len({m.message_id for m in messages}) == 2 and all(m.message_id for m in messages)
    assert messages[0].message_id.startswith("<outbound.report.2026-12-01.")  # type: ignore[union-attr]
    body = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"Spring ({ids['spring']})" in body and "L3:1:0" in body and "connection dropped after DATA" in body
    assert "near its daily limit (85/100, 85%)" in body and "out of rotation (auth_failed)" in body
    assert "by alice (command line): 12 of the last 20 attempts failed" in body  # who paused it, and why
    assert "lead.example" not in body, "no recipient address in the report"
    run = await store.run_of(db, DAY)
    assert run is not None and run["state"] == store.SENT and sorted(run["delivered"]) == sorted(RECIPIENTS)


async def test_before_the_hour_nothing_is_claimed(db: Database, smtp: MailboxServer, sender: SmtpSender) -> None:
    await add_account(db, smtp.port, email="sender@example.com")
    loop = ReportLoop(db, report_settings(), sender, clock=Clock(NOW - timedelta(minutes=1)))
    assert await loop.check() is None
    assert await store.run_of(db, DAY) is None and smtp.messages == []


async def test_two_dispatchers_checking_at_once_send_one_report(db: Database, smtp: MailboxServer) -> None:
    await add_account(db, smtp.port, email="sender@example.com")
    senders = [SmtpSender(timeout=5, local_hostname="client.test") for _ in range(3)]
    loops = [ReportLoop(db, report_settings(), s, owner=f"d{i}", clock=Clock()) for i, s in enumerate(senders)]
    try:
        states = await asyncio.gather(*(loop.check() for loop in loops))
    finally:
        await asyncio.gather(*(s.close() for s in senders))
    assert sorted(states, key=str) == sorted([store.SENT, None, None], key=str)
    await asyncio.sleep(0.2)
    assert sorted(r for m in smtp.messages for r in m.recipients) == sorted(RECIPIENTS)


async def test_two_running_loops_send_one_report(db: Database, smtp: MailboxServer) -> None:
    await add_account(db, smtp.port, email="sender@example.com")
    senders = [SmtpSender(timeout=5, local_hostname="client.test") for _ in range(2)]
    loops = [ReportLoop(db, report_settings(), s, clock=Clock(), check_seconds=0.02) for s in senders]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop.run(stop)) for loop in loops]
    try:
        await smtp.wait_for(len(RECIPIENTS), timeout=10)
        await asyncio.sleep(0.5)  # some 25 more checks each
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        await asyncio.gather(*(s.close() for s in senders))
    assert len(smtp.messages) == len(RECIPIENTS)


async def test_a_crashed_claim_is_taken_over_after_its_lease_for_the_recipients_left(
    db: Database, smtp: MailboxServer, sender: SmtpSender
) -> None:
    await add_account(db, smtp.port, email="sender@example.com")
    crashed = {
        "_id": DAY,
        "state": store.SENDING,
        "owner": "gone:1:abc",
        "token": "dead",
        "attempts": 1,
        "lease_until": NOW + timedelta(minutes=2),
        "delivered": ["ops@example.com"],
    }
    await db[store.REPORT_RUNS].insert_one(crashed)
    clock = Clock()
    loop = ReportLoop(db, report_settings(), sender, clock=clock)
    assert await loop.check() is None, "the lease still runs: its holder may be sending"
    clock.now = NOW + timedelta(minutes=2)
    assert await loop.check() == store.SENT
    messages = await smtp.wait_for(1)
    assert [m.recipients for m in messages] == [("founder@example.com",)]
    run = await store.run_of(db, DAY)
    assert run is not None and run["attempts"] == 2 and run["owner"] == loop.owner


async def test_a_refused_report_is_retried_at_later_checks_then_fails(
    db: Database, tmp_path: Any, sender: SmtpSender
) -> None:
    def refuse(stage: str, value: str) -> Fault | None:
        return Fault(550, "5.7.1 relaying denied") if stage == "rcpt" and value == "founder@example.com" else None

    async with MailboxServer(tmp_path / "mail", fault=refuse) as smtp:
        await add_account(db, smtp.port, email="sender@example.com")
        clock = Clock()
        loop = ReportLoop(db, report_settings(), sender, clock=clock)
        states = []
        for _ in range(store.MAX_ATTEMPTS + 1):
            states.append(await loop.check())
            clock.now += timedelta(minutes=1)
        assert states == [store.SENDING] * (store.MAX_ATTEMPTS - 1) + [store.FAILED, None]
        assert [m.recipients for m in smtp.messages] == [("ops@example.com",)], "delivered once, never again"
    run = await store.run_of(db, DAY)
    assert run is not None and run["state"] == store.FAILED
    assert "550 5.7.1 relaying denied" in run["last_error"] and "founder@example.com" in run["last_error"]


async def test_a_disabled_report_account_is_an_error_naming_it(
    db: Database, smtp: MailboxServer, sender: SmtpSender
) -> None:
    account = await add_account(db, smtp.port, email="sender@example.com", status="paused")
    loop = ReportLoop(db, report_settings(report_account=account), sender, clock=Clock())
    assert await loop.check() == store.SENDING
    run = await store.run_of(db, DAY)
    assert run is not None and f"OUTBOUND_REPORT_ACCOUNT={account}" in run["last_error"]
    assert "is paused" in run["last_error"] and smtp.messages == []


async def test_without_recipients_the_task_does_nothing(db: Database, sender: SmtpSender) -> None:
    async with daily_reports(db, report_settings(report_to=()), sender) as loop:
        assert loop is None
    assert await db[store.REPORT_RUNS].count_documents({}) == 0


async def test_a_crashed_last_attempt_is_given_up_as_failed(
    db: Database, smtp: MailboxServer, sender: SmtpSender
) -> None:
    await add_account(db, smtp.port, email="sender@example.com")
    last = {"_id": DAY, "state": store.SENDING, "token": "dead", "attempts": store.MAX_ATTEMPTS, "lease_until": NOW}
    await db[store.REPORT_RUNS].insert_one(last)
    loop = ReportLoop(db, report_settings(), sender, clock=Clock())
    assert await loop.check() is None
    run = await store.run_of(db, DAY)
    assert run is not None and run["state"] == store.FAILED and smtp.messages == []
