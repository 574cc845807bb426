"""The dispatcher and workers against a real database server and a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import UTC, datetime, timedelta

from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions, DispatcherStats
from app.domain.scheduling import next_day_start
from app.store import schema
from app.store.client import Database, make_client
from app.store.documents import id_filter
from app.transport.mailbox import Fault, MailboxServer
from app.transport.smtp import SmtpSender
from tests.factories import CommandCounter, add_account, add_campaign, add_lead


class Clock:
    """A clock the test moves by hand; the dispatcher, workers and arbiter all read it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def run_once(db: Database, clock: Clock | None = None, **options: object) -> DispatcherStats:
    """Run one dispatcher in --once mode until nothing is due (bounded by the poll loop's own exit)."""
    settings = Settings(retry_base_seconds=1, retry_cap_seconds=2)
    sender = SmtpSender(timeout=10)
    try:
        opts = DispatcherOptions(once=True, poll_interval=0.05, concurrency=4, **options)  # type: ignore[arg-type]
        dispatcher = build_dispatcher(db, settings, sender, opts)
        if clock is not None:
            dispatcher.clock = clock
            dispatcher.pipeline.clock = clock
        return await dispatcher.run()
    finally:
        await sender.close()


async def test_every_recipient_of_every_step_gets_exactly_the_rendered_message(db, smtp) -> None:
    campaign = await add_campaign(
        db,
        name="Intro",
        steps=[
            {
                "subject": "Hi {{ first_name }} at {{ company_name }}",
                "body_text": "Step {{ step_order }} for {{ email }}",
            },
            {
                "subject": "Following up, {{ first_name }}",
                "body_text": "Text two",
                "body_html": "<p>Hello <b>{{ first_name }}</b></p>",
            },
        ],
    )
    await add_account(db, smtp.port, email="sender@example.com", signature="Sam from Example")
    people = [
        {"email": "ann@acme.example", "first_name": "Ann", "company_name": "Acme"},
        {"email": "bob@acme.example", "first_name": "Bob", "company_name": "Acme"},
        {"email": "cyd@acme.example", "first_name": "Cyd", "company_name": "Acme"},
    ]
    lead_id = await add_lead(db, campaign, people)

    stats = await run_once(db)

    assert stats.outcomes["sent"] == 6
    received = await smtp.wait_for(6)
    assert [m.recipients[0] for m in received] == [p["email"] for p in people] * 2
    first = received[0].parse()
    assert first["Subject"] == "Hi Ann at Acme"
    assert first["From"].addresses[0].addr_spec == "sender@example.com"
    assert first["Message-ID"] == f"<outbound.{lead_id}.1.0@example.com>"
    assert "Step 1 for ann@acme.example" in first.get_body(("plain",)).get_content()
    assert "Sam from Example" in first.get_body(("plain",)).get_content()
    second = received[3].parse()
    assert second["Subject"] == "Following up, Ann"
    assert "<b>Ann</b>" in second.get_body(("html",)).get_content()

    lead = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
    assert lead["progress"]["completed"] is True
    assert "next_due_at" not in lead["progress"]
    assert "lease_token" not in lead["progress"]
    assert set(lead["progress"]["processed_recipients"]) == {
        f"step_{s}_recipient_{i}" for s in (1, 2) for i in range(3)
    }
    assert all(r["status"] == "contacted" and r["last_step"] == 2 for r in lead["lead_data"])
    assert await db[schema.ACTIVITIES].count_documents({"lead_id": lead_id, "type": "sent"}) == 6
    assert await db[schema.SENDS].count_documents({"lead_id": lead_id, "state": "sent"}) == 6


async def test_recipients_of_a_lead_are_min_wait_apart_and_steps_wait_their_delay(db, smtp) -> None:
    clock = Clock()
    campaign = await add_campaign(
        db,
        min_wait_time=10,
        steps=[{"subject": "One", "body_text": "1"}, {"subject": "Two", "body_text": "2", "delay_minutes": 60}],
    )
    await add_account(db, smtp.port, email="s@example.com")
    lead_id = await add_lead(db, campaign, [{"email": "a@x.example"}, {"email": "b@x.example"}], due=clock.now)

    await run_once(db, clock)
    assert [m.recipients[0] for m in smtp.messages] == ["a@x.example"]
    lead = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
    assert lead["progress"]["next_due_at"] == clock.now + timedelta(minutes=10)

    clock.advance(minutes=9)
    await run_once(db, clock)
    assert len(smtp.messages) == 1

    clock.advance(minutes=1)
    await run_once(db, clock)
    assert [m.recipients[0] for m in smtp.messages] == ["a@x.example", "b@x.example"]
    lead = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
    assert lead["progress"]["current_step_order"] == 2
    assert lead["progress"]["next_due_at"] == clock.now + timedelta(minutes=60)

    clock.advance(minutes=60)
    await run_once(db, clock)
    assert [m.parse()["Subject"] for m in smtp.messages] == ["One", "One", "Two"]


