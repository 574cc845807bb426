"""`report show` and `report send --now` through the CLI, against the test database and a loopback SMTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from app.transport.mailbox import Fault, FaultHook, MailboxServer, background

DAY = "2030-01-01"
NOON = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
CAMPAIGN = ObjectId("66b000000000000000000001")
PAUSED = ObjectId("66b000000000000000000002")
ACCOUNT = ObjectId("66b000000000000000000003")
REPORT_TO = "ops@example.com, founder@example.com"


def seed(sync_db: Any, port: int, *, status: str = "active") -> None:
    sync_db.campaigns.insert_many(
        [
            {"_id": CAMPAIGN, "name": "Spring", "status": "active", "created_at": NOON},
            {
                "_id": PAUSED,
                "name": "Old list",
                "status": "paused",
                "paused_reason": "template error",
                "created_at": NOON,
            },
        ]
    )
    sync_db.email_accounts.insert_one(
        {
            "_id": ACCOUNT,
            "email": "sender@example.com",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "status": status,
        }
    )
    sync_db.email_campaign_settings.insert_one({"email_id": str(ACCOUNT), "max_daily_sends": 10})
    sync_db.account_usage.insert_one({"account_id": str(ACCOUNT), "day": DAY, "sent": 9})
    kinds = ["sent"] * 6 + ["replied", "bounced", "unsubscribed"]
    sync_db.activities.insert_many(
        [{"campaign_id": str(CAMPAIGN), "type": k, "email": "r@lead.example", "created_at": NOON} for k in kinds]
        + [
            {
                "campaign_id": str(CAMPAIGN),
                "type": "sent",
                "email": "r@lead.example",
                "created_at": datetime(2030, 1, 2, tzinfo=UTC),
            }
        ]
    )


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    with background(MailboxServer(tmp_path / "mail")) as server:
        yield server


def refusing(tmp_path: Path, hook: FaultHook) -> MailboxServer:
    return MailboxServer(tmp_path / "refusing", fault=hook)


def test_report_show_json_counts_the_chosen_day(cli: Any, sync_db: Any) -> None:
    seed(sync_db, 2525)
    result = cli("report", "show", "--day", DAY, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["day"] == DAY and report["timezone"] == "UTC"
    spring = next(c for c in report["campaigns"] if c["campaign_id"] == str(CAMPAIGN))
    assert (spring["sent"], spring["replied"], spring["bounced"], spring["unsubscribed"]) == (6, 1, 1, 1)
    assert [a["notes"] for a in report["accounts"]] == [["near its daily limit (9/10, 90%)"]]
    assert [(p["name"], p["reason"]) for p in report["paused"]] == [("Old list", "template error")]
    assert report["subject"].startswith(f"Outbound daily report {DAY}: 6 sent, 1 reply, 1 bounce, 1 unsubscribe")
    assert sync_db.report_runs.count_documents({}) == 0, "showing writes nothing"


def test_report_show_prints_tables_in_the_report_zone(cli: Any, sync_db: Any) -> None:
    seed(sync_db, 2525)
    # In Tokyo (UTC+9) the noon activities fall on 1 January too; the next day's at 09:00 local.
    result = cli("report", "show", "--day", DAY, env={"OUTBOUND_REPORT_TIMEZONE": "Asia/Tokyo"})
    assert result.exit_code == 0, result.output
    assert f"day {DAY} in Asia/Tokyo" in result.stdout
    assert "Campaigns" in result.stdout and "Paused campaigns" in result.stdout and "Old list" in result.stdout


def test_a_bad_day_is_refused(cli: Any) -> None:
    result = cli("report", "show", "--day", "yesterday")
    assert result.exit_code == 2 and "--day" in result.output and "YYYY-MM-DD" in result.output


def test_report_send_now_mails_each_recipient_and_notes_it(cli: Any, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db, mailbox.port)
    result = cli("report", "send", "--now", "--day", DAY, "--json", env={"OUTBOUND_REPORT_TO": REPORT_TO})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["delivered"] == ["ops@example.com", "founder@example.com"] and summary["error"] is None
    assert sorted(r for m in mailbox.messages for r in m.recipients) == ["founder@example.com", "ops@example.com"]
    parsed = mailbox.messages[0].parse()
    assert parsed["Auto-Submitted"] == "auto-generated" and parsed["Subject"].startswith(f"Outbound daily report {DAY}")
    run = sync_db.report_runs.find_one({"_id": DAY})
    assert run is not None and "state" not in run, "an on-demand send leaves the daily claim alone"
    assert [m["delivered"] for m in run["manual"]] == [["ops@example.com", "founder@example.com"]]
    assert sync_db.sends.count_documents({}) == 0, "the report is not a campaign send"


def test_report_send_needs_now_and_recipients(cli: Any) -> None:
    result = cli("report", "send")
    assert result.exit_code == 2 and "--now" in result.output
    result = cli("report", "send", "--now")
    assert result.exit_code == 2 and "OUTBOUND_REPORT_TO" in result.output


def test_report_send_without_a_usable_account_says_what_to_do(cli: Any, sync_db: Any) -> None:
    seed(sync_db, 2525, status="disabled")
    result = cli("report", "send", "--now", env={"OUTBOUND_REPORT_TO": REPORT_TO})
    assert result.exit_code == 1 and "no active email account" in result.output
    result = cli(
        "report", "send", "--now", env={"OUTBOUND_REPORT_TO": REPORT_TO, "OUTBOUND_REPORT_ACCOUNT": str(ACCOUNT)}
    )
    assert (
        result.exit_code == 1 and f"OUTBOUND_REPORT_ACCOUNT={ACCOUNT}" in result.output and "disabled" in result.output
    )
    result = cli("report", "send", "--now", env={"OUTBOUND_REPORT_TO": REPORT_TO, "OUTBOUND_REPORT_ACCOUNT": "nope"})
    assert result.exit_code == 1 and "no email account has that _id" in result.output


def test_an_smtp_refusal_is_shown_in_the_servers_words(cli: Any, sync_db: Any, tmp_path: Path) -> None:
    def refuse(stage: str, value: str) -> Fault | None:
        return (
            Fault(554, "5.7.1 report rejected by policy") if stage == "rcpt" and value.startswith("founder") else None
        )

    with background(refusing(tmp_path, refuse)) as server:
        seed(sync_db, server.port)
        result = cli("report", "send", "--now", "--day", DAY, env={"OUTBOUND_REPORT_TO": REPORT_TO})
        assert [m.recipients for m in server.messages] == [("ops@example.com",)]
    assert result.exit_code == 1
    assert "sent to ops@example.com" in result.stdout
    assert "554 5.7.1 report rejected by policy" in result.output and "founder@example.com" in result.output


def test_run_dispatcher_mails_the_days_report_once(cli: Any, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db, mailbox.port)
    # 00:00 is always past: the report of yesterday is due whenever this runs.
    env = {"OUTBOUND_REPORT_TO": REPORT_TO, "OUTBOUND_REPORT_AT": "00:00"}
    for _ in range(2):
        result = cli("run-dispatcher", "--once", env=env)
        assert result.exit_code == 0, result.output
    assert sorted(r for m in mailbox.messages for r in m.recipients) == ["founder@example.com", "ops@example.com"]
    (run,) = list(sync_db.report_runs.find())
    assert run["state"] == "sent" and run["account_id"] == str(ACCOUNT) and run["attempts"] == 1
