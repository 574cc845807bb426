"""Follow-ups in their recipient's thread, from its mailbox, and List-Unsubscribe on every message: real dispatcher
passes against a real database server and the loopback SMTP server, and the arbiter's pinned reservations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from bson import ObjectId
from structlog.testing import capture_logs

from app.cli.dispatcher_wiring import build_dispatcher, unsubscribe_links
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions, DispatcherStats
from app.domain.inbound import SendRef
from app.domain.templating import Renderer
from app.domain.unsubscribe import verify
from app.send.preview import SEND, WAIT, dry_run
from app.store import schema
from app.store.catalog import Catalog
from app.store.client import Database
from app.transport.dryrun import DryRunSender
from app.transport.mailbox import MailboxServer, ReceivedMessage
from app.transport.smtp import SmtpSender
from tests.factories import add_account, add_campaign, add_lead

SECRET = "s" * 32
FIRST = {"subject": "Quick question for {{ first_name }}", "body_text": "Hello {{ first_name }}"}
REPLY = {"body_text": "Just bringing this back up, {{ first_name }}."}  # no subject: a reply in the thread


class Clock:
    """A clock the test moves by hand; the dispatcher, pipeline and arbiter all read it."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def run_once(db: Database, clock: Clock | None = None, **settings: Any) -> DispatcherStats:
    """One dispatcher in --once mode, built as `run-dispatcher` builds it, until nothing is due."""
    sender = SmtpSender(timeout=10)
    try:
        options = DispatcherOptions(once=True, poll_interval=0.05, concurrency=4)
        dispatcher = build_dispatcher(
            db, Settings(retry_base_seconds=1, retry_cap_seconds=2, **settings), sender, options
        )
        if clock is not None:
            dispatcher.clock = clock
            dispatcher.pipeline.clock = clock
        return await dispatcher.run()
    finally:
        await sender.close()


def by_step(smtp: MailboxServer, lead_id: ObjectId) -> dict[int, tuple[ReceivedMessage, EmailMessage]]:
    """The lead's messages at the SMTP server by step: `<outbound.{lead}.{step}.{recipient}@{domain}>`."""
    prefix = f"<outbound.{lead_id}."
    found = {}
    for received in smtp.messages:
        parsed = received.parse()
        if parsed["Message-ID"].startswith(prefix):
            found[int(parsed["Message-ID"][len(prefix) :].split(".")[0])] = (received, parsed)
    return found


async def test_a_follow_up_without_subject_replies_in_the_thread_from_the_first_steps_account(
    db: Database, smtp: MailboxServer
) -> None:
    campaign = await add_campaign(db, steps=[FIRST, REPLY])
    for n in range(2):
        await add_account(db, smtp.port, email=f"s{n}@sender{n}.example")
    leads = [await add_lead(db, campaign, [{"email": f"p{n}@acme.example", "first_name": f"P{n}"}]) for n in range(3)]

    stats = await run_once(db)

    assert stats.outcomes["sent"] == 6
    senders = set()
    for n, lead_id in enumerate(leads):
        steps = by_step(smtp, lead_id)
        (first, one), (second, two) = steps[1], steps[2]
        assert one["Subject"] == f"Quick question for P{n}"
        assert two["Subject"] == f"Re: Quick question for P{n}"
        assert two["In-Reply-To"] == one["Message-ID"] == two["References"]
        assert "In-Reply-To" not in one and "References" not in one
        # The other account was idle (least recently used) when the follow-up went: it still came from this one.
        assert second.mail_from == first.mail_from
        senders.add(first.mail_from)
        doc = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
        thread = doc["progress"]["threads"]["0"]
        mailbox = str((await db[schema.EMAIL_ACCOUNTS].find_one({"email": first.mail_from}))["_id"])
        assert thread == {
            "account_id": mailbox,
            "subject": f"Re: Quick question for P{n}",
            "message_ids": [one["Message-ID"], two["Message-ID"]],
            "step_order": 2,
        }
    assert len(senders) == 2  # the first steps were spread over both accounts