async def test_template_error_pauses_the_campaign_keeps_its_leads_and_the_loop_goes_on(db, smtp) -> None:
    broken = await add_campaign(db, name="Broken", steps=[{"subject": "Hi {{ nickname }}", "body_text": "x"}])
    sandbox = await add_campaign(
        db, name="Sandbox", steps=[{"subject": "Hi", "body_text": "{{ ''.__class__.__mro__ }}"}]
    )
    fine = await add_campaign(db, name="Fine")
    await add_account(db, smtp.port, email="s@example.com")
    bad_lead = await add_lead(db, broken, [{"email": "a@x.example"}])
    sandboxed = await add_lead(db, sandbox, [{"email": "b@x.example"}])
    await add_lead(db, fine, [{"email": "c@x.example"}])

    await run_once(db)

    assert [m.recipients[0] for m in smtp.messages] == ["c@x.example"]
    for campaign_id, lead_id, needle in ((broken, bad_lead, "nickname"), (sandbox, sandboxed, "template error")):
        campaign = await db[schema.CAMPAIGNS].find_one(id_filter(campaign_id))
        assert campaign["status"] == "paused"
        assert needle in campaign["paused_reason"]
        lead = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
        # The operator's error, not the recipient's: the lead waits where it was.
        assert lead["progress"].get("processed_recipients", {}) == {}
        assert lead["lead_data"][0]["status"] == "not_contacted"
        assert lead["progress"]["next_due_at"] is not None
        assert "lease_token" not in lead["progress"]
    usage = [u async for u in db[schema.ACCOUNT_USAGE].find()]
    assert sum(u["sent"] for u in usage) == 1  # failed renders gave their reservation back

    # Fixed and resumed, the lead continues where it was.
    sequence_id = (await db[schema.CAMPAIGNS].find_one(id_filter(broken)))["sequence_id"]
    template_id = (await db[schema.SEQUENCE_STEPS].find_one({"sequence_id": sequence_id}))["template_id"]
    await db[schema.TEMPLATES].update_one(id_filter(template_id), {"$set": {"subject": "Hi {{ email }}"}})
    await db[schema.CAMPAIGNS].update_one(id_filter(broken), {"$set": {"status": "active"}})
    await run_once(db)
    assert sorted(m.recipients[0] for m in smtp.messages) == ["a@x.example", "c@x.example"]


async def test_accounts_never_exceed_max_daily_sends_and_waiting_leads_resume_next_day(db, smtp) -> None:
    clock = Clock()
    campaign = await add_campaign(db)
    await add_account(db, smtp.port, email="a@example.com", max_daily_sends=3)
    await add_account(db, smtp.port, email="b@example.com", max_daily_sends=3)
    leads = [await add_lead(db, campaign, [{"email": f"p{i}@x.example"}], due=clock.now) for i in range(10)]

    await run_once(db, clock)

    senders = [m.mail_from for m in smtp.messages]
    assert sorted(senders) == ["a@example.com"] * 3 + ["b@example.com"] * 3
    waiting = (
        await db[schema.CAMPAIGN_LEADS].find({"_id": {"$in": leads}, "progress.completed": {"$ne": True}}).to_list()
    )
    assert len(waiting) == 4
    # Either re-scheduled for the next UTC day, or never claimed: after the first "no account until tomorrow",
    # the dispatcher stops claiming the campaign's leads until then.
    assert all(w["progress"]["next_due_at"] in (next_day_start(clock.now), clock.now) for w in waiting)
    assert any(w["progress"]["next_due_at"] == next_day_start(clock.now) for w in waiting)

    clock.now = next_day_start(clock.now)
    await run_once(db, clock)
    assert len(smtp.messages) == 10


async def test_once_returns_when_nothing_is_due(db, smtp) -> None:
    campaign = await add_campaign(db)
    await add_account(db, smtp.port, email="a@example.com")
    await add_lead(db, campaign, [{"email": "later@x.example"}], due=datetime.now(UTC) + timedelta(hours=1))
    stats = await run_once(db)
    assert stats.claimed == 0
    assert smtp.messages == []


