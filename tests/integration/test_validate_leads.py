"""`validate-leads` against a DNS server on loopback with known records, then the dispatcher on the same leads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.store import schema
from app.store.client import make_client
from app.transport.mailbox import MailboxServer, background
from tests.dns_server import dns_server, silent_port
from tests.factories import add_account, add_campaign, add_lead

RECORDS = {
    "mx.example": {"MX": ["10 mail.mx.example"]},
    "host.example": {"A": ["192.0.2.7"]},  # no MX: mail goes to the A address
    "empty.example": {},  # NOERROR, no MX, A or AAAA
    # gone.example: not in the zone, NXDOMAIN
}
NOT_MAILABLE = "recipient is invalid (no MX or A record for {})"


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    with background(MailboxServer(tmp_path / "mail")) as server:
        yield server


def seed(mongo_uri: str, db_name: str, port: int) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        client = make_client(mongo_uri)
        db = client[db_name]
        try:
            campaign = await add_campaign(db, name="Checked")
            await add_account(db, port, email="sender@sender.example")
            people = ["ann@mx.example", "bo@host.example", "cy@empty.example", "di@gone.example"]
            leads = {email: await add_lead(db, campaign, [{"email": email}]) for email in people}
            return {"campaign": campaign, "leads": leads}
        finally:
            await client.close()

    return asyncio.run(go())


def recipient(sync_db: Any, lead_id: Any) -> dict[str, Any]:
    return dict(sync_db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})["lead_data"][0])


def test_domains_without_mail_routing_are_marked_invalid_and_skipped_by_the_dispatcher(
    cli, mongo_uri, db_name, sync_db, mailbox
) -> None:
    ids = seed(mongo_uri, db_name, mailbox.port)
    with dns_server(RECORDS) as (host, port, _):
        env = {"OUTBOUND_DNS_SERVERS": f"{host}:{port}"}
        result = cli("validate-leads", "--campaign-id", ids["campaign"], "--json", env=env)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {d: v["status"] for d, v in report["domains"].items()} == {
        "mx.example": "valid",
        "host.example": "valid",
        "empty.example": "invalid",
        "gone.example": "invalid",
    }
    assert report["domains"]["gone.example"]["reason"] == "domain gone.example does not exist (NXDOMAIN)"
    who = {r["email"]: (r["receives"], r["reason"]) for r in report["recipients"]}
    assert who == {
        "ann@mx.example": (True, "receives step 1"),
        "bo@host.example": (True, "receives step 1"),
        "cy@empty.example": (False, NOT_MAILABLE.format("empty.example")),
        "di@gone.example": (False, NOT_MAILABLE.format("gone.example")),
    }
    assert report["summary"]["marked_invalid"] == 2
    marked = recipient(sync_db, ids["leads"]["cy@empty.example"])
    assert (marked["status"], marked["invalid_reason"]) == ("invalid", "no MX or A record for empty.example")
    assert recipient(sync_db, ids["leads"]["ann@mx.example"])["status"] == "not_contacted"

    # The dry run shows the same verdicts without asking DNS: the stop policy skips the marked recipients.
    rows = json.loads(cli("run-dispatcher", "--dry-run", "--json").stdout)
    skipped = {r["email"]: r["problem"] for r in rows if r["action"] == "skip"}
    assert skipped == {
        "cy@empty.example": NOT_MAILABLE.format("empty.example"),
        "di@gone.example": NOT_MAILABLE.format("gone.example"),
    }
    assert sorted(r["email"] for r in rows if r["action"] == "send") == ["ann@mx.example", "bo@host.example"]

    sent = cli("run-dispatcher", "--once", "--json", "--poll-interval", "0.05")
    assert sent.exit_code == 0, sent.output
    assert sorted(m.recipients[0] for m in mailbox.messages) == ["ann@mx.example", "bo@host.example"]


def test_a_resolver_that_never_answers_leaves_every_domain_unknown_and_marks_nobody(
    cli, mongo_uri, db_name, sync_db, mailbox
) -> None:
    ids = seed(mongo_uri, db_name, mailbox.port)
    with silent_port() as (host, port):
        env = {"OUTBOUND_DNS_SERVERS": f"{host}:{port}"}
        result = cli("validate-leads", "--campaign-id", ids["campaign"], "--timeout", "0.3", "--json", env=env)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {v["status"] for v in report["domains"].values()} == {"unknown"}
    assert "timed out after 0.3 s" in report["domains"]["gone.example"]["reason"]
    assert all(r["receives"] for r in report["recipients"])
    assert report["summary"]["marked_invalid"] == 0
    statuses = {d["lead_data"][0]["status"] for d in sync_db[schema.CAMPAIGN_LEADS].find()}
    assert statuses == {"not_contacted"}


def test_dry_run_reports_and_marks_nobody_and_the_table_says_why(cli, mongo_uri, db_name, sync_db, mailbox) -> None:
    ids = seed(mongo_uri, db_name, mailbox.port)
    with dns_server(RECORDS) as (host, port, asked):
        env = {"OUTBOUND_DNS_SERVERS": f"{host}:{port}"}
        result = cli("validate-leads", "--campaign-id", ids["campaign"], "--dry-run", env=env)

    assert result.exit_code == 0, result.output
    assert "no MX or A record for empty.example" in result.stdout
    assert "4 recipients: 2 receive the next step, 2 do not" in result.stdout
    assert "would mark 2 invalid" in result.stdout
    assert {d["lead_data"][0]["status"] for d in sync_db[schema.CAMPAIGN_LEADS].find()} == {"not_contacted"}
    # One MX question per domain; A and AAAA only where there is no MX.
    expected = [("mx.example", "MX"), ("gone.example", "MX")]
    expected += [(domain, kind) for domain in ("host.example", "empty.example") for kind in ("MX", "A", "AAAA")]
    assert sorted(asked.asked) == sorted(expected)


def test_an_unknown_campaign_is_refused(cli) -> None:
    result = cli("validate-leads", "--campaign-id", "65f0c0ffee0000000000c001")
    assert result.exit_code == 1
    assert "not found" in result.output