async def test_when_the_first_steps_account_is_paused_the_reply_goes_from_another_with_the_thread(
    db: Database, smtp: MailboxServer
) -> None:
    clock = Clock()
    campaign = await add_campaign(db, steps=[FIRST, {**REPLY, "delay_minutes": 60}])
    first_account = await add_account(db, smtp.port, email="first@sender.example")
    lead_id = await add_lead(db, campaign, [{"email": "ann@acme.example", "first_name": "Ann"}], due=clock.now)
    await run_once(db, clock)
    await add_account(db, smtp.port, email="other@sender.example")
    await db[schema.EMAIL_ACCOUNTS].update_one({"_id": ObjectId(first_account)}, {"$set": {"status": "paused"}})

    clock.advance(minutes=60)
    with capture_logs() as logs:
        await run_once(db, clock)

    steps = by_step(smtp, lead_id)
    assert [steps[1][0].mail_from, steps[2][0].mail_from] == ["first@sender.example", "other@sender.example"]
    assert steps[2][1]["Subject"] == "Re: Quick question for Ann"
    assert steps[2][1]["In-Reply-To"] == steps[1][1]["Message-ID"] == steps[2][1]["References"]
    moved = [e for e in logs if e["event"] == "worker.mailbox_unavailable"]
    assert [e["mailbox"] for e in moved] == [first_account]
    doc = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
    assert doc["progress"]["threads"]["0"]["account_id"] == first_account  # the mailbox is still the first one


async def test_a_follow_up_waits_for_its_busy_mailbox_while_the_campaigns_other_leads_go_on(
    db: Database, smtp: MailboxServer
) -> None:
    clock = Clock()
    campaign = await add_campaign(db, steps=[FIRST, REPLY])
    await add_account(db, smtp.port, email="slow@sender.example", min_wait_time=10)
    fast = await add_account(db, smtp.port, email="fast@sender.example")
    # The slow account is the least recently used: one of the two first steps goes from it.
    await db[schema.EMAIL_ACCOUNTS].update_one({"_id": ObjectId(fast)}, {"$set": {"last_used_at": clock.now}})
    people = [{"email": f"p{n}@acme.example", "first_name": f"P{n}"} for n in range(2)]
    leads = [await add_lead(db, campaign, [person], due=clock.now) for person in people]

    stats = await run_once(db, clock)

    assert stats.outcomes["waiting"] >= 1
    threads = {lead_id: by_step(smtp, lead_id) for lead_id in leads}
    [waiting] = [lead_id for lead_id, steps in threads.items() if steps[1][0].mail_from == "slow@sender.example"]
    [going] = [lead_id for lead_id in leads if lead_id != waiting]
    assert sorted(threads[going]) == [1, 2] and threads[going][2][0].mail_from == "fast@sender.example"
    assert sorted(threads[waiting]) == [1]  # the fast account was free, and the follow-up did not switch to it
    doc = await db[schema.CAMPAIGN_LEADS].find_one({"_id": waiting})
    assert clock.now + timedelta(minutes=10) <= doc["progress"]["next_due_at"] <= clock.now + timedelta(minutes=11)
    assert doc["progress"]["current_step_order"] == 2

    clock.advance(minutes=11)
    await run_once(db, clock)

    steps = by_step(smtp, waiting)
    assert steps[2][0].mail_from == "slow@sender.example"
    assert steps[2][1]["In-Reply-To"] == steps[1][1]["Message-ID"]


async def test_every_message_carries_list_unsubscribe_and_one_click_only_with_a_public_url(
    db: Database, smtp: MailboxServer
) -> None:
    plain = await add_campaign(db, name="Plain", steps=[FIRST, REPLY])
    await add_account(db, smtp.port, email="s@sender.example")
    without = await add_lead(db, plain, [{"email": "ann@acme.example", "first_name": "Ann"}])
    await run_once(db)
    linked = await add_lead(db, plain, [{"email": "bob@acme.example", "first_name": "Bob"}])
    await run_once(db, public_url="https://outbound.example.com/", secret_key=SECRET)

    for order, (_, parsed) in by_step(smtp, without).items():
        token = f"outbound.{without}.{order}.0"
        assert parsed["List-Unsubscribe"].strip() == f"<mailto:s@sender.example?subject=unsubscribe%20{token}>"
        assert "List-Unsubscribe-Post" not in parsed
    for order, (_, parsed) in by_step(smtp, linked).items():
        link, mailto = (uri.strip("<> ") for uri in parsed["List-Unsubscribe"].split(","))
        assert link.startswith("https://outbound.example.com/u/")
        assert verify(link.rpartition("/")[2], SECRET) == SendRef(str(linked), order, 0)
        assert mailto == f"mailto:s@sender.example?subject=unsubscribe%20outbound.{linked}.{order}.0"
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_a_first_step_without_subject_pauses_the_campaign_saying_what_to_fix(
    db: Database, smtp: MailboxServer
) -> None:
    campaign = await add_campaign(db, steps=[REPLY])
    await add_account(db, smtp.port, email="s@sender.example")
    lead_id = await add_lead(db, campaign, [{"email": "ann@acme.example", "first_name": "Ann"}])

    await run_once(db)

    assert smtp.messages == []
    doc = await db[schema.CAMPAIGNS].find_one({"_id": ObjectId(campaign)})
    assert doc["status"] == "paused"
    assert "step 1's template has no subject, and there is no earlier message" in doc["paused_reason"]
    lead = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
    assert lead["progress"]["current_step_order"] == 1 and lead["progress"]["processed_recipients"] == {}


