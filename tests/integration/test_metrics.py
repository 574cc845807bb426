"""Metrics against a real database, real SMTP and real HTTP: a dispatcher pass counted as the SMTP server saw it,
scraped from the metrics endpoint; the gauges read from the database; `/metrics` of `outbound serve`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from prometheus_client.parser import text_string_to_metric_families

from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions
from app.metrics import gauges, registry
from app.metrics.registry import Metrics
from app.metrics.server import serving
from app.store import schema, suppressions
from app.store.client import Database
from app.transport.mailbox import Fault, MailboxServer
from app.transport.smtp import SmtpSender
from tests.factories import add_account, add_campaign, add_lead
from tests.web_server import running_web

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    """Fresh metrics for this test, counted into by every instrumentation point."""
    fresh = Metrics()
    previous = registry.install(fresh)
    try:
        yield fresh
    finally:
        registry.install(previous)


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text page, by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def emails(samples: Samples, outcome: str, campaign_id: str, account_id: str = "") -> float:
    key = (("account_id", account_id), ("campaign_id", campaign_id), ("outcome", outcome))
    return samples.get(("outbound_emails_total", key), 0.0)


async def run_pass(db: Database) -> None:
    sender = SmtpSender(timeout=10)
    try:
        options = DispatcherOptions(once=True, poll_interval=0.05, concurrency=8)
        await asyncio.wait_for(build_dispatcher(db, Settings(), sender, options).run(), timeout=60)
    finally:
        await sender.close()


async def test_a_dispatcher_pass_is_counted_as_the_smtp_server_saw_it_and_served_on_the_metrics_port(
    db: Database, metrics: Metrics, tmp_path: Path
) -> None:
    leads: dict[str, ObjectId] = {}

    def faults(stage: str, value: str) -> Fault | None:
        if stage == "rcpt" and value.startswith("bounce@"):
            return Fault(550, "5.1.1 no such user")
        if stage == "data" and "drop" in leads and str(leads["drop"]) in value:
            return Fault(drop=True)  # mid-DATA: the message may have been delivered
        return None

    async with MailboxServer(tmp_path / "mail", fault=faults) as server:
        intro = await add_campaign(db, name="Intro to Jane's company")
        sender_a = await add_account(db, server.port, email="a@sender.example")
        paced = await add_campaign(db, name="Paced", account_ids=[])
        sender_b = await add_account(db, server.port, email="b@sender.example", min_wait_time=10)
        await db[schema.CAMPAIGNS].update_one({"_id": ObjectId(intro)}, {"$set": {"settings.account_ids": [sender_a]}})
        await db[schema.CAMPAIGNS].update_one({"_id": ObjectId(paced)}, {"$set": {"settings.account_ids": [sender_b]}})
        late = datetime.now(UTC) - timedelta(seconds=120)
        for n in range(3):
            await add_lead(db, intro, [{"email": f"ok{n}@x.example"}], due=late)
        leads["bounce"] = await add_lead(db, intro, [{"email": "bounce@x.example"}])
        leads["drop"] = await add_lead(db, intro, [{"email": "drop@x.example"}])
        await add_lead(db, intro, [{"email": "jane.doe@x.example"}])
        await suppressions.add(db[schema.SUPPRESSIONS], [("jane.doe@x.example", "manual", "asked")], datetime.now(UTC))
        for n in range(2):
            await add_lead(db, paced, [{"email": f"paced{n}@y.example"}])

        await run_pass(db)
        received = list(server.messages)

    with serving(metrics.registry, "127.0.0.1", 0) as port:
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert page.status_code == 200
    samples = parse(page.text)

    assert len(received) == 4  # ok0..ok2 and the first of the paced campaign
    assert emails(samples, "sent", intro, sender_a) == 3
    assert emails(samples, "sent", paced, sender_b) == 1
    assert sum(
        v for (name, labels), v in samples.items() if name == "outbound_emails_total" and ("outcome", "sent") in labels
    ) == len(received)
    assert emails(samples, "bounced", intro, sender_a) == 1
    assert emails(samples, "uncertain", intro, sender_a) == 1
    assert emails(samples, "skipped", intro) == 1
    # The paced account's wait window held its second lead back once.
    assert samples[("outbound_reservations_refused_total", (("reason", "min_wait_time"),))] == 1
    # Every SMTP exchange was timed: five for account a (three sent, the bounce, the drop), one for b.
    assert samples[("outbound_smtp_send_seconds_count", (("account_id", sender_a),))] == 5
    assert samples[("outbound_smtp_send_seconds_count", (("account_id", sender_b),))] == 1
    # Lateness of the leads whose email went out (sent or uncertain): three were due two minutes ago.
    assert samples[("outbound_scheduling_lateness_seconds_count", ())] == 5
    assert samples[("outbound_scheduling_lateness_seconds_bucket", (("le", "60.0"),))] == 2
    assert samples[("outbound_scheduling_lateness_seconds_bucket", (("le", "300.0"),))] == 5
    # No personal data in any label: ids only, never an address or a campaign's name.
    values = {v for _, labels in samples for _, v in labels}
    assert not any("@" in v or "Jane" in v for v in values)


async def test_the_gauges_read_the_backlog_uncertain_sends_paused_campaigns_and_sync_lag(
    db: Database, metrics: Metrics
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # as the database keeps it (milliseconds)
    busy = await add_campaign(db, name="Busy")
    quiet = await add_campaign(db, name="Quiet")
    await add_campaign(db, name="Held", status="paused")
    await add_campaign(db, name="Also held", status="paused")
    for n in range(4):
        await add_lead(db, busy, [{"email": f"d{n}@x.example"}], due=now - timedelta(minutes=n))
    await add_lead(db, busy, [{"email": "later@x.example"}], due=now + timedelta(hours=1))
    await add_lead(db, quiet, [{"email": "q@x.example"}], due=now + timedelta(hours=1))
    await db[schema.SENDS].insert_many(
        [
            {
                "_id": f"s{n}",
                "lead_id": ObjectId(),
                "step_order": 1,
                "recipient_index": 0,
                "state": state,
                "message_id": f"<m{n}@x>",
            }
            for n, state in enumerate(["uncertain", "sent"])
        ]
    )
    await add_account(db, 2525, email="out@sender.example", status="auth_failed")
    await db[schema.INBOUND_SYNC].insert_many(
        [
            {"_id": "account:a1", "kind": "account", "account_id": "a1", "last_synced_at": now - timedelta(seconds=90)},
            {"_id": "account:a2", "kind": "account", "account_id": "a2"},
        ]
    )

    assert await gauges.refresh(db, metrics.gauges, now)
    samples = parse(metrics.text().decode())

    assert samples[("outbound_due_backlog", (("campaign_id", busy),))] == 4
    assert samples[("outbound_due_backlog", (("campaign_id", quiet),))] == 0
    assert samples[("outbound_uncertain_sends", ())] == 1
    assert samples[("outbound_paused_campaigns", ())] == 2
    assert samples[("outbound_accounts_out_of_rotation", ())] == 1
    assert samples[("outbound_inbox_sync_lag_seconds", (("account_id", "a1"),))] == 90
    assert samples[("outbound_inbox_sync_lag_seconds", (("account_id", "a2"),))] == float("inf")

    # The cap bounds the count (and its cost): past it, the backlog reads as the cap.
    capped = await gauges.read(db, now, cap=3)
    assert capped.due_backlog == {busy: 3, quiet: 0}


def _lead(db: Any, campaign_id: str, due: datetime) -> None:
    db[schema.CAMPAIGN_LEADS].insert_one(
        {
            "campaign_id": campaign_id,
            "lead_data": [{"email": f"{ObjectId()}@x.example", "status": "not_contacted"}],
            "progress": {"current_step_order": 1, "processed_recipients": {}, "next_due_at": due},
        }
    )


def test_metrics_of_outbound_serve_give_the_cluster_view_at_each_scrape(
    sync_db: Any, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    campaign = str(sync_db[schema.CAMPAIGNS].insert_one({"name": "Live", "status": "active"}).inserted_id)
    sync_db[schema.CAMPAIGNS].insert_one({"name": "Stopped", "status": "paused"})
    _lead(sync_db, campaign, now - timedelta(minutes=5))
    sync_db["dispatchers"].insert_one(
        {"_id": "d1", "beat_at": now, "beat_seconds": 2.0, "host": "h", "pid": 1, "started_at": now}
    )
    settings = Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key="r" * 40)

    with running_web(settings) as web:
        first = web.get("/metrics")
        _lead(sync_db, campaign, now - timedelta(minutes=1))
        second = web.get("/metrics")

    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/plain; version=")
    assert first.headers["x-content-type-options"] == "nosniff"
    one, two = parse(first.text), parse(second.text)
    assert one[("outbound_due_backlog", (("campaign_id", campaign),))] == 1
    assert two[("outbound_due_backlog", (("campaign_id", campaign),))] == 2  # read again, not cached
    assert one[("outbound_paused_campaigns", ())] == 1
    assert one[("outbound_dispatchers_alive", ())] == 1
    assert one[("outbound_uncertain_sends", ())] == 0
    # The web process's own counters are not the dispatchers': only the cluster gauges are here.
    assert not any(name.startswith("outbound_emails") for name, _ in one)


def test_run_dispatcher_refuses_a_metrics_port_in_use_and_sends_nothing(cli: Any, sync_db: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = cli("run-dispatcher", "--once", "--no-inbox", "--metrics-port", str(port))
    assert result.exit_code == 1, result.output
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.output
    assert "--metrics-port" in result.output
    assert sync_db["dispatchers"].count_documents({}) == 0


async def test_the_dispatchers_refresh_sets_the_gauges_at_once_and_ends_with_the_block(
    db: Database, metrics: Metrics
) -> None:
    campaign = await add_campaign(db, name="Due")
    await add_lead(db, campaign, [{"email": "due@x.example"}])

    started = asyncio.get_running_loop().time()
    async with gauges.refreshed(db, metrics.gauges):
        for _ in range(200):
            if parse(metrics.text().decode()).get(("outbound_due_backlog", (("campaign_id", campaign),))) == 1:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the gauges were not refreshed")
    # The block ended well before the next refresh was due (30 s): the loop stopped at once.
    assert asyncio.get_running_loop().time() - started < 10
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "metrics-gauges"]
