"""`run-dispatcher --dry-run` reports what the real run would do now: the same plan, gates, accounts and ledger."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from app.domain.scheduling import next_day_start
from app.store import schema
from app.store.client import Database, make_client
from app.store.schema import ensure_schema
from app.transport.mailbox import MailboxServer
from tests.factories import add_account, add_campaign, add_lead
from tests.integration.test_cli_dispatch import index_snapshot, snapshot

PORT = 2525  # the dry run connects to nothing; the accounts only need a port


def seed(mongo_uri: str, db_name: str, build: Callable[[Database], Awaitable[Any]]) -> Any:
    """Run an async `build(db)` against the test's database, its schema ensured first."""

    async def go() -> Any:
        client = make_client(mongo_uri)
        try:
            await ensure_schema(client[db_name])
            return await build(client[db_name])
        finally:
            await client.close()

    return asyncio.run(go())


def dry_run(cli: Any, *args: str) -> list[dict[str, Any]]:
    result = cli("run-dispatcher", "--dry-run", "--json", *args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def would_send(rows: list[dict[str, Any]]) -> list[str]:
    """The addresses the dry run says would be sent now (every row of the old preview claimed one)."""
    return sorted(r["email"] for r in rows if r.get("action", "send") == "send")


def rows_of(rows: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("action") == action]


async def outbound(cli: Any, *args: str) -> tuple[int, str]:
    """Run the `outbound` command in a child process with the test's environment; (exit code, output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from app.cli.main import main; main()",
        *args,
        cwd=cli.cwd,
        env={**os.environ, **cli.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


def usage_today(sync_db: Any, account_id: str, campaign_id: str, sent: int) -> None:
    day = datetime.now(UTC).date().isoformat()
    sync_db[schema.ACCOUNT_USAGE].insert_one(
        {
            "_id": f"{account_id}:{day}",
            "account_id": account_id,
            "day": day,
            "sent": sent,
            "committed": sent,
            "campaigns": {campaign_id: sent},
        }
    )


def test_reply_from_one_recipient_stops_the_whole_lead(cli, mongo_uri, db_name) -> None:
    async def build(db: Database) -> None:
        campaign = await add_campaign(db)
        await add_account(db, PORT, email="sender@example.com")
        await add_lead(db, campaign, [{"email": "ann@a.example"}, {"email": "bo@a.example", "status": "replied"}])

    seed(mongo_uri, db_name, build)

    rows = dry_run(cli)

    assert would_send(rows) == []
    assert [(r["action"], r["problem"]) for r in rows] == [("stop", "replied")]


def test_suppressed_domain_is_skipped_and_the_colleague_still_sent(cli, mongo_uri, db_name, sync_db) -> None:
    async def build(db: Database) -> None:
        campaign = await add_campaign(db)
        await add_account(db, PORT, email="sender@example.com")
        await add_lead(db, campaign, [{"email": "ann@a.example"}, {"email": "cy@blocked.example"}])

    seed(mongo_uri, db_name, build)
    sync_db[schema.SUPPRESSIONS].insert_one({"value": "blocked.example", "reason": "do_not_contact"})

    rows = dry_run(cli)

    assert would_send(rows) == ["ann@a.example"]
    assert [(r["email"], r["problem"]) for r in rows_of(rows, "skip")] == [
        ("cy@blocked.example", "suppressed (do_not_contact): blocked.example")
    ]
    assert rows[-1]["action"] == "complete"


def test_template_error_reports_the_pause_and_no_send(cli, mongo_uri, db_name) -> None:
    async def build(db: Database) -> None:
        campaign = await add_campaign(db, name="Broken", steps=[{"subject": "Hi {{ nickname }}", "body_text": "x"}])
        await add_account(db, PORT, email="sender@example.com")
        for person in ("ann", "bo"):
            await add_lead(db, campaign, [{"email": f"{person}@a.example"}])

    seed(mongo_uri, db_name, build)

    result = cli("run-dispatcher", "--dry-run")
    rows = dry_run(cli)

    assert would_send(rows) == []
    assert [r["action"] for r in rows] == ["pause", "pause"]  # one batch: both leads meet the error
    assert all(r["problem"].startswith("campaign would pause: template error") for r in rows)
    assert "nickname" in rows[0]["problem"]
    assert "0 emails would be sent now" in result.stdout
    assert "Would be sent now: 0; skipped: 0; waiting: 0; campaigns that would pause: 1." in result.stdout
    assert "campaign Broken would pause: template error" in " ".join(result.stdout.split())


def test_leads_after_the_pausing_batch_are_held(cli, mongo_uri, db_name, sync_db) -> None:
    async def build(db: Database) -> str:
        campaign = await add_campaign(db, steps=[{"subject": "Hi {{ nickname }}", "body_text": "x"}])
        await add_account(db, PORT, email="sender@example.com")
        for person in ("ann", "bo"):
            await add_lead(db, campaign, [{"email": f"{person}@a.example"}])
        return campaign

    campaign = seed(mongo_uri, db_name, build)
    # A campaign's own batch_size wins over --batch-size, as in the dispatcher.
    sync_db[schema.CAMPAIGNS].update_one({"_id": ObjectId(campaign)}, {"$set": {"settings.batch_size": 1}})

    rows = dry_run(cli, "--batch-size", "50")

    assert [r["action"] for r in rows] == ["pause", "wait"]
    assert rows[1]["problem"].startswith("held while the campaign is paused: template error")


def test_uncertain_ledger_entry_is_recorded_not_sent(cli, mongo_uri, db_name, sync_db) -> None:
    async def build(db: Database) -> ObjectId:
        campaign = await add_campaign(db)
        await add_account(db, PORT, email="sender@example.com")
        return await add_lead(db, campaign, [{"email": "ann@a.example"}])

    lead_id = seed(mongo_uri, db_name, build)
    sync_db[schema.SENDS].insert_one(
        {"_id": f"{lead_id}:1:0", "lead_id": lead_id, "step_order": 1, "recipient_index": 0, "state": "uncertain"}
    )

    result = cli("run-dispatcher", "--dry-run")
    rows = dry_run(cli)

    assert would_send(rows) == []
    assert (rows[0]["action"], rows[0]["problem"]) == ("recorded", "already uncertain: recorded, not sent")
    held = rows[1]
    assert held["action"] == "wait" and "awaits resolve-send" in held["problem"]
    assert "0 emails would be sent now" in result.stdout


def test_account_at_max_daily_sends_gets_no_send_and_the_lead_waits_until_tomorrow(
    cli, mongo_uri, db_name, sync_db
) -> None:
    async def build(db: Database) -> tuple[str, str]:
        campaign = await add_campaign(db)
        account = await add_account(db, PORT, email="sender@example.com", max_daily_sends=3)
        await add_lead(db, campaign, [{"email": "ann@a.example"}])
        return campaign, account

    campaign, account = seed(mongo_uri, db_name, build)
    usage_today(sync_db, account, campaign, sent=3)

    rows = dry_run(cli)

    assert would_send(rows) == []
    (row,) = rows
    assert row["action"] == "wait"
    assert row["problem"].startswith(
        "waits for an account: no sending account is free (1 account: 1 at max_daily_sends"
    )
    tomorrow = next_day_start(datetime.now(UTC))
    assert datetime.fromisoformat(row["send_at"]) == tomorrow
    assert f"next try at {tomorrow.isoformat()}" in row["problem"]


def test_campaign_daily_limit_counts_todays_sends_for_that_campaign(cli, mongo_uri, db_name, sync_db) -> None:
    async def build(db: Database) -> tuple[str, str]:
        campaign = await add_campaign(db, daily_limit=2)
        account = await add_account(db, PORT, email="sender@example.com")
        for person in ("ann", "bo"):
            await add_lead(db, campaign, [{"email": f"{person}@a.example"}])
        return campaign, account

    campaign, account = seed(mongo_uri, db_name, build)
    usage_today(sync_db, account, campaign, sent=1)

    rows = dry_run(cli)

    assert would_send(rows) == ["ann@a.example"]  # the oldest due lead is claimed first
    (waiting,) = rows_of(rows, "wait")
    assert "1 at the campaign's daily_limit for today" in waiting["problem"]


def test_account_inside_its_wait_window_gets_no_send(cli, mongo_uri, db_name, sync_db) -> None:
    async def build(db: Database) -> str:
        campaign = await add_campaign(db)
        account = await add_account(db, PORT, email="sender@example.com", min_wait_time=10)
        await add_lead(db, campaign, [{"email": "ann@a.example"}])
        return account

    account = seed(mongo_uri, db_name, build)
    opens = (datetime.now(UTC) + timedelta(minutes=7)).replace(microsecond=0)
    sync_db[schema.EMAIL_ACCOUNTS].update_one({"_id": ObjectId(account)}, {"$set": {"next_available_at": opens}})

    rows = dry_run(cli)

    assert would_send(rows) == []
    (row,) = rows
    assert row["action"] == "wait"
    assert "1 inside their min_wait_time window" in row["problem"]
    assert datetime.fromisoformat(row["send_at"]) == opens


def test_an_account_with_a_wait_window_takes_one_send_now(cli, mongo_uri, db_name) -> None:
    async def build(db: Database) -> None:
        campaign = await add_campaign(db)
        await add_account(db, PORT, email="sender@example.com", min_wait_time=5)
        for person in ("ann", "bo", "cy"):
            await add_lead(db, campaign, [{"email": f"{person}@a.example"}])

    seed(mongo_uri, db_name, build)

    before = datetime.now(UTC)
    rows = dry_run(cli)

    assert would_send(rows) == ["ann@a.example"]
    waiting = rows_of(rows, "wait")
    assert len(waiting) == 2
    assert all("1 inside their min_wait_time window" in r["problem"] for r in waiting)
    assert all(datetime.fromisoformat(r["send_at"]) >= before + timedelta(minutes=5) for r in waiting)


def test_sends_spread_over_accounts_least_recently_used_first(cli, mongo_uri, db_name, sync_db) -> None:
    async def build(db: Database) -> tuple[str, str]:
        campaign = await add_campaign(db)
        used = await add_account(db, PORT, email="used@example.com", min_wait_time=1)
        fresh = await add_account(db, PORT, email="fresh@example.com", min_wait_time=1)
        for person in ("ann", "bo", "cy"):
            await add_lead(db, campaign, [{"email": f"{person}@a.example"}])
        return used, fresh

    used, _ = seed(mongo_uri, db_name, build)
    sync_db[schema.EMAIL_ACCOUNTS].update_one(
        {"_id": ObjectId(used)}, {"$set": {"last_used_at": datetime.now(UTC) - timedelta(hours=1)}}
    )

    rows = dry_run(cli)

    sends = {r["email"]: r["account"] for r in rows_of(rows, "send")}
    # Never used sorts before used an hour ago; each account with a wait takes one.
    assert sends == {"ann@a.example": "fresh@example.com", "bo@a.example": "used@example.com"}
    assert [r["email"] for r in rows if r["action"] == "wait"] == ["cy@a.example"]


def test_more_due_leads_than_the_batch_size_are_all_shown(cli, mongo_uri, db_name) -> None:
    async def build(db: Database) -> None:
        campaign = await add_campaign(db)
        await add_account(db, PORT, email="sender@example.com", max_daily_sends=None)
        for i in range(30):
            await add_lead(db, campaign, [{"email": f"p{i}@a.example"}])

    seed(mongo_uri, db_name, build)

    rows = dry_run(cli, "--batch-size", "5")
    assert len(would_send(rows)) == 30

    result = cli("run-dispatcher", "--dry-run", "--limit", "7")
    assert result.exit_code == 0, result.output
    assert "7 emails would be sent now" in result.stdout
    assert "showing 7 of 30 due leads" in result.stdout
    assert len(would_send(dry_run(cli, "--limit", "7"))) == 7
    assert "showing" not in cli("run-dispatcher", "--dry-run").stdout


def test_dry_run_changes_no_document_and_no_index(cli, mongo_uri, db_name, sync_db) -> None:
    async def build(db: Database) -> tuple[str, str, ObjectId]:
        campaign = await add_campaign(db, min_wait_time=2)
        account = await add_account(db, PORT, email="sender@example.com", min_wait_time=1)
        await add_account(db, PORT, email="other@example.com")
        lead = await add_lead(db, campaign, [{"email": "ann@a.example"}, {"email": "bo@b.example"}])
        await add_lead(db, campaign, [{"email": "cy@c.example"}, {"email": "di@c.example", "status": "replied"}])
        await add_lead(db, campaign, [{"email": "ed@blocked.example"}])
        broken = await add_campaign(db, name="Broken", steps=[{"subject": "{{ nope }}", "body_text": "x"}])
        await add_lead(db, broken, [{"email": "fay@f.example"}])
        return campaign, account, lead

    campaign, account, lead = seed(mongo_uri, db_name, build)
    usage_today(sync_db, account, campaign, sent=1)
    sync_db[schema.SUPPRESSIONS].insert_one({"value": "blocked.example", "reason": "hard_bounce"})
    sync_db[schema.SENDS].insert_one({"_id": f"{lead}:1:1", "lead_id": lead, "state": "sent"})
    documents, indexes = snapshot(sync_db), index_snapshot(sync_db)

    rows = dry_run(cli)
    table = cli("run-dispatcher", "--dry-run")

    assert table.exit_code == 0, table.output
    assert {r["action"] for r in rows} >= {"send", "skip", "stop", "pause"}
    assert snapshot(sync_db) == documents
    assert index_snapshot(sync_db) == indexes


async def test_dry_run_would_send_exactly_what_the_real_run_sends(
    cli, db: Database, sync_db, smtp: MailboxServer
) -> None:
    port = smtp.port
    plain = await add_account(db, port, email="plain@example.com")
    waiting = await add_account(db, port, email="waiting@example.com", min_wait_time=5)
    full = await add_account(db, port, email="full@example.com", max_daily_sends=2)
    first = await add_campaign(db, name="First", account_ids=[plain], steps=[{"subject": "A", "body_text": "a"}])
    await add_lead(db, first, [{"email": "ann@a.example"}, {"email": "bo@a.example"}])
    await add_lead(db, first, [{"email": "cy@c.example"}, {"email": "di@c.example", "status": "replied"}])
    await add_lead(db, first, [{"email": "ed@blocked.example"}, {"email": "eve@e.example"}])
    uncertain = await add_lead(db, first, [{"email": "fay@f.example"}])
    await db[schema.SENDS].insert_one({"_id": f"{uncertain}:1:0", "lead_id": uncertain, "state": "uncertain"})
    await db[schema.SUPPRESSIONS].insert_one({"value": "blocked.example", "reason": "do_not_contact"})
    slow = await add_campaign(db, name="Slow", account_ids=[waiting], steps=[{"subject": "B", "body_text": "b"}])
    await add_lead(db, slow, [{"email": "gus@g.example"}, {"email": "hal@g.example"}])
    capped = await add_campaign(db, name="Capped", account_ids=[full], steps=[{"subject": "C", "body_text": "c"}])
    await add_lead(db, capped, [{"email": "ivy@i.example"}])
    usage_today(sync_db, full, capped, sent=2)
    steps = [{"subject": "S1", "body_text": "1"}, {"subject": "S2", "body_text": "2", "delay_minutes": 0}]
    at_once = await add_campaign(db, name="At once", account_ids=[plain], steps=steps)
    await add_lead(db, at_once, [{"email": "kim@k.example"}])
    steps = [{"subject": "T1", "body_text": "1"}, {"subject": "T2", "body_text": "2", "delay_minutes": 60}]
    later = await add_campaign(db, name="Later", account_ids=[plain], steps=steps)
    await add_lead(db, later, [{"email": "lou@l.example"}])
    broken = await add_campaign(
        db, name="Broken", account_ids=[plain], steps=[{"subject": "{{ x }}", "body_text": "d"}]
    )
    await add_lead(db, broken, [{"email": "jo@j.example"}])

    rows = await asyncio.to_thread(dry_run, cli)
    # In a process of its own: the dispatcher installs signal handlers, and this loop must keep serving SMTP.
    code, output = await outbound(cli, "run-dispatcher", "--once", "--poll-interval", "0.05")

    assert code == 0, output
    predicted = sorted((r["email"], r["account"], r["subject"]) for r in rows if r.get("action", "send") == "send")
    received = sorted((m.recipients[0], m.mail_from, m.parse()["Subject"]) for m in smtp.messages)
    assert predicted == received
    assert [email for email, _, _ in predicted] == [
        "ann@a.example",
        "bo@a.example",
        "eve@e.example",
        "gus@g.example",
        "kim@k.example",
        "kim@k.example",
        "lou@l.example",
    ]
    advanced = [r for r in rows if r["action"] == "advance"]
    assert [(r["campaign"], r["step_order"]) for r in advanced] == [("At once", 2), ("Later", 2)]
    assert sync_db[schema.CAMPAIGNS].find_one({"name": "Broken"})["status"] == "paused"