async def test_the_dry_run_shows_the_reply_its_mailbox_and_headers_as_they_would_be_sent(
    db: Database, smtp: MailboxServer
) -> None:
    clock = Clock()
    campaign = await add_campaign(db, steps=[FIRST, {**REPLY, "delay_minutes": 60}])
    await add_account(db, smtp.port, email="first@sender.example")
    lead_id = await add_lead(db, campaign, [{"email": "ann@acme.example", "first_name": "Ann"}], due=clock.now)
    await run_once(db, clock)
    await add_account(db, smtp.port, email="idle@sender.example")  # less recently used than the mailbox
    links = unsubscribe_links(Settings(public_url="https://outbound.example.com", secret_key=SECRET))
    later = clock.now + timedelta(minutes=60)

    found = await dry_run(db, Catalog(db), Renderer(), DryRunSender(), now=later, unsubscribe=links)

    [row] = [r for r in found.rows if r.action == SEND]
    step_one = by_step(smtp, lead_id)[1][1]
    assert (row.step_order, row.account, row.subject) == (2, "first@sender.example", "Re: Quick question for Ann")
    assert row.headers is not None
    assert row.headers["In-Reply-To"] == step_one["Message-ID"] == row.headers["References"]
    assert row.headers["List-Unsubscribe"].startswith("<https://outbound.example.com/u/")
    assert row.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # With its mailbox inside a wait window, the follow-up waits for it (the idle account is not taken).
    await db[schema.EMAIL_ACCOUNTS].update_one(
        {"email": "first@sender.example"}, {"$set": {"next_available_at": later + timedelta(minutes=5)}}
    )
    found = await dry_run(db, Catalog(db), Renderer(), DryRunSender(), now=later)
    [row] = found.rows
    assert (row.action, row.send_at) == (WAIT, later + timedelta(minutes=5))
    assert "waits for its mailbox first@sender.example" in (row.problem or "")


def test_debug_template_shows_the_reply_subject_and_thread_headers(cli: Any, sync_db: Any) -> None:
    lead = ObjectId()
    sync_db.campaigns.insert_one(
        {"_id": "c1", "name": "Spring", "status": "active", "sequence_id": "q1", "settings": {}}
    )
    sync_db.sequence_steps.insert_many(
        [
            {"sequence_id": "q1", "step_order": 1, "template_id": "t1", "delay_minutes": 0},
            {"sequence_id": "q1", "step_order": 2, "template_id": "t2", "delay_minutes": 60},
        ]
    )
    sync_db.templates.insert_many([{"_id": "t1", **FIRST}, {"_id": "t2", **REPLY}])
    sync_db.email_accounts.insert_one(
        {"_id": "a1", "email": "bob@sender.example", "smtp_host": "127.0.0.1", "status": "active"}
    )
    first_id = f"<outbound.{lead}.1.0@sender.example>"
    thread = {"account_id": "a1", "subject": "Quick question for Ann", "message_ids": [first_id], "step_order": 1}
    sync_db.campaign_leads.insert_one(
        {
            "_id": lead,
            "campaign_id": "c1",
            "lead_data": [{"email": "ann@acme.example", "first_name": "Ann", "status": "contacted"}],
            "progress": {"current_step_order": 2, "processed_recipients": {}, "threads": {"0": thread}},
        }
    )

    result = cli("debug-template", "c1", "--lead-id", str(lead), "--json")
    text = cli("debug-template", "c1", "--lead-id", str(lead), "--step", "1")

    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)["recipients"]
    assert row["subject"] == "Re: Quick question for Ann"
    assert row["headers"]["In-Reply-To"] == first_id == row["headers"]["References"]
    assert row["headers"]["List-Unsubscribe"].startswith("<mailto:bob@sender.example?subject=unsubscribe")
    assert text.exit_code == 0, text.output
    assert "Subject: Quick question for Ann\nList-Unsubscribe:" in text.stdout
    assert "In-Reply-To" not in text.stdout
