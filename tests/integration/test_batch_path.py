"""The batch path: a claimed batch shares its round trips, and every lead still gets its one-lead outcome."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.errors import AutoReconnect
from structlog.testing import capture_logs

from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions, DispatcherStats
from app.store import leases, ledger, schema
from app.store.client import Database, make_client
from app.transport.mailbox import Fault, MailboxServer
from app.transport.smtp import SmtpSender
from tests.factories import CommandCounter, add_account, add_campaign, add_lead


async def run_batch(db: Database, **options: Any) -> DispatcherStats:
    sender = SmtpSender(timeout=10)
    try:
        opts = DispatcherOptions(once=True, poll_interval=0.05, **{"concurrency": 20, **options})
        return await build_dispatcher(db, Settings(), sender, opts).run()
    finally:
        await sender.close()


async def test_a_mixed_batch_gives_each_lead_its_own_outcome_and_exact_counters(db, tmp_path) -> None:
    def bounce(stage: str, value: str) -> Fault | None:
        return Fault(550, "5.1.1 User unknown") if stage == "rcpt" and value.startswith("gone@") else None

    async with MailboxServer(tmp_path / "mail", fault=bounce) as server:
        campaign = await add_campaign(db)
        for n in range(3):
            await add_account(db, server.port, email=f"s{n}@example.com")
        plain = [await add_lead(db, campaign, [{"email": f"p{i}@x.example"}]) for i in range(8)]
        gone = await add_lead(db, campaign, [{"email": "gone@x.example"}])
        unsubscribed = await add_lead(db, campaign, [{"email": "u@x.example", "status": "unsubscribed"}])
        suppressed = await add_lead(db, campaign, [{"email": "s@blocked.example"}])
        await db[schema.SUPPRESSIONS].insert_one({"value": "blocked.example", "reason": "complaint"})
        # A crash left this one sent in the ledger but not on the lead: it must be recorded, not sent again.
        already = await add_lead(db, campaign, [{"email": "done@x.example"}])
        await db[schema.SENDS].insert_one(
            {
                "_id": ledger.send_id(already, 1, 0),
                "lead_id": already,
                "step_order": 1,
                "recipient_index": 0,
                "campaign_id": campaign,
                "email": "done@x.example",
                "message_id": f"<outbound.{already}.1.0@example.com>",
                "account_id": "earlier",
                "attempts": 1,
                "state": "sent",
                "token": "t",
            }
        )

        stats = await run_batch(db)
        messages = list(server.messages)

    assert stats.outcomes == Counter({"sent": 9, "failed": 1, "skipped": 2})  # the ledger's "sent" is recorded
    assert sorted(m.recipients[0] for m in messages) == sorted(f"p{i}@x.example" for i in range(8))
    leads = {doc["_id"]: doc async for doc in db[schema.CAMPAIGN_LEADS].find()}
    for lead_id in [*plain, already]:
        assert leads[lead_id]["lead_data"][0]["status"] == "contacted"
        assert leads[lead_id]["progress"]["completed"] is True
        assert "lease_token" not in leads[lead_id]["progress"]
    assert leads[gone]["lead_data"][0]["status"] == "bounced"
    assert leads[unsubscribed]["progress"]["processed_recipients"]["step_1_recipient_0"]["status"] == "skipped"
    assert "suppressed" in leads[suppressed]["progress"]["processed_recipients"]["step_1_recipient_0"]["error"]
    # One activity per attempt, and the counters add up: 8 sends committed, the bounce and the ledger's
    # earlier send given back.
    kinds = Counter([a["type"] async for a in db[schema.ACTIVITIES].find()])
    assert kinds == Counter({"sent": 9, "failed": 1, "skipped": 2})
    usage = [u async for u in db[schema.ACCOUNT_USAGE].find()]
    assert sum(u["sent"] for u in usage) == sum(u["committed"] for u in usage) == 8
    states = Counter([s["state"] async for s in db[schema.SENDS].find()])
    assert states == Counter({"sent": 9, "failed": 1})


async def _commands_for_forty(
    db: Database, mongo_uri: str, db_name: str, port: int, accounts: int
) -> tuple[DispatcherStats, Counter[str]]:
    """Send 40 one-recipient leads over `accounts` accounts in batches of 20; the database commands it took."""
    campaign = await add_campaign(db)
    for n in range(accounts):
        await add_account(db, port, email=f"s{n}@example.com")
    for i in range(40):
        await add_lead(db, campaign, [{"email": f"p{i}@x.example"}])
    counter = CommandCounter()
    client = make_client(mongo_uri, event_listeners=[counter])
    try:
        await client.admin.command("ping")
        counter.names.clear()
        stats = await run_batch(client[db_name], batch_size=20)
    finally:
        await client.close()
    print(f"\n{len(counter.names)} commands for 40 emails on {accounts} accounts: {Counter(counter.targets)}")
    # Heartbeats (and the reclaims they run) go out on a timer, not per email: left out of the count.
    return stats, Counter(t for t in counter.targets if "dispatchers" not in t)


async def test_a_batch_of_forty_emails_costs_few_round_trips(db, smtp, mongo_uri: str, db_name: str) -> None:
    stats, commands = await _commands_for_forty(db, mongo_uri, db_name, smtp.port, accounts=4)

    assert stats.outcomes == Counter({"sent": 40})
    assert len(await smtp.wait_for(40)) == 40
    # Two batches of 20, each a fixed number of round trips, plus the cold caches and the final empty scan;
    # concurrent cache misses of one batch share one read. Ledger entries are taken and settled a round at a
    # time (one message per account connection: 5 rounds for 20 leads on 4 accounts), so a crash can leave at
    # most one send per connection in doubt: each round marks its reservations in flight (one account_usage
    # write), takes its ledger entries and records them.
    assert sum(commands.values()) <= 70, commands
    assert commands["insert sends"] <= 10
    assert commands["update sends"] <= 10
    assert commands["find campaigns"] <= 3


async def test_a_batch_spread_over_as_many_accounts_takes_one_round(db, smtp, mongo_uri: str, db_name: str) -> None:
    stats, commands = await _commands_for_forty(db, mongo_uri, db_name, smtp.port, accounts=20)

    assert stats.outcomes == Counter({"sent": 40})
    # One round per batch: one ledger insert and one ledger update for each batch of 20.
    assert commands["insert sends"] == 2
    assert commands["update sends"] == 2
    assert sum(commands.values()) <= 42, commands


async def test_a_lead_whose_lease_was_taken_mid_batch_is_left_to_its_new_holder(db, smtp) -> None:
    from app.cli.dispatch_cmds import build_dispatcher as build

    campaign = await add_campaign(db)
    await add_account(db, smtp.port, email="s@example.com")
    ids = [await add_lead(db, campaign, [{"email": f"p{i}@x.example"}]) for i in range(3)]
    now = datetime.now(UTC)
    coll = db[schema.CAMPAIGN_LEADS]
    claimed = await leases.claim_many(coll, ids, owner="me", now=now, lease_seconds=60)
    assert sorted(lease.lead_id for _, lease in claimed) == sorted(ids)
    # Another dispatcher takes the first lead over (as after an expired lease) before this batch records.
    stolen = claimed[0][1].lead_id
    await coll.update_one({"_id": stolen}, {"$set": {"progress.lease_token": "theirs"}})

    sender = SmtpSender(timeout=10)
    try:
        worker = build(db, Settings(), sender, DispatcherOptions(once=True)).pipeline
        outcomes = await worker.process_batch(claimed)
    finally:
        await sender.close()

    by_lead = {o.lead_id: o.kind for o in outcomes}
    assert by_lead[stolen] == "lease_lost"
    assert sorted(k for lead, k in by_lead.items() if lead != stolen) == ["sent", "sent"]
    doc = await coll.find_one({"_id": stolen})
    assert doc["progress"]["lease_token"] == "theirs"  # none of this batch's writes landed on it
    assert "processed_recipients" not in doc["progress"] or not doc["progress"]["processed_recipients"]
    assert await db[schema.ACTIVITIES].count_documents({"lead_id": stolen}) == 0
    # Its send is in the ledger, so its new holder records it instead of sending it again.
    assert (await db[schema.SENDS].find_one({"lead_id": stolen}))["state"] == "sent"


async def test_claim_many_takes_only_due_free_leads_and_returns_them_as_claimed(db) -> None:
    campaign = await add_campaign(db)
    now = datetime.now(UTC)
    due = [await add_lead(db, campaign, [{"email": f"d{i}@x.example"}], due=now) for i in range(3)]
    later = await add_lead(db, campaign, [{"email": "later@x.example"}], due=now + timedelta(hours=1))
    coll = db[schema.CAMPAIGN_LEADS]

    first = await leases.claim_many(coll, [*due, later], owner="a", now=now, lease_seconds=30)
    second = await leases.claim_many(coll, [*due, later], owner="b", now=now, lease_seconds=30)

    assert sorted(doc["_id"] for doc, _ in first) == sorted(due)
    assert second == []  # held by "a" until its lease runs out
    for doc, lease in first:
        assert doc["progress"]["lease_token"] == lease.token and lease.owner == "a"
        assert lease.recipients == 1
    after_expiry = await leases.claim_many(coll, due, owner="b", now=now + timedelta(seconds=31), lease_seconds=30)
    assert len(after_expiry) == 3


async def test_finish_many_reads_back_which_attempts_were_recorded(db) -> None:
    coll = db[schema.SENDS]
    now = datetime.now(UTC)
    new = [ledger.NewSend(f"lead{i}", 1, 0, "c", f"p{i}@x.example", f"<m{i}@x>", "acct") for i in range(3)]
    attempts = await ledger.start_many(coll, new, now)
    assert all(isinstance(a, ledger.Attempt) for a in attempts)
    # Another dispatcher declared the second one uncertain meanwhile.
    await coll.update_one({"_id": "lead1:1:0"}, {"$set": {"state": "uncertain"}})

    sent = [ledger.Finish(a, "sent") for a in attempts if isinstance(a, ledger.Attempt)]
    recorded = await ledger.finish_many(coll, sent, now)
    assert recorded == [True, False, True]
    # Repeating it (as after a database error) gives the same answer and changes nothing.
    assert await ledger.finish_many(coll, sent, now) == recorded
    assert (await coll.find_one({"_id": "lead1:1:0"}))["state"] == "uncertain"
    again = await ledger.start_many(coll, new[:1], now)
    assert isinstance(again[0], ledger.Settled) and again[0].state == "sent"


async def test_finish_many_groups_like_outcomes_and_still_fences_each_entry_on_its_token(db) -> None:
    """Outcomes that end alike share one write; an entry another attempt took over (a new token) is untouched,
    though its `_id` is among the group's, and each other entry gets its own outcome."""
    coll = db[schema.SENDS]
    now = datetime.now(UTC)
    new = [ledger.NewSend(f"lead{i}", 1, 0, "c", f"p{i}@x.example", f"<m{i}@x>", "acct") for i in range(6)]
    attempts = [a for a in await ledger.start_many(coll, new, now) if isinstance(a, ledger.Attempt)]
    assert len(attempts) == 6
    # lead2's entry was taken over by another attempt, which holds it in `sending` with its own token.
    await coll.update_one({"_id": "lead2:1:0"}, {"$set": {"token": "another-attempt"}})
    finishes = [
        *(ledger.Finish(a, "sent") for a in attempts[:4]),
        ledger.Finish(attempts[4], "retry_wait", "451 try later", 451),
        ledger.Finish(attempts[5], "failed", "550 no such user", 550),
    ]
    ops = ledger._finish_ops(finishes, now)
    assert len(ops) == 3  # the four sent in one write, then one each
    recorded = await ledger.finish_many(coll, finishes, now)
    assert recorded == [True, True, False, True, True, True]
    states = {d["_id"]: d async for d in coll.find({})}
    assert [states[f"lead{i}:1:0"]["state"] for i in range(6)] == [
        "sent",
        "sent",
        "sending",
        "sent",
        "retry_wait",
        "failed",
    ]
    assert states["lead2:1:0"]["token"] == "another-attempt" and "sent_at" not in states["lead2:1:0"]
    assert states["lead4:1:0"]["last_error"] == "451 try later" and states["lead4:1:0"]["smtp_code"] == 451
    assert states["lead5:1:0"]["smtp_code"] == 550 and "sent_at" not in states["lead5:1:0"]


