"""README's "Your first campaign", as a new user runs it, from an empty database: accounts, a template, a
campaign and its steps, an Excel export imported, a dispatcher pass that sends, pause and resume, and the same
campaign from one `apply` file. A real database server and a real SMTP server (that requires a login)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.transport.mailbox import MailboxServer, background
from tests.conftest import Cli

EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "imports" / "excel_semicolon_cp1252.csv"
PASSWORDS = {"ann@sender.example": "ann-Pa55word", "bob@sender.example": "bob-Pa55word"}


@pytest.fixture
def mailbox(tmp_path: Path) -> Any:
    with background(MailboxServer(tmp_path / "mail", users=PASSWORDS)) as server:
        yield server


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return result


def dispatch(cli: Cli) -> dict[str, Any]:
    result = ok(cli("run-dispatcher", "--once", "--json", "--poll-interval", "0.05", "--no-inbox"))
    outcomes: dict[str, Any] = json.loads(result.stdout)["outcomes"]
    return outcomes


def make_due(sync_db: Any) -> None:
    """Time passes: every waiting lead's next step is due now."""
    sync_db.campaign_leads.update_many(
        {"progress.next_due_at": {"$exists": True}}, {"$currentDate": {"progress.next_due_at": True}}
    )


def set_up(cli: Cli, tmp_path: Path, port: int) -> str:
    """The walk-through's set-up commands; the campaign's id."""
    for email, password in PASSWORDS.items():
        ok(
            cli(
                *("account", "add", "--email", email, "--smtp-host", "127.0.0.1", "--smtp-port", str(port)),
                *("--smtp-security", "none", "--sender-name", email.split("@")[0].title(), "--max-daily-sends", "40"),
                "--password-env",
                "SMTP_PASSWORD",
                env={"SMTP_PASSWORD": password},
            )
        )
    (tmp_path / "intro.txt").write_text("Hi {{ first_name }}, a question about {{ company_name }}.\n")
    (tmp_path / "follow-up.txt").write_text("Any thoughts, {{ first_name }}?\n")
    ok(cli("template", "add", "--name", "intro", "--subject", "Quick question", "--body-file", "intro.txt"))
    ok(cli("template", "add", "--name", "follow-up", "--body-file", "follow-up.txt"))
    created = ok(cli("campaign", "create", "--name", "Spring outreach", "--daily-limit", "40", "--json"))
    campaign = str(json.loads(created.stdout)["_id"])
    ok(cli("step", "add", "--campaign-id", campaign, "--template", "intro", "--yes"))
    ok(cli("step", "add", "--campaign-id", campaign, "--template", "follow-up", "--delay-minutes", "2880", "--yes"))
    ok(cli("campaign", "resume", campaign, "--yes"))
    return campaign


def test_your_first_campaign_from_an_empty_database(
    cli: Cli, sync_db: Any, mailbox: MailboxServer, tmp_path: Path
) -> None:
    cli.cwd = tmp_path  # file paths as a user types them, relative to where they run the commands
    campaign = set_up(cli, tmp_path, mailbox.port)
    imported = ok(cli("import-leads", "--campaign-id", campaign, str(EXPORT), "--encoding", "cp1252", "--json"))
    assert json.loads(imported.stdout)["recipients_added"] == 4

    assert dispatch(cli) == {"sent": 4}
    first = {m.recipients[0]: m for m in mailbox.messages}
    assert len(first) == 4 and {m.login for m in mailbox.messages} <= set(PASSWORDS)
    rene = first["rene.dubois@lumiere.example"].parse()
    assert rene["Subject"] == "Quick question" and "Hi René, a question about Lumière SARL." in rene.get_content()

    # Pause: the follow-ups fall due, and nothing is sent.
    ok(cli("campaign", "pause", campaign))
    make_due(sync_db)
    assert dispatch(cli) == {}
    assert len(mailbox.messages) == 4
    # Resume: the follow-ups go, each in its recipient's thread, from the account that sent the first message.
    ok(cli("campaign", "resume", campaign, "--yes"))
    assert dispatch(cli) == {"sent": 4}
    for message in mailbox.messages[4:]:
        parsed = message.parse()
        earlier = first[message.recipients[0]]
        assert parsed["Subject"] == "Re: Quick question" and parsed["In-Reply-To"] == earlier.message_id
        assert message.mail_from == earlier.mail_from

    # No password is readable in the database.
    for account in sync_db.email_accounts.find():
        assert account["smtp_password"].startswith("enc:v1:")
        assert all(p not in json.dumps(account, default=str) for p in PASSWORDS.values())

    # The same campaign from one file gives the same documents.
    ok(cli("export", campaign, "-o", "spring.yaml"))
    before = documents(sync_db, campaign)
    applied = ok(cli("apply", "spring.yaml", "--yes"))
    assert "no change" in applied.stdout.lower()
    assert documents(sync_db, campaign) == before
    (tmp_path / "spring.yaml").write_text((tmp_path / "spring.yaml").read_text().replace("Spring outreach", "Copy"))
    ok(cli("apply", "spring.yaml", "--yes"))
    copy = sync_db.campaigns.find_one({"name": "Copy"})
    assert copy is not None and documents(sync_db, str(copy["_id"])) == before


def documents(sync_db: Any, campaign_id: str) -> dict[str, Any]:
    """A campaign's settings, steps and templates as the dispatcher reads them, without ids and timestamps."""
    from bson import ObjectId

    campaign = sync_db.campaigns.find_one({"_id": ObjectId(campaign_id)})
    steps = list(sync_db.sequence_steps.find({"sequence_id": campaign["sequence_id"]}, sort=[("step_order", 1)]))
    templates = []
    for step in steps:
        template = sync_db.templates.find_one({"_id": ObjectId(step["template_id"])})
        templates.append({k: template.get(k) for k in ("name", "subject", "body_text", "body_html")})
    return {
        "status": campaign["status"],
        "settings": {k: v for k, v in campaign["settings"].items() if k != "paused_reason"},
        "steps": [(s["step_order"], s.get("delay_minutes"), s.get("thread")) for s in steps],
        "templates": templates,
    }
