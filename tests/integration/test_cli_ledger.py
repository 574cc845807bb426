"""`list-uncertain` and `resolve-send`: operators settle sends nobody can vouch for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.store import schema
from app.transport.mailbox import Fault, MailboxServer, background
from tests.integration.test_cli_dispatch import seed, snapshot


@pytest.fixture
def uncertain(cli, mongo_uri, db_name, sync_db, tmp_path: Path):
    """Three sends whose connection dropped after DATA: all uncertain."""
    drop = MailboxServer(tmp_path / "mail", fault=lambda stage, _: Fault(drop=True) if stage == "data" else None)
    with background(drop) as server:
        seed(mongo_uri, db_name, server.port)
        result = cli("run-dispatcher", "--once", "--poll-interval", "0.05")
        assert result.exit_code == 0, result.output
    return sorted(d["_id"] for d in sync_db[schema.SENDS].find({"state": "uncertain"}))


def test_list_uncertain_shows_every_send_in_doubt(cli, uncertain) -> None:
    assert len(uncertain) == 3
    result = cli("list-uncertain", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(d["_id"] for d in json.loads(result.stdout)) == uncertain
    table = cli("list-uncertain")
    assert "Found 3 uncertain sends" in table.stdout


def test_resolve_send_as_sent_records_delivery(cli, sync_db, uncertain) -> None:
    send_id = uncertain[0]
    result = cli("resolve-send", send_id, "--sent", "--yes")
    assert result.exit_code == 0, result.output
    send = sync_db[schema.SENDS].find_one({"_id": send_id})
    assert send["state"] == "sent" and send["resolved_by_operator"] is True
    lead = sync_db[schema.CAMPAIGN_LEADS].find_one({"_id": send["lead_id"]})
    key = f"step_{send['step_order']}_recipient_{send['recipient_index']}"
    assert lead["progress"]["processed_recipients"][key]["status"] == "sent"
    assert lead["lead_data"][send["recipient_index"]]["status"] == "contacted"


def test_resolve_send_with_resend_sends_it_exactly_once_more(cli, sync_db, uncertain, tmp_path) -> None:
    send_id = uncertain[0]
    assert cli("resolve-send", send_id, "--resend", "--yes").exit_code == 0
    with background(MailboxServer(tmp_path / "again")) as server:
        sync_db[schema.EMAIL_ACCOUNTS].update_many({}, {"$set": {"smtp_port": server.port}})
        assert cli("run-dispatcher", "--once", "--poll-interval", "0.05").exit_code == 0
        received = [m.message_id for m in server.messages]
    send = sync_db[schema.SENDS].find_one({"_id": send_id})
    assert received == [send["message_id"]]  # only the resolved one; the other uncertain sends stay put
    assert send["state"] == "sent" and send["attempts"] == 2
    assert sync_db[schema.SENDS].count_documents({"state": "uncertain"}) == 2


def test_resolve_send_refuses_bad_requests_and_changes_nothing(cli, sync_db, uncertain) -> None:
    before = snapshot(sync_db)
    assert "exactly one of --sent or --resend" in cli("resolve-send", uncertain[0], "--yes").stderr
    assert "send nope not found" in cli("resolve-send", "nope", "--sent", "--yes").stderr
    refused = cli("resolve-send", uncertain[0], "--sent")  # no terminal, no --yes
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert snapshot(sync_db) == before
    assert cli("resolve-send", uncertain[0], "--sent", "--yes").exit_code == 0
    again = cli("resolve-send", uncertain[0], "--resend", "--yes")
    assert again.exit_code == 1 and "is sent, not uncertain" in again.stderr


def test_an_uncertain_send_holds_its_lead_until_resolve_send_settles_it(cli, sync_db, uncertain, tmp_path) -> None:
    # "cy" is the only recipient of its lead: its step ended uncertain, so the lead waits instead of going on.
    send = sync_db[schema.SENDS].find_one({"email": "cy@b.example"})
    lead = sync_db[schema.CAMPAIGN_LEADS].find_one({"_id": send["lead_id"]})
    assert lead["progress"].get("completed") is not True
    held = lead["progress"]["next_due_at"] - send["updated_at"]
    assert held.total_seconds() > 23 * 3600  # settings.uncertain_after_hours, default 24

    assert cli("resolve-send", send["_id"], "--sent", "--yes").exit_code == 0
    with background(MailboxServer(tmp_path / "again")) as server:
        sync_db[schema.EMAIL_ACCOUNTS].update_many({}, {"$set": {"smtp_port": server.port}})
        assert cli("run-dispatcher", "--once", "--poll-interval", "0.05").exit_code == 0
        received = list(server.messages)
    assert received == []  # settled as delivered: nothing is sent again
    lead = sync_db[schema.CAMPAIGN_LEADS].find_one({"_id": send["lead_id"]})
    assert lead["progress"]["completed"] is True