async def test_leads_beyond_the_free_accounts_wait_together_for_the_earliest_one(
    db, smtp, mongo_uri: str, db_name: str
) -> None:
    campaign = await add_campaign(db, min_wait_time=5)
    for n in range(2):
        await add_account(db, smtp.port, email=f"s{n}@example.com")
    ids = [await add_lead(db, campaign, [{"email": f"p{i}@x.example"}]) for i in range(10)]
    counter = CommandCounter()
    client = make_client(mongo_uri, event_listeners=[counter])
    try:
        await client.admin.command("ping")
        counter.names.clear()
        started = datetime.now(UTC)
        stats = await run_batch(client[db_name], batch_size=10, concurrency=10)
    finally:
        await client.close()

    assert stats.outcomes == Counter({"sent": 2, "no_account": 8})
    assert len(await smtp.wait_for(2)) == 2
    waiting = [doc async for doc in db[schema.CAMPAIGN_LEADS].find({"_id": {"$in": ids}, "progress.completed": None})]
    assert len(waiting) == 8
    for doc in waiting:
        assert "lease_token" not in doc["progress"]
        # Due again when the first account's 5-minute window ends, not before.
        assert doc["progress"]["next_due_at"] >= started + timedelta(minutes=5)
    # The eight were released with one write, not one each (plus one reservation attempt that said why).
    assert Counter(counter.targets)["update campaign_leads"] <= 3, Counter(counter.targets)


