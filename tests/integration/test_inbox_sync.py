"""The inbox loop end to end: real sends over SMTP (aiosmtpd), real answers in a real IMAP server (pymap), the
sync, then another dispatcher pass that must mail only those who may still be mailed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions, DispatcherStats
from app.domain.inbound import SendRef
from app.domain.unsubscribe import mailto_subject
from app.inbound.imap_reader import read_mailbox
from app.inbound.sync import InboxSync
from app.inbound.sync_values import AccountReport, SyncOptions
from app.store import schema
from app.store.client import Database
from app.transport.mailbox import MailboxServer
from app.transport.smtp import SmtpSender
from tests import inbound_messages as im
from tests.factories import add_account, add_campaign, add_lead
from tests.imap_server import ImapServer, StartImapServer, silent_port

ROOT = Path(__file__).resolve().parents[2]
STEPS = [
    {"subject": "Quick question", "body_text": "Hi {{ first_name | default('there') }}"},
    {"subject": "Following up", "body_text": "Any thoughts?", "delay_minutes": 60},
]


async def run_dispatcher(db: Database) -> DispatcherStats:
    sender = SmtpSender(timeout=10)
    try:
        options = DispatcherOptions(once=True, poll_interval=0.05, concurrency=10)
        return await build_dispatcher(db, Settings(), sender, options).run()
    finally:
        await sender.close()


def new_sync(db: Database, owner: str = "test-sync", **options: Any) -> InboxSync:
    return InboxSync(
        db, read_mailbox(10.0), owner=owner, options=SyncOptions(**{"due_only": False, **options}), workers=2
    )


async def sync_once(db: Database, **options: Any) -> list[AccountReport]:
    sync = new_sync(db, **options)
    try:
        return await sync.run_once()
    finally:
        sync.close()


async def read_account(db: Database, smtp: MailboxServer, imap: ImapServer, email: str, port: int | None = None) -> str:
    """A sending account whose mailbox is the pymap user."""
    account = await add_account(db, smtp.port, email=email)
    await db[schema.EMAIL_ACCOUNTS].update_one(
        {"_id": ObjectId(account)},
        {
            "$set": {
                "imap_host": "127.0.0.1",
                "imap_port": port or imap.port,
                "imap_security": "none",
                "imap_username": imap.user,
                "imap_password": imap.password,
            }
        },
    )
    return account


@dataclass
class World:
    campaign: str
    account: str
    account_email: str
    leads: dict[str, ObjectId]  # first recipient's name -> lead

    def ref(self, name: str, index: int = 0) -> SendRef:
        return SendRef(str(self.leads[name]), 1, index)


async def message_id(db: Database, ref: SendRef) -> str:
    doc = await db[schema.SENDS].find_one({"_id": ref.send_key})
    assert doc is not None and doc["state"] == "sent", doc
    return str(doc["message_id"])


async def sent_world(db: Database, smtp: MailboxServer, imap: ImapServer, names: list[list[str]]) -> World:
    """A two-step campaign whose first step went out to every lead (one lead per list of recipients)."""
    campaign = await add_campaign(db, steps=STEPS)
    account = await read_account(db, smtp, imap, imap.user)
    leads = {}
    for group in names:
        recipients = [{"email": f"{n}@{n}corp.example", "first_name": n.title()} for n in group]
        leads[group[0]] = await add_lead(db, campaign, recipients)
    stats = await run_dispatcher(db)
    assert stats.outcomes["sent"] == sum(len(g) for g in names)
    return World(campaign, account, imap.user, leads)


async def lead_doc(db: Database, lead: ObjectId) -> dict[str, Any]:
    doc = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead})
    assert doc is not None
    return doc


async def statuses(db: Database, lead: ObjectId) -> list[str]:
    return [r["status"] for r in (await lead_doc(db, lead))["lead_data"]]


async def answers(db: Database) -> Counter[tuple[str, str]]:
    """(lead id, activity type) of every answer recorded."""
    kinds = ["replied", "auto_reply", "bounced", "soft_bounce", "unsubscribed"]
    found = [(a["lead_id"], a["type"]) async for a in db[schema.ACTIVITIES].find({"type": {"$in": kinds}})]
    return Counter(found)


async def step_two_recipients(db: Database, smtp: MailboxServer) -> set[str]:
    """Make every waiting lead due now, run a dispatcher pass, and say who received step 2."""
    before = len(smtp.messages)
    await db[schema.CAMPAIGN_LEADS].update_many(
        {"progress.next_due_at": {"$exists": True}}, {"$set": {"progress.next_due_at": datetime.now(UTC)}}
    )
    await run_dispatcher(db)
    return {r for m in smtp.messages[before:] for r in m.recipients}


async def test_replies_bounces_and_unsubscribes_stop_exactly_their_recipients(
    db: Database, smtp: MailboxServer, imap_server: ImapServer
) -> None:
    w = await sent_world(
        db,
        smtp,
        imap_server,
        [["ann"], ["bob"], ["cat"], ["dan"], ["eve"], ["fay"], ["gus", "hal"], ["ian"], ["joe"], ["kim"]],
    )
    acct, inbox = w.account_email, "INBOX"
    mid = {name: await message_id(db, w.ref(name)) for name in ("ann", "cat", "dan", "eve", "ian", "kim")}
    hal_mid = await message_id(db, w.ref("gus", 1))
    imap = imap_server
    imap.append(inbox, im.reply(from_addr="ann@anncorp.example", to_addr=acct, in_reply_to=mid["ann"]))
    # A reply that quotes nothing and has no thread headers: matched by the sender's address alone.
    imap.append(inbox, im.reply(from_addr="bob@bobcorp.example", to_addr=acct, in_reply_to=None, quote=False))
    imap.append(inbox, im.out_of_office(from_addr="cat@catcorp.example", to_addr=acct, in_reply_to=mid["cat"]))
    imap.append(inbox, im.dsn_postfix(recipient="dan@dancorp.example", original_message_id=mid["dan"], sender=acct))
    imap.append(
        inbox,
        im.dsn_gmail(
            recipient="eve@evecorp.example",
            original_message_id=mid["eve"],
            sender=acct,
            status="4.2.2",
            action="delayed",
        ),
    )
    imap.append(
        inbox,
        im.unsubscribe_mail(from_addr="fay@faycorp.example", to_addr=acct, token_subject=mailto_subject(w.ref("fay"))),
    )
    imap.append(inbox, im.dsn_m365(recipient="hal@halcorp.example", original_message_id=hal_mid, sender=acct))
    imap.append(inbox, im.dsn_exim(recipient="ian@iancorp.example", original_message_id=mid["ian"], sender=acct))
    imap.append(inbox, im.newsletter(to_addr=acct))
    # A person who never heard from us.
    imap.append(inbox, im.reply(from_addr="zed@elsewhere.example", to_addr=acct, in_reply_to=None, quote=False))

    [report] = await sync_once(db)
    assert report.error is None and report.read == 10
    assert report.classes == Counter({"reply": 2, "auto_reply": 1, "bounce": 4, "unsubscribe": 1, "unrelated": 2}), (
        report.classes
    )
    assert await statuses(db, w.leads["ann"]) == ["replied"]
    assert await statuses(db, w.leads["bob"]) == ["replied"]
    assert await statuses(db, w.leads["cat"]) == ["contacted"]
    assert await statuses(db, w.leads["dan"]) == ["bounced"]
    assert await statuses(db, w.leads["eve"]) == ["contacted"]
    assert await statuses(db, w.leads["fay"]) == ["unsubscribed"]
    assert await statuses(db, w.leads["gus"]) == ["contacted", "bounced"]
    assert await statuses(db, w.leads["ian"]) == ["bounced"]
    for name, reason in (("ann", "replied"), ("bob", "replied"), ("dan", "bounced"), ("fay", "unsubscribed")):
        progress = (await lead_doc(db, w.leads[name]))["progress"]
        assert progress["stopped"] is True and progress["stopped_reason"] == reason, (name, progress)
    for name in ("cat", "eve", "gus", "joe", "kim"):
        assert (await lead_doc(db, w.leads[name]))["progress"]["stopped"] is False, name
    suppressed = {d["value"]: d["reason"] async for d in db[schema.SUPPRESSIONS].find()}
    assert suppressed == {
        "dan@dancorp.example": "bounced",
        "fay@faycorp.example": "unsubscribed",
        "hal@halcorp.example": "bounced",
        "ian@iancorp.example": "bounced",
    }
    recorded = await answers(db)
    assert recorded == Counter(
        {
            (str(w.leads["ann"]), "replied"): 1,
            (str(w.leads["bob"]), "replied"): 1,
            (str(w.leads["cat"]), "auto_reply"): 1,
            (str(w.leads["dan"]), "bounced"): 1,
            (str(w.leads["eve"]), "soft_bounce"): 1,
            (str(w.leads["fay"]), "unsubscribed"): 1,
            (str(w.leads["gus"]), "bounced"): 1,
            (str(w.leads["ian"]), "bounced"): 1,
        }
    )
    ann = await db[schema.ACTIVITIES].find_one({"type": "replied", "lead_id": str(w.leads["ann"])})
    assert ann is not None and ann["inbound"]["matched_by"] == "message-id" and ann["step_order"] == 1
    assert ann["inbound"]["subject"] == "Re: Quick question" and ann["inbound"]["snippet"]
    bob = await db[schema.ACTIVITIES].find_one({"type": "replied", "lead_id": str(w.leads["bob"])})
    assert bob is not None and bob["inbound"]["matched_by"] == "address"

    # Reading never changed the mailbox: nothing was marked read.
    with imap.client() as client:
        client.select_folder(inbox, readonly=True)
        uids = client.search(["ALL"])
        assert len(uids) == 10 and not client.search(["SEEN"])

    # A second sync reads nothing new and changes nothing.
    [again] = await sync_once(db)
    assert again.read == 0 and await answers(db) == recorded

    # The next pass mails step 2 only to those who may still be mailed.
    assert await step_two_recipients(db, smtp) == {
        "cat@catcorp.example",
        "eve@evecorp.example",
        "gus@guscorp.example",
        "joe@joecorp.example",
        "kim@kimcorp.example",
    }


async def test_a_uidvalidity_change_rereads_the_folder_without_applying_anything_twice(
    db: Database, smtp: MailboxServer, imap_server: ImapServer
) -> None:
    w = await sent_world(db, smtp, imap_server, [["ann"], ["bob"]])
    replies = [
        im.reply(from_addr=f"{n}@{n}corp.example", to_addr=w.account_email, in_reply_to=await message_id(db, w.ref(n)))
        for n in ("ann", "bob")
    ]
    # pymap cannot delete INBOX: this account reads a folder of its own (and re-creating it changes its UIDVALIDITY).
    imap_server.create_folder("Replies")
    await db[schema.EMAIL_ACCOUNTS].update_one({"_id": ObjectId(w.account)}, {"$set": {"imap_folders": ["Replies"]}})
    imap_server.append("Replies", replies[0])
    [first] = await sync_once(db)
    assert first.read == 1
    old = await db[schema.INBOUND_SYNC].find_one({"kind": "folder"})
    assert old is not None
    # The folder is re-created (the server's UIDVALIDITY changes) and holds the old message and a new one.
    new_validity = imap_server.recreate_folder("Replies")
    assert new_validity != old["uidvalidity"]
    imap_server.append("Replies", replies[0])
    imap_server.append("Replies", replies[1])
    [second] = await sync_once(db)
    assert second.read == 2  # both read again under the new UIDVALIDITY...
    assert await answers(db) == Counter(  # ...but the old one is not applied twice
        {(str(w.leads["ann"]), "replied"): 1, (str(w.leads["bob"]), "replied"): 1}
    )
    state = await db[schema.INBOUND_SYNC].find_one({"kind": "folder"})
    assert state is not None and state["uidvalidity"] == new_validity
    assert await db[schema.INBOUND].count_documents({"kind": "reply"}) == 2
    [third] = await sync_once(db)
    assert third.read == 0


async def test_an_unreachable_mailbox_is_retried_with_backoff_and_never_stops_the_others(
    db: Database, smtp: MailboxServer, start_imap_server: StartImapServer
) -> None:
    good = start_imap_server()
    w = await sent_world(db, smtp, good, [["ann"]])
    with silent_port() as dead_port:
        broken = await read_account(db, smtp, good, "broken@mail.example", port=dead_port)
        await db[schema.EMAIL_ACCOUNTS].update_one({"_id": ObjectId(broken)}, {"$set": {"imap_port": dead_port}})
        mid = await message_id(db, w.ref("ann"))
        good.append("INBOX", im.reply(from_addr="ann@anncorp.example", to_addr=w.account_email, in_reply_to=mid))
        started = datetime.now(UTC)
        reports = {r.account_id: r for r in await sync_once(db, due_only=True, poll_seconds=30)}
    assert reports[w.account].error is None and reports[w.account].read == 1
    assert await statuses(db, w.leads["ann"]) == ["replied"]
    failed = reports[broken]
    assert failed.error and failed.retry_at is not None and failed.retry_at >= started + timedelta(seconds=59)
    state = await db[schema.INBOUND_SYNC].find_one({"_id": f"account:{broken}"})
    assert state is not None and state["failures"] == 1 and state["last_error"]
    # Not due again before its backoff ends: the next pass leaves it alone.
    [later] = [r for r in await sync_once(db, due_only=True, poll_seconds=30) if r.account_id == broken]
    assert later.skipped and later.error is None


async def test_two_syncs_at_once_read_each_mailbox_once(
    db: Database, smtp: MailboxServer, imap_server: ImapServer
) -> None:
    w = await sent_world(db, smtp, imap_server, [["ann"], ["bob"], ["cat"]])
    for n in ("ann", "bob", "cat"):
        mid = await message_id(db, w.ref(n))
        imap_server.append(
            "INBOX", im.reply(from_addr=f"{n}@{n}corp.example", to_addr=w.account_email, in_reply_to=mid)
        )
    syncs = [new_sync(db, owner=f"sync-{i}") for i in range(2)]
    try:
        results = await asyncio.gather(*(s.run_once() for s in syncs))
    finally:
        for s in syncs:
            s.close()
    reads = [r.read for reports in results for r in reports]
    assert sum(reads) == 3
    assert await db[schema.INBOUND].count_documents({}) == 3
    assert sum((await answers(db)).values()) == 3


async def test_a_dry_run_classifies_and_changes_nothing(
    db: Database, smtp: MailboxServer, imap_server: ImapServer
) -> None:
    w = await sent_world(db, smtp, imap_server, [["ann"]])
    mid = await message_id(db, w.ref("ann"))
    imap_server.append("INBOX", im.reply(from_addr="ann@anncorp.example", to_addr=w.account_email, in_reply_to=mid))
    [report] = await sync_once(db, dry_run=True)
    assert report.read == 1 and report.classes == Counter({"reply": 1})
    assert report.decisions[0]["answers"] == [
        {"answer": "reply", "send": w.ref("ann").send_key, "email": "ann@anncorp.example", "by": "message-id"}
    ]
    assert await statuses(db, w.leads["ann"]) == ["contacted"]
    assert await db[schema.INBOUND].count_documents({}) == 0
    assert await db[schema.INBOUND_SYNC].count_documents({}) == 0


@pytest.mark.slow
async def test_a_sync_killed_mid_pass_resumes_without_reading_or_applying_anything_twice(
    db: Database, smtp: MailboxServer, imap_server: ImapServer, cli_env: dict[str, str]
) -> None:
    names = [[f"p{n:03d}"] for n in range(60)]
    w = await sent_world(db, smtp, imap_server, names)
    for (name,) in names:
        mid = await message_id(db, w.ref(name))
        raw = im.reply(from_addr=f"{name}@{name}corp.example", to_addr=w.account_email, in_reply_to=mid)
        imap_server.append("INBOX", raw)
    env = {**os.environ, **cli_env, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "app.cli.main", "sync-inbox", "--once"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # kill it once it has recorded some of the messages, at most 60 s on
            if await db[schema.INBOUND].count_documents({}) >= 5 or process.poll() is not None:
                break
            await asyncio.sleep(0.1)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    recorded = await db[schema.INBOUND].count_documents({})
    assert recorded >= 5, recorded
    # Its lease runs out (two minutes after it took it): another process takes the mailbox over.
    await db[schema.INBOUND_SYNC].update_many({"kind": "account"}, {"$set": {"lease_until": datetime.now(UTC)}})
    [report] = await sync_once(db)
    assert report.error is None
    assert await db[schema.INBOUND].count_documents({}) == 60
    assert await answers(db) == Counter({(str(w.leads[n]), "replied"): 1 for (n,) in names})
    assert [await statuses(db, w.leads[n]) for (n,) in names] == [["replied"]] * len(names)
    [again] = await sync_once(db)
    assert again.read == 0
