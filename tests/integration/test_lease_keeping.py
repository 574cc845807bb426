"""A batch that outlasts its lease keeps its leads: the keeper renews them while it works, so a racing
dispatcher claims none of them and every recipient is sent once, by the batch that claimed it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions
from app.send.lease_keeper import LeaseKeeper
from app.store import leases, schema
from app.store.client import Database
from app.transport.mailbox import Fault, MailboxServer, background
from app.transport.smtp import SmtpSender
from tests.factories import add_account, add_campaign, add_lead

LEASE = 2.0


def slow_data(stage: str, value: str) -> Fault | None:
    """Each DATA takes 0.9 s at the server (its own thread): six messages on one account outlast the lease."""
    if stage == "data":
        time.sleep(0.9)
    return None


async def test_a_batch_slower_than_its_lease_keeps_its_leads_and_sends_each_once(db: Database, tmp_path: Path) -> None:
    with background(MailboxServer(tmp_path / "mail", fault=slow_data)) as server:
        await add_account(db, server.port, email="only@sender.example", max_daily_sends=None)
        campaign = await add_campaign(db, daily_limit=None)
        ids = [await add_lead(db, campaign, [{"email": f"r{i}@x.example"}]) for i in range(6)]
        leads = db[schema.CAMPAIGN_LEADS]
        stolen: list[object] = []
        done = asyncio.Event()

        async def rival() -> None:
            """Another dispatcher claiming whatever of these leads is due, every 50 ms, while the batch works."""
            deadline = time.monotonic() + 30
            # From the moment the dispatcher holds them all.
            while await leads.count_documents({"progress.lease_owner": {"$exists": True}}) < len(ids):
                assert time.monotonic() < deadline, "the dispatcher never claimed the leads"
                await asyncio.sleep(0.01)
            while not done.is_set() and time.monotonic() < deadline:
                now = datetime.now(UTC)
                taken = await leases.claim_many(leads, ids, owner="rival", now=now, lease_seconds=60)
                stolen.extend(doc["_id"] for doc, _ in taken)
                await asyncio.sleep(0.05)

        sender = SmtpSender(timeout=10)
        options = DispatcherOptions(once=True, poll_interval=0.05, concurrency=6, batch_size=6, lease_seconds=LEASE)
        dispatcher = build_dispatcher(db, Settings(smtp_timeout=10), sender, options)
        racing = asyncio.create_task(rival())
        started = time.monotonic()
        try:
            stats = await dispatcher.run()
        finally:
            done.set()
            await racing
            await sender.close()
        took = time.monotonic() - started

    assert took > 2 * LEASE, f"the batch took {took:.1f} s: too fast to outlast its lease ({stats})"
    assert stolen == []
    assert stats.outcomes["lease_lost"] == 0
    assert sorted(m.recipients[0] for m in server.messages) == [f"r{i}@x.example" for i in range(6)]
    async for lead in leads.find({"_id": {"$in": ids}}):
        assert lead["progress"]["processed_recipients"]["step_1_recipient_0"]["status"] == "sent"
        assert "lease_token" not in lead["progress"]


async def test_renewing_a_batch_tells_the_leads_still_held_from_those_lost(db: Database) -> None:
    campaign = await add_campaign(db, daily_limit=None)
    ids = [await add_lead(db, campaign, [{"email": f"k{i}@x.example"}]) for i in range(3)]
    leads = db[schema.CAMPAIGN_LEADS]
    now = datetime.now(UTC)
    held = [lease for _, lease in await leases.claim_many(leads, ids, owner="me", now=now, lease_seconds=LEASE)]
    assert len(held) == 3
    # One lead is taken over after its lease ran out; another got a recipient from an import meanwhile.
    later = now + timedelta(seconds=2 * LEASE)
    assert len(await leases.claim_many(leads, [ids[0]], owner="rival", now=later, lease_seconds=60)) == 1
    await leads.update_one({"_id": ids[1]}, {"$push": {"lead_data": {"email": "new@x.example"}}})

    keeper = LeaseKeeper(leads, held, lease_seconds=30, clock=lambda: later)
    await keeper.renew()

    assert keeper.current(held[0]) is None
    assert keeper.current(held[1]) is None
    kept = keeper.current(held[2])
    assert kept is not None and kept.until == later + timedelta(seconds=30)
    stored = await leads.find_one({"_id": ids[2]})
    assert stored is not None
    assert abs(stored["progress"]["lease_until"].replace(tzinfo=UTC) - kept.until) < timedelta(milliseconds=1)
    assert stored["progress"]["next_due_at"] == stored["progress"]["lease_until"]
    rival = await leads.find_one({"_id": ids[0]})
    assert rival is not None and rival["progress"]["lease_owner"] == "rival"
    # A lost lease stays lost: the next renewal writes only the one still held.
    await keeper.renew()
    assert keeper.current(held[0]) is None and keeper.current(held[2]) is not None


async def test_the_keeper_renews_in_the_background_only_while_kept(db: Database) -> None:
    campaign = await add_campaign(db, daily_limit=None)
    lead = await add_lead(db, campaign, [{"email": "bg@x.example"}])
    leads = db[schema.CAMPAIGN_LEADS]
    held = [
        lease
        for _, lease in await leases.claim_many(leads, [lead], owner="me", now=datetime.now(UTC), lease_seconds=1.5)
    ]
    keeper = LeaseKeeper(leads, held, lease_seconds=1.5, clock=lambda: datetime.now(UTC))
    assert keeper.period == 0.5
    async with keeper.kept():
        await asyncio.sleep(3.2)
        # Well past the first lease, no one else may claim it.
        assert await leases.claim_many(leads, [lead], owner="rival", now=datetime.now(UTC), lease_seconds=60) == []
    renewals = keeper.renewals
    assert renewals >= 2
    await asyncio.sleep(0.8)
    assert keeper.renewals == renewals