async def test_connection_dropped_after_the_data_went_out_is_uncertain_and_never_retried(db, tmp_path) -> None:
    def drop_data(stage: str, value: str) -> Fault | None:
        return Fault(drop=True) if stage == "data" else None

    async with MailboxServer(tmp_path / "mail", fault=drop_data) as server:
        campaign = await add_campaign(db)
        account = await add_account(db, server.port, email="a@example.com")
        lead_id = await add_lead(db, campaign, [{"email": "maybe@x.example"}])

        stats = await run_once(db)
        await run_once(db)  # a second pass must not try it again

    assert stats.outcomes["uncertain"] == 1
    lead = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
    entry = lead["progress"]["processed_recipients"]["step_1_recipient_0"]
    assert entry["status"] == "uncertain" and "uncertain" in entry["error"]
    assert lead["lead_data"][0]["status"] == "uncertain"
    send = await db[schema.SENDS].find_one({"lead_id": lead_id})
    assert (send["state"], send["attempts"]) == ("uncertain", 1)
    usage = await db[schema.ACCOUNT_USAGE].find_one({"account_id": account})
    assert usage["sent"] == usage["committed"] == 1  # it counts against the limits


async def test_a_campaign_whose_sends_keep_bouncing_is_paused_with_the_reason(db, tmp_path) -> None:
    def unknown_users(stage: str, value: str) -> Fault | None:
        return Fault(550, "5.1.1 User unknown") if stage == "rcpt" else None

    async with MailboxServer(tmp_path / "mail", fault=unknown_users) as server:
        campaign = await add_campaign(db)
        await add_account(db, server.port, email="a@example.com")
        for i in range(40):
            await add_lead(db, campaign, [{"email": f"nobody{i}@x.example"}])
        await run_once(db)

    doc = await db[schema.CAMPAIGNS].find_one({})
    assert doc["status"] == "paused"
    # Workers run concurrently, so the check that trips may already see a few more than 20 attempts.
    assert re.search(r"(\d+) of the last \1 attempts failed", doc["paused_reason"]), doc["paused_reason"]
    # It stopped soon after crossing the threshold instead of burning through the whole list.
    attempts = await db[schema.ACTIVITIES].count_documents({"type": "failed"})
    assert 20 <= attempts < 40


async def test_sends_of_one_account_are_its_wait_apart_at_the_smtp_server_and_rotation_spreads_them(db, smtp) -> None:
    wait_minutes = 0.01  # 0.6 s
    campaign = await add_campaign(db)
    for name in ("a", "b", "c"):
        await add_account(db, smtp.port, email=f"{name}@example.com", min_wait_time=wait_minutes)
    for i in range(9):
        await add_lead(db, campaign, [{"email": f"p{i}@x.example"}])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while len(smtp.messages) < 9 and loop.time() < deadline:
        await run_once(db)
        await asyncio.sleep(0.1)

    by_account: dict[str, list[datetime]] = {}
    for message in smtp.messages:
        by_account.setdefault(message.mail_from, []).append(message.received_at)
    assert sorted(len(v) for v in by_account.values()) == [3, 3, 3]  # least recently used first: even spread
    for times in by_account.values():
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sorted(times))]
        assert min(gaps) >= wait_minutes * 60


async def test_a_trickle_of_due_leads_is_claimed_a_few_at_a_time_not_one_batch_per_lead(
    db: Database, smtp: MailboxServer, mongo_uri: str, db_name: str
) -> None:
    campaign = await add_campaign(db)
    for name in ("a", "b", "c", "d"):
        await add_account(db, smtp.port, email=f"{name}@example.com")
    start = datetime.now(UTC) + timedelta(seconds=0.5)
    leads = 12
    for i in range(leads):  # one due every 30 ms: a trickle, far below what one batch holds
        await add_lead(db, campaign, [{"email": f"t{i}@x.example"}], due=start + timedelta(seconds=0.03 * i))
    counter = CommandCounter()
    client = make_client(mongo_uri, event_listeners=[counter])
    sender = SmtpSender(timeout=10)
    try:
        options = DispatcherOptions(poll_interval=0.05, concurrency=40)
        dispatcher = build_dispatcher(client[db_name], Settings(), sender, options)
        running = asyncio.create_task(dispatcher.run())
        await smtp.wait_for(leads, timeout=30)
        dispatcher.stop()
        await asyncio.wait_for(running, timeout=30)
    finally:
        await sender.close()
        await client.close()

    assert len({m.message_id for m in smtp.messages}) == leads  # every lead once
    batches = counter.targets.count("insert activities")  # one activity write per batch
    assert batches <= leads // 2, counter.targets  # several leads per batch, not one batch per lead
