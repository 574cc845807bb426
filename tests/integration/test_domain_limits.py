"""Per-domain throttles: measured at the SMTP server across accounts, atomic under concurrency, grouped by MX."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.store import schema
from app.store.client import Database, make_client
from app.store.domain_limits import DomainSlots
from app.transport.dns_check import DnsChecker
from app.transport.mailbox import MailboxServer, background
from tests.dns_server import dns_server, silent_port
from tests.factories import add_account, add_campaign, add_lead

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    with background(MailboxServer(tmp_path / "mail")) as server:
        yield server


def seed(mongo_uri: str, db_name: str, port: int, limits: list[dict[str, Any]]) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        client = make_client(mongo_uri)
        db = client[db_name]
        try:
            campaign = await add_campaign(db, name="Throttled")
            for email in ("ann@sender.example", "bob@sender.example"):
                await add_account(db, port, email=email)
            if limits:
                await db[schema.DOMAIN_LIMITS].insert_many(limits)
            people = [f"p{i}@busy.example" for i in range(7)] + ["x@other.example", "y@other.example"]
            leads = {email: await add_lead(db, campaign, [{"email": email}]) for email in people}
            return {"campaign": campaign, "leads": leads}
        finally:
            await client.close()

    return asyncio.run(go())


def next_hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def test_a_domain_limit_holds_across_accounts_and_defers_only_that_domain_to_the_next_hour(
    cli, mongo_uri, db_name, sync_db, mailbox
) -> None:
    ids = seed(mongo_uri, db_name, mailbox.port, [{"domain": "busy.example", "max_per_hour": 3}])
    started = datetime.now(UTC)

    result = cli("run-dispatcher", "--once", "--json", "--poll-interval", "0.05")

    assert result.exit_code == 0, result.output
    delivered = Counter(m.recipients[0].rpartition("@")[2] for m in mailbox.messages)
    assert delivered == {"busy.example": 3, "other.example": 2}
    senders = {m.mail_from for m in mailbox.messages}
    assert senders == {"ann@sender.example", "bob@sender.example"}, "the limit is the domain's, across accounts"
    waiting = [
        doc
        for doc in sync_db[schema.CAMPAIGN_LEADS].find({"lead_data.email": {"$regex": "@busy"}})
        if not doc["progress"].get("completed")
    ]
    assert len(waiting) == 4
    hour = next_hour(started)
    for doc in waiting:
        assert doc["progress"]["next_due_at"].replace(tzinfo=UTC) in (hour, next_hour(hour))
        assert doc["lead_data"][0]["status"] == "not_contacted"
    usage = sync_db[schema.DOMAIN_USAGE].find_one({"bucket": "busy.example"})
    assert usage["count"] == 3
    assert json.loads(result.stdout)["outcomes"]["sent"] == 5
    assert ids["campaign"]


def test_the_default_limit_applies_to_every_domain_without_its_own_row(cli, mongo_uri, db_name, mailbox) -> None:
    seed(mongo_uri, db_name, mailbox.port, [{"domain": "other.example", "max_per_hour": 5}])

    result = cli("run-dispatcher", "--once", "--poll-interval", "0.05", env={"OUTBOUND_DEFAULT_DOMAIN_LIMIT": "2"})

    assert result.exit_code == 0, result.output
    delivered = Counter(m.recipients[0].rpartition("@")[2] for m in mailbox.messages)
    assert delivered == {"busy.example": 2, "other.example": 2}


async def test_concurrent_batches_never_take_more_slots_than_the_hour_has(db: Database) -> None:
    await db[schema.DOMAIN_LIMITS].insert_one({"domain": "busy.example", "max_per_hour": 5, "max_per_day": 8})
    slots = [DomainSlots(db) for _ in range(4)]

    decisions = await asyncio.gather(*(s.reserve(["busy.example"] * 4 + ["free.example"], NOW) for s in slots))

    flat = [d for batch in decisions for d in batch]
    assert sum(1 for d in flat if d.slot and d.slot.bucket == "busy.example") == 5
    assert all(d.wait_until == next_hour(NOW) for d in flat if d.slot is None and d.wait_until)
    assert sum(1 for d in flat if d.slot is None and d.wait_until is None) == 4, "free.example has no limit"
    # The next hour has room again, up to the day's 8.
    later = await slots[0].reserve(["busy.example"] * 5, NOW + timedelta(hours=1))
    assert sum(1 for d in later if d.slot) == 3


async def test_a_slot_given_back_can_be_taken_again(db: Database) -> None:
    await db[schema.DOMAIN_LIMITS].insert_one({"domain": "busy.example", "max_per_hour": 1})
    slots = DomainSlots(db)
    [first] = await slots.reserve(["busy.example"], NOW)
    [second] = await slots.reserve(["busy.example"], NOW)
    assert first.slot is not None and second.slot is None

    await slots.give_back([first.slot])

    [again] = await slots.reserve(["busy.example"], NOW)
    assert again.slot == first.slot


async def test_without_any_limit_a_batch_asks_nothing_of_the_usage_collection(db: Database) -> None:
    slots = DomainSlots(db, reload_seconds=3600)
    decisions = await slots.reserve(["a.example", "b.example"], NOW)
    assert all(d.slot is None and d.wait_until is None for d in decisions)
    assert await db[schema.DOMAIN_USAGE].count_documents({}) == 0


GOOGLE = {
    "gmail.com": {"MX": ["5 gmail-smtp-in.l.google.com"]},
    "workspace.example": {"MX": ["1 aspmx.l.google.com"]},
    "m365.example": {"MX": ["0 m365-example.mail.protection.outlook.com"]},
}


async def test_domains_on_the_same_provider_share_a_limit_grouped_by_mx(db: Database) -> None:
    await db[schema.DOMAIN_LIMITS].insert_one({"domain": "gmail.com", "max_per_hour": 2, "group_by_mx": True})
    with dns_server(GOOGLE) as (host, port, _):
        slots = DomainSlots(db, mx_hosts=DnsChecker([(host, port)], timeout=2).mx_hosts)
        decisions = await slots.reserve(["gmail.com", "workspace.example", "workspace.example", "m365.example"], NOW)

    assert [d.slot.bucket if d.slot else None for d in decisions] == ["mx:google", "mx:google", None, None]
    assert decisions[2].wait_until == next_hour(NOW), "the third Google-hosted recipient waits"
    assert decisions[3].wait_until is None, "Microsoft's domains are not Google's: no limit here"


async def test_without_dns_each_domain_counts_alone(db: Database) -> None:
    await db[schema.DOMAIN_LIMITS].insert_one({"domain": "gmail.com", "max_per_hour": 1, "group_by_mx": True})
    with silent_port() as (host, port):
        slots = DomainSlots(db, mx_hosts=DnsChecker([(host, port)], timeout=0.3).mx_hosts)
        decisions = await slots.reserve(["gmail.com", "workspace.example"], NOW)

    assert [d.slot.bucket if d.slot else None for d in decisions] == ["gmail.com", None]
    assert decisions[1].wait_until is None