async def test_the_bounded_due_range_still_finds_any_past_due_time_and_skips_unscheduled_leads(db) -> None:
    campaign = await add_campaign(db)
    now = datetime.now(UTC).replace(microsecond=0)  # BSON dates keep milliseconds
    ancient = await add_lead(db, campaign, [{"email": "old@x.example"}], due=datetime(1901, 1, 1, tzinfo=UTC))
    recent = await add_lead(db, campaign, [{"email": "new@x.example"}], due=now - timedelta(seconds=1))
    soon = await add_lead(db, campaign, [{"email": "soon@x.example"}], due=now + timedelta(seconds=3))
    later = await add_lead(db, campaign, [{"email": "later@x.example"}], due=now + timedelta(hours=2))
    unscheduled = await add_lead(db, campaign, [{"email": "done@x.example"}])
    coll = db[schema.CAMPAIGN_LEADS]
    await coll.update_one({"_id": unscheduled}, {"$unset": {"progress.next_due_at": ""}})
    await coll.update_one({"_id": later}, {"$set": {"progress.next_due_at": None}})

    found = await leases.find_due(coll, now, campaign, 10, projection={"_id": 1})
    assert [doc["_id"] for doc in found] == [ancient, recent]  # oldest due first
    await coll.delete_many({"_id": {"$in": [ancient, recent]}})
    assert await leases.earliest_due(coll, [campaign], now + timedelta(seconds=5)) == now + timedelta(seconds=3)
    assert await leases.earliest_due(coll, [campaign], now + timedelta(seconds=1)) is None  # past the horizon
    assert soon


