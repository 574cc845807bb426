"""`debug-template` and `test-smtp` through the CLI, against the test database and a real local SMTP server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from app.transport.mailbox import MailboxServer, background

PASSWORD = "s3cret-app-password"
CAMPAIGN = ObjectId("66a000000000000000000001")
LEAD = ObjectId("66a000000000000000000002")
ACCOUNT = ObjectId("66a000000000000000000003")
OTHER_ACCOUNT = ObjectId("66a000000000000000000004")


def seed(sync_db: Any, *, body_text: str = "Hi {{ first_name }},\nwelcome from {{ sender_name }}.") -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    sync_db.campaigns.insert_one(
        {
            "_id": CAMPAIGN,
            "name": "Spring",
            "status": "active",
            "created_at": now,
            "sequence_id": "seq1",
            "settings": {"daily_limit": 10, "min_wait_time": 1, "batch_size": 5},
        }
    )
    sync_db.sequence_steps.insert_many(
        [
            {"sequence_id": "seq1", "step_order": 1, "template_id": "tpl1", "delay_minutes": 0},
            {"sequence_id": "seq1", "step_order": 2, "template_id": "tpl2", "delay_minutes": 60},
        ]
    )
    sync_db.templates.insert_many(
        [
            {"_id": "tpl1", "name": "intro", "subject": "Hello {{ first_name }}", "body_text": body_text},
            {
                "_id": "tpl2",
                "name": "follow-up",
                "body_text": "Subject: Following up, {{ first_name }}\nStill keen?",
                "body_html": "<p>Still keen, {{ company_name | default('friend') }}?</p>",
            },
        ]
    )
    sync_db.email_accounts.insert_many(
        [
            {
                "_id": ACCOUNT,
                "email": "bob@sender.example",
                "smtp_host": "127.0.0.1",
                "smtp_port": 2525,
                "smtp_username": "bob",
                "smtp_password": PASSWORD,
                "status": "active",
                "provider": "custom",
            },
            {
                "_id": OTHER_ACCOUNT,
                "email": "carol@sender.example",
                "smtp_host": "127.0.0.1",
                "smtp_port": 2525,
                "status": "active",
                "provider": "custom",
            },
        ]
    )
    sync_db.email_general_settings.insert_many(
        [
            {"email_id": str(ACCOUNT), "signature": "Bob Smith\nAcme", "sender_name": "Bob Smith"},
            {"email_id": str(OTHER_ACCOUNT), "signature": "", "sender_name": "Carol Jones"},
        ]
    )
    sync_db.campaign_leads.insert_one(
        {
            "_id": LEAD,
            "campaign_id": str(CAMPAIGN),
            "lead_key": "acme",
            "created_at": now,
            "lead_data": [
                {"email": "ann@acme.example", "first_name": "Ann", "status": "not_contacted"},
                {"email": "dan@acme.example", "first_name": "Dan", "company_name": "Acme", "status": "not_contacted"},
            ],
            "progress": {"current_step_order": 1, "stopped": False, "next_due_at": now, "processed_recipients": {}},
        }
    )


def test_debug_template_prints_each_recipients_rendered_email(cli: Any, sync_db: Any) -> None:
    seed(sync_db)
    before = sync_db.campaign_leads.find_one({"_id": LEAD})

    result = cli("debug-template", str(CAMPAIGN), "--lead-id", str(LEAD))

    assert result.exit_code == 0, result.output
    assert "Subject: Hello Ann" in result.stdout
    assert "Subject: Hello Dan" in result.stdout
    assert "Hi Ann,\nwelcome from Bob Smith.\n\n-- \nBob Smith\nAcme" in result.stdout
    assert "account bob@sender.example" in result.stdout
    assert sync_db.campaign_leads.find_one({"_id": LEAD}) == before
    assert sync_db.activities.count_documents({}) == 0
    assert sync_db.sends.count_documents({}) == 0


def test_debug_template_json_for_one_recipient_of_a_chosen_step(cli: Any, sync_db: Any) -> None:
    seed(sync_db)

    result = cli("debug-template", str(CAMPAIGN), "--lead-id", str(LEAD), "--step", "2", "--recipient", "1", "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["ok"], data["step_order"], data["template_id"]) == (True, 2, "tpl2")
    [row] = data["recipients"]
    assert row["recipient_index"] == 1
    assert row["email"] == "dan@acme.example"
    assert row["subject"] == "Following up, Dan"
    assert row["text"].startswith("Still keen?")
    assert row["html"].startswith("<p>Still keen, Acme?</p>")


def test_debug_template_uses_the_account_given(cli: Any, sync_db: Any) -> None:
    seed(sync_db)

    result = cli("debug-template", str(CAMPAIGN), "--lead-id", str(LEAD), "--account-id", str(OTHER_ACCOUNT), "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["account_id"] == str(OTHER_ACCOUNT)
    assert data["recipients"][0]["text"] == "Hi Ann,\nwelcome from Carol Jones."


def test_debug_template_defaults_to_an_account_the_campaign_may_use(cli: Any, sync_db: Any) -> None:
    seed(sync_db)
    sync_db.campaigns.update_one({"_id": CAMPAIGN}, {"$set": {"settings.account_ids": [str(OTHER_ACCOUNT)]}})

    result = cli("debug-template", str(CAMPAIGN), "--lead-id", str(LEAD), "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["account_id"] == str(OTHER_ACCOUNT)


def test_debug_template_missing_variable_exits_1_with_the_error_and_available_variables(cli: Any, sync_db: Any) -> None:
    seed(sync_db, body_text="Hi {{ first_name }} at {{ company_name }}")

    result = cli("debug-template", str(CAMPAIGN), "--lead-id", str(LEAD))

    assert result.exit_code == 1
    assert "template tpl1 (body_text)" in result.stderr
    assert "'company_name' is undefined" in result.stderr
    assert "Available variables:" in result.stderr
    assert "first_name" in result.stderr
    # Dan has a company name, so his email still renders.
    assert "Hi Dan at Acme" in result.stdout


def test_debug_template_json_reports_the_error_per_recipient(cli: Any, sync_db: Any) -> None:
    seed(sync_db, body_text="{{ ''.__class__.__mro__ }}")

    result = cli("debug-template", str(CAMPAIGN), "--lead-id", str(LEAD), "--recipient", "0", "--json")

    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    error = data["recipients"][0]["error"]
    assert error["part"] == "body_text"
    assert "sandbox" in error["reason"] or "unsafe" in error["reason"]
    assert "sender_email" in error["available"]


def test_debug_template_unknown_step_lists_the_steps(cli: Any, sync_db: Any) -> None:
    seed(sync_db)

    result = cli("debug-template", str(CAMPAIGN), "--lead-id", str(LEAD), "--step", "7")

    assert result.exit_code == 1
    assert "no step 7 (steps: 1, 2)" in result.stderr


def test_debug_template_unknown_lead_or_recipient_is_refused(cli: Any, sync_db: Any) -> None:
    seed(sync_db)

    missing = cli("debug-template", str(CAMPAIGN), "--lead-id", str(ObjectId()))
    out_of_range = cli("debug-template", str(CAMPAIGN), "--lead-id", str(LEAD), "--recipient", "5")

    assert missing.exit_code == 1
    assert "not found" in missing.stderr
    assert out_of_range.exit_code == 1
    assert "--recipient 5 does not exist" in out_of_range.stderr


def test_debug_template_refuses_a_lead_of_another_campaign(cli: Any, sync_db: Any) -> None:
    seed(sync_db)
    other = ObjectId()
    sync_db.campaigns.insert_one({"_id": other, "name": "Other", "status": "active", "sequence_id": "seq1"})

    result = cli("debug-template", str(other), "--lead-id", str(LEAD))

    assert result.exit_code == 1
    assert "belongs to campaign" in result.stderr


# --- test-smtp ---------------------------------------------------------------------------------------------------


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    with background(MailboxServer(tmp_path / "mail", users={"bob": PASSWORD})) as server:
        yield server


def point_account_at(sync_db: Any, port: int, **fields: Any) -> None:
    sync_db.email_accounts.update_one({"_id": ACCOUNT}, {"$set": {"smtp_port": port, **fields}})


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_smtp_check_passes_and_reports_each_step(cli: Any, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db)
    point_account_at(sync_db, mailbox.port, smtp_security="none")

    result = cli("test-smtp", str(ACCOUNT), "--timeout", "10")

    assert result.exit_code == 0, result.output
    assert f"connected to 127.0.0.1:{mailbox.port}" in result.stdout
    assert "authenticated as bob" in result.stdout
    assert "SMTP check passed" in result.stdout
    assert PASSWORD not in result.output
    assert mailbox.logins == ["bob"]
    assert mailbox.messages == []


def test_smtp_check_wrong_password_hints_at_credentials(cli: Any, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db)
    point_account_at(sync_db, mailbox.port, smtp_security="none", smtp_password="not-the-password")

    result = cli("test-smtp", str(ACCOUNT), "--timeout", "10")

    assert result.exit_code == 1
    assert "AccountAuthError" in result.stderr
    assert "535" in result.stderr
    assert "password" in result.stderr.split("hint:")[1]
    assert "not-the-password" not in result.output


def test_smtp_check_unreachable_server_hints_at_host_and_port(cli: Any, sync_db: Any) -> None:
    seed(sync_db)
    point_account_at(sync_db, closed_port(), smtp_security="none")

    result = cli("test-smtp", str(ACCOUNT), "--timeout", "5")

    assert result.exit_code == 1
    assert "during connect" in result.stderr
    assert "smtp_host and smtp_port" in result.stderr


def test_smtp_check_tls_failure_hints_at_the_certificate(cli: Any, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db)
    # Implicit TLS against a plain-text server: the handshake fails.
    point_account_at(sync_db, mailbox.port, smtp_security="tls")

    result = cli("test-smtp", str(ACCOUNT), "--timeout", "5")

    assert result.exit_code == 1
    assert "during tls" in result.stderr
    assert "certificate" in result.stderr
    assert mailbox.logins == []


def test_smtp_check_unknown_account_is_refused(cli: Any, sync_db: Any) -> None:
    seed(sync_db)

    result = cli("test-smtp", str(ObjectId()))

    assert result.exit_code == 1
    assert "not found" in result.stderr