async def test_the_due_window_returns_what_the_full_due_query_returns_while_leads_drain(db) -> None:
    campaign = await add_campaign(db)
    now = datetime.now(UTC).replace(microsecond=0)
    coll = db[schema.CAMPAIGN_LEADS]
    await coll.insert_many(
        [
            {
                "campaign_id": campaign,
                "lead_data": [{"email": f"p{i}@x.example", "status": "not_contacted"}],
                # Spread over 200 minutes, in pairs with equal due times (as an import writes them).
                "progress": {"current_step_order": 1, "version": 0, "next_due_at": now - timedelta(minutes=i // 2)},
            }
            for i in range(400)
        ]
    )
    window = leases.DueWindow()
    for _ in range(60):  # 400 leads, 10 claimed per round: drained within 41 rounds
        expected = [d["_id"] for d in await leases.find_due(coll, now, campaign, 12, projection={"_id": 1})]
        got = [d["_id"] for d in await window.find(coll, now, campaign, 12)]
        assert got == expected
        if not got:
            break
        # Claim the first few (they move to the future), as a dispatcher does.
        await coll.update_many({"_id": {"$in": got[:10]}}, {"$set": {"progress.next_due_at": now + timedelta(hours=1)}})
    else:
        raise AssertionError("the due leads did not drain")


async def test_a_lead_written_below_the_window_is_found_by_the_periodic_full_scan(db) -> None:
    campaign = await add_campaign(db)
    now = datetime.now(UTC).replace(microsecond=0)
    coll = db[schema.CAMPAIGN_LEADS]
    ids = [
        await add_lead(db, campaign, [{"email": f"p{i}@x.example"}], due=now - timedelta(seconds=i)) for i in range(5)
    ]
    window = leases.DueWindow(full_every=4)
    assert len(await window.find(coll, now, campaign, 3)) == 3
    straggler = await add_lead(db, campaign, [{"email": "late@x.example"}], due=now - timedelta(days=2))
    seen = []
    for _ in range(4):
        seen.append(straggler in [d["_id"] for d in await window.find(coll, now, campaign, 3)])
    assert seen[-1] and not seen[0]  # missed while the window is narrow, found by the full scan
    assert ids


class _AppliedThenDropped:
    """A `sends` collection whose insert reaches the server and then loses its reply (a network error)."""

    def __init__(self, coll: Any) -> None:
        self._coll = coll

    def __getattr__(self, name: str) -> Any:
        return getattr(self._coll, name)

    async def insert_many(self, docs: Any, **kwargs: Any) -> Any:
        await self._coll.insert_many(docs, **kwargs)
        raise AutoReconnect("connection closed after the insert was applied")


class _TakenBeforeReadBack:
    """A `campaign_leads` collection where another dispatcher claims `taken` between our claim and its read-back
    (as when this process stalls past the lease in between)."""

    def __init__(self, coll: Any, taken: list[Any]) -> None:
        self._coll = coll
        self._taken = taken

    def __getattr__(self, name: str) -> Any:
        return getattr(self._coll, name)

    async def _taken_then_found(self, *args: Any, **kwargs: Any) -> Any:
        await self._coll.update_many({"_id": {"$in": self._taken}}, {"$set": {"progress.lease_token": "theirs"}})
        async for doc in self._coll.find(*args, **kwargs):
            yield doc

    def find(self, *args: Any, **kwargs: Any) -> Any:
        return self._taken_then_found(*args, **kwargs)


async def test_leads_taken_between_the_claim_and_its_read_back_are_not_acted_on_and_are_said_lost(db) -> None:
    campaign = await add_campaign(db)
    ids = [await add_lead(db, campaign, [{"email": f"p{i}@x.example"}]) for i in range(3)]
    leads_coll = _TakenBeforeReadBack(db[schema.CAMPAIGN_LEADS], ids[:2])
    with capture_logs() as logs:
        claimed = await leases.claim_many(leads_coll, ids, owner="vm:1", now=datetime.now(UTC), lease_seconds=60)  # type: ignore[arg-type]
    assert [doc["_id"] for doc, _ in claimed] == ids[2:]
    lost = [e for e in logs if e["event"] == "worker.lease_lost"]
    assert len(lost) == 1 and lost[0]["leads"] == 2, logs


async def test_start_many_reads_the_entries_already_there_in_one_round_trip(db, mongo_uri: str, db_name: str) -> None:
    """Retries, settled sends and a dead attempt's leftover in one batch: one insert, one read of what was there,
    and each entry goes the way `start_attempt` alone would take it."""
    now = datetime.now(UTC)
    base = {"step_order": 1, "recipient_index": 0, "campaign_id": "c", "account_id": "old", "token": "t0"}
    states = ["retry_wait", "retry_wait", "sent", "sending"]
    await db[schema.SENDS].insert_many(
        [
            {
                **base,
                "_id": f"lead{i}:1:0",
                "lead_id": f"lead{i}",
                "message_id": f"<old{i}@x>",
                "state": state,
                "attempts": 1,
            }
            for i, state in enumerate(states)
        ]
    )
    new = [ledger.NewSend(f"lead{i}", 1, 0, "c", f"p{i}@x.example", f"<m{i}@x>", "acct") for i in range(6)]
    counter = CommandCounter()
    client = make_client(mongo_uri, event_listeners=[counter])
    try:
        await client.admin.command("ping")
        counter.names.clear()
        counter.targets.clear()
        got = await ledger.start_many(client[db_name][schema.SENDS], new, now)
    finally:
        await client.close()

    # The retries are taken over with their first Message-ID; the sent one is not sent again; the leftover in
    # `sending` is declared uncertain; the two new ones are inserted.
    assert [(type(a).__name__, a.state if isinstance(a, ledger.Settled) else a.attempts) for a in got] == [
        ("Attempt", 2),
        ("Attempt", 2),
        ("Settled", "sent"),
        ("Settled", "uncertain"),
        ("Attempt", 1),
        ("Attempt", 1),
    ]
    assert [a.message_id for a in got[:2] if isinstance(a, ledger.Attempt)] == ["<old0@x>", "<old1@x>"]
    targets = Counter(counter.targets)
    assert targets["insert sends"] == 1
    # One read of the four entries that were there (the uncertain one is read back once more, as it always was).
    assert targets["find sends"] == 2, targets


async def test_ledger_entries_whose_insert_reply_was_lost_are_removed_not_left_to_turn_uncertain(db) -> None:
    coll = db[schema.SENDS]
    now = datetime.now(UTC)
    new = [ledger.NewSend(f"lead{i}", 1, 0, "c", f"p{i}@x.example", f"<m{i}@x>", "acct") for i in range(3)]
    with pytest.raises(AutoReconnect):
        await ledger.start_many(_AppliedThenDropped(coll), new, now)  # type: ignore[arg-type]

    # Nothing was handed to SMTP: the entries are gone, so the next attempt sends instead of declaring doubt.
    assert await coll.count_documents({}) == 0
    again = await ledger.start_many(coll, new, now)
    assert all(isinstance(a, ledger.Attempt) for a in again)
