"""`outbound job ...` and `run-dispatcher --once` with jobs, as a new user runs them: real SecantusDB, real SMTP."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from app.store import schema
from app.transport.mailbox import Fault, MailboxServer, background
from tests.conftest import Cli

FAST_RETRIES = {
    "OUTBOUND_RETRY_BASE_SECONDS": "0.05",
    "OUTBOUND_RETRY_CAP_SECONDS": "0.1",
    "OUTBOUND_PAUSE_MIN_ATTEMPTS": "1000000",
}


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    with background(MailboxServer(tmp_path / "mail")) as server:
        yield server


def seed(sync_db: Any, port: int, accounts: int = 2) -> dict[str, Any]:
    """A template and `accounts` sending accounts on the loopback SMTP server."""
    template = sync_db[schema.TEMPLATES].insert_one(
        {"name": "announce", "subject": "News for {{ first_name | default('you') }}", "body_text": "Hi {{ email }}"}
    )
    ids = []
    for i in range(accounts):
        account = sync_db[schema.EMAIL_ACCOUNTS].insert_one(
            {
                "email": f"sender{i}@example.com",
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "smtp_security": "none",
                "status": "active",
            }
        )
        sync_db[schema.EMAIL_CAMPAIGN_SETTINGS].insert_one({"email_id": str(account.inserted_id), "min_wait_time": 0})
        ids.append(str(account.inserted_id))
    return {"template": str(template.inserted_id), "accounts": ids}


def write_csv(path: Path, count: int, start: int = 0) -> list[str]:
    emails = [f"person{n}@r{n % 5}.example" for n in range(start, start + count)]
    lines = ["email,first_name,country"] + [f"{e},P{n},{'DE' if n % 2 else 'FR'}" for n, e in enumerate(emails)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return emails


def create(cli: Cli, *args: str) -> str:
    result = cli("job", "create", "--name", "Announcement", "--template", "announce", *args, "--json")
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["_id"])


def dispatch(cli: Cli, env: dict[str, str] | None = None) -> None:
    result = cli("run-dispatcher", "--once", "--no-inbox", "--poll-interval", "0.05", env=env)
    assert result.exit_code == 0, result.output


def executions(cli: Cli, job_id: str) -> list[dict[str, Any]]:
    result = cli("job", "executions", job_id, "--json")
    assert result.exit_code == 0, result.output
    found: list[dict[str, Any]] = json.loads(result.stdout)["executions"]
    return found


def make_due(sync_db: Any, job_id: str) -> None:
    """Drive the next tick now rather than waiting for the minute (the real crossing is tested with processes)."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    sync_db[schema.JOBS].update_one({"_id": ObjectId(job_id)}, {"$set": {"next_run_at": past}})


def received(mailbox: MailboxServer) -> collections.Counter[str]:
    return collections.Counter(r for m in mailbox.messages for r in m.recipients)


def test_an_immediate_job_sends_each_of_200_csv_recipients_exactly_once(
    cli: Cli, sync_db: Any, mailbox: MailboxServer, tmp_path: Path
) -> None:
    seed(sync_db, mailbox.port)
    emails = write_csv(tmp_path / "people.csv", 200)
    job_id = create(cli, "--recipient-file", str(tmp_path / "people.csv"))

    dispatch(cli)
    dispatch(cli)  # a second run sends nothing again

    assert received(mailbox) == collections.Counter(emails)
    (execution,) = executions(cli, job_id)
    assert execution["state"] == "completed"
    assert execution["counts"] == {
        "total": 200,
        "sent": 200,
        "failed": 0,
        "skipped": 0,
        "uncertain": 0,
        "pending": 0,
        "dead": 0,
        "percentage": 100.0,
    }
    shown = json.loads(cli("job", "show", job_id, "--json").stdout)
    assert shown["status"] == "completed" and shown["executions"][0]["counts"] == execution["counts"]
    first = mailbox.messages[0].parse()
    assert first["Subject"].startswith("News for P")


def test_a_delayed_job_sends_at_its_time_and_not_before(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db, mailbox.port)
    at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    job_id = create(cli, "--recipients", "ann@a.example,bob@b.example", "--run-at", at.isoformat())

    dispatch(cli)
    assert mailbox.messages == [] and executions(cli, job_id) == []

    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.2)
    dispatch(cli)
    assert sorted(received(mailbox)) == ["ann@a.example", "bob@b.example"]
    assert all(m.received_at >= at for m in mailbox.messages)
    (execution,) = executions(cli, job_id)
    assert execution["state"] == "completed" and execution["scheduled_for"] == at.isoformat()


def test_a_delayed_job_in_the_past_is_refused_unless_allowed(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db, mailbox.port)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    late = ("--name", "Late", "--template", "announce", "--recipients", "a@a.example", "--run-at", past)
    refused = cli("job", "create", *late)
    assert refused.exit_code == 2 and "--run-at" in refused.output and "--allow-past" in refused.output
    assert sync_db[schema.JOBS].count_documents({}) == 0
    job_id = create(cli, "--recipients", "a@a.example", "--run-at", past, "--allow-past")
    dispatch(cli)
    assert list(received(mailbox)) == ["a@a.example"]
    assert executions(cli, job_id)[0]["state"] == "completed"


def test_a_recurring_job_reads_its_file_again_at_every_run_and_keeps_its_history(
    cli: Cli, sync_db: Any, mailbox: MailboxServer, tmp_path: Path
) -> None:
    seed(sync_db, mailbox.port)
    people = tmp_path / "digest.csv"
    first = write_csv(people, 3)
    job_id = create(cli, "--recipient-file", str(people), "--cron", "* * * * *", "--timezone", "Europe/Berlin")
    job = sync_db[schema.JOBS].find_one()
    assert job["schedule"] == "recurring" and job["next_run_at"] > datetime.now(UTC)

    make_due(sync_db, job_id)
    dispatch(cli)
    with people.open("a", encoding="utf-8") as handle:
        handle.write("late@new.example,Late,DE\n")
    make_due(sync_db, job_id)
    dispatch(cli)

    assert received(mailbox) == collections.Counter(first * 2 + ["late@new.example"])
    history = executions(cli, job_id)
    assert [e["counts"]["sent"] for e in history] == [4, 3]  # newest first
    assert all(e["state"] == "completed" for e in history)
    assert sync_db[schema.JOBS].find_one()["status"] == "active"
    assert sync_db[schema.JOBS].find_one()["next_run_at"] > datetime.now(UTC)


def test_a_filter_narrows_the_file_to_the_matching_rows(
    cli: Cli, sync_db: Any, mailbox: MailboxServer, tmp_path: Path
) -> None:
    seed(sync_db, mailbox.port)
    emails = write_csv(tmp_path / "people.csv", 6)
    job_id = create(cli, "--recipient-file", str(tmp_path / "people.csv"), "--recipient-filter", "Country=DE")
    dispatch(cli)
    assert sorted(received(mailbox)) == sorted(emails[1::2])
    assert executions(cli, job_id)[0]["counts"]["total"] == 3


def test_a_missing_file_fails_the_execution_with_the_reason_and_sends_nothing(
    cli: Cli, sync_db: Any, mailbox: MailboxServer, tmp_path: Path
) -> None:
    seed(sync_db, mailbox.port)
    people = tmp_path / "people.csv"
    write_csv(people, 5)
    job_id = create(cli, "--recipient-file", str(people))
    people.unlink()

    dispatch(cli)

    assert mailbox.messages == []
    (execution,) = executions(cli, job_id)
    assert execution["state"] == "failed"
    assert f"recipient file {people} does not exist" in execution["error"]
    shown = cli("job", "executions", job_id)
    assert "does not exist" in shown.output


def test_suppressed_unsubscribed_and_bounced_addresses_are_skipped_with_the_reason(
    cli: Cli, sync_db: Any, mailbox: MailboxServer
) -> None:
    seed(sync_db, mailbox.port)
    suppressed = (("gone@a.example", "unsubscribed"), ("bad@a.example", "bounced"), ("blocked.example", "manual"))
    for value, reason in suppressed:
        sync_db[schema.SUPPRESSIONS].insert_one({"value": value, "reason": reason, "created_at": datetime.now(UTC)})
    job_id = create(cli, "--recipients", "ok@a.example,gone@a.example,bad@a.example,who@blocked.example")

    dispatch(cli)

    assert list(received(mailbox)) == ["ok@a.example"]
    (execution,) = executions(cli, job_id)
    assert execution["counts"]["sent"] == 1 and execution["counts"]["skipped"] == 3
    reasons = {s["email"]: s["error"] for s in execution["skipped_recipients"]}
    assert "unsubscribed" in reasons["gone@a.example"] and "bounced" in reasons["bad@a.example"]
    assert "blocked.example" in reasons["who@blocked.example"]
    assert execution["state"] == "completed"


def test_transient_failures_retry_then_dead_letter_then_retry_dead_sends_them(
    cli: Cli, sync_db: Any, tmp_path: Path
) -> None:
    failing = {"slow@a.example"}

    def fault(stage: str, value: str) -> Fault | None:
        return Fault(451, "try later") if stage == "rcpt" and value in failing else None

    with background(MailboxServer(tmp_path / "mail", fault=fault)) as mailbox:
        seed(sync_db, mailbox.port)
        job_id = create(cli, "--recipients", "slow@a.example", "--max-retries", "2")
        for _ in range(20):  # each --once pass drains what is due; the backoff is a fraction of a second
            dispatch(cli, FAST_RETRIES)
            if executions(cli, job_id)[0]["state"] != "running":
                break
            time.sleep(0.15)
        (execution,) = executions(cli, job_id)
        assert execution["state"] == "failed"  # its every send failed
        assert execution["counts"]["dead"] == 1
        (dead,) = execution["failed_recipients"]
        assert dead["dead_letter"] and "gave up after 3 attempts" in dead["error"] and "try later" in dead["error"]
        assert sync_db[schema.SENDS].find_one()["attempts"] == 3

        failing.clear()
        requeued = cli("job", "retry-dead", execution["_id"], "--json")
        assert requeued.exit_code == 0, requeued.output
        assert [r["email"] for r in json.loads(requeued.stdout)["requeued"]] == ["slow@a.example"]
        dispatch(cli, FAST_RETRIES)
        dispatch(cli, FAST_RETRIES)

        assert list(received(mailbox)) == ["slow@a.example"]
        (execution,) = executions(cli, job_id)
        assert execution["state"] == "completed" and execution["counts"]["sent"] == 1
        assert sync_db[schema.ACTIVITIES].count_documents({"type": "requeued"}) == 1


def test_pause_holds_a_job_resume_runs_it_and_cancel_ends_it(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db, mailbox.port)
    job_id = create(cli, "--recipients", "a@a.example", "--cron", "*/5 * * * *")

    assert cli("job", "pause", job_id).exit_code == 0
    make_due(sync_db, job_id)
    dispatch(cli)
    assert executions(cli, job_id) == [] and mailbox.messages == []
    again = cli("job", "pause", job_id)
    assert again.exit_code == 1 and "is paused" in again.output

    assert cli("job", "resume", job_id).exit_code == 0
    dispatch(cli)
    assert len(executions(cli, job_id)) == 1 and list(received(mailbox)) == ["a@a.example"]

    assert cli("job", "cancel", job_id).exit_code == 0
    job = sync_db[schema.JOBS].find_one()
    assert job["status"] == "cancelled" and "next_run_at" not in job
    refused = cli("job", "resume", job_id)
    assert refused.exit_code == 1 and "cancelled" in refused.output
    assert cli("job", "run-now", job_id).exit_code == 1


def test_run_now_sends_at_once_and_leaves_the_schedule_as_it_was(
    cli: Cli, sync_db: Any, mailbox: MailboxServer
) -> None:
    seed(sync_db, mailbox.port)
    job_id = create(cli, "--recipients", "a@a.example", "--cron", "0 8 * * 1-5")
    before = sync_db[schema.JOBS].find_one()["next_run_at"]

    assert cli("job", "run-now", job_id).exit_code == 0
    dispatch(cli)

    assert list(received(mailbox)) == ["a@a.example"]
    assert sync_db[schema.JOBS].find_one()["next_run_at"] == before
    assert executions(cli, job_id)[0]["trigger"] == "run-now"


def test_a_filter_over_stored_recipients_selects_them_by_field(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db, mailbox.port)
    leads = [("de1@a.example", "DE"), ("fr1@a.example", "FR"), ("de2@b.example", "DE")]
    for email, country in leads:
        sync_db[schema.CAMPAIGN_LEADS].insert_one(
            {"campaign_id": "other", "lead_data": [{"email": email, "country": country}], "progress": {}}
        )
    job_id = create(cli, "--recipient-filter", "country=DE")
    dispatch(cli)
    assert sorted(received(mailbox)) == ["de1@a.example", "de2@b.example"]
    assert executions(cli, job_id)[0]["counts"]["sent"] == 2


@pytest.mark.parametrize(
    ("args", "option", "words"),
    [
        (("--recipients", "a@a.example", "--cron", "61 * * * *"), "--cron", "minute"),
        (("--recipients", "a@a.example", "--cron", "0 8 * 13 *"), "--cron", "month"),
        (("--recipients", "not-an-address"), "--recipients", "invalid"),
        (("--recipients", "a@a.example", "--timezone", "Mars/Base"), "--timezone", "IANA"),
        (("--recipients", "a@a.example", "--campaign-id", "x", "--accounts", "y"), "--accounts", "not both"),
        (("--recipients", "a@a.example", "--max-retries", "21"), "--max-retries", "0 to 20"),
        (("--recipient-file", "nowhere.csv"), "--recipient-file", "does not exist"),
        (("--recipients", "a@a.example", "--accounts", "nobody@x.example"), "--accounts", "not found"),
    ],
)
def test_bad_options_are_refused_naming_the_option_and_nothing_is_stored(
    cli: Cli, sync_db: Any, mailbox: MailboxServer, args: tuple[str, ...], option: str, words: str
) -> None:
    seed(sync_db, mailbox.port)
    result = cli("job", "create", "--name", "Bad", "--template", "announce", *args)
    assert result.exit_code == 2, result.output
    assert option in result.output and words in result.output
    assert sync_db[schema.JOBS].count_documents({}) == 0


def test_an_unknown_template_is_refused_naming_the_option(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db, mailbox.port)
    result = cli("job", "create", "--name", "Bad", "--template", "nope", "--recipients", "a@a.example")
    assert result.exit_code == 2 and "--template nope" in result.output


def test_show_and_executions_draw_progress_bars_and_list_jobs(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db, mailbox.port)
    job_id = create(cli, "--recipients", "a@a.example,b@a.example")
    dispatch(cli)

    shown = cli("job", "show", job_id)
    assert shown.exit_code == 0 and "━" in shown.output and "100" in shown.output and "completed" in shown.output
    listed = cli("job", "list", "--json")
    assert [j["_id"] for j in json.loads(listed.stdout)["jobs"]] == [job_id]
    watched = cli("job", "executions", job_id, "--watch")  # nothing runs: it draws once and returns
    assert watched.exit_code == 0 and "completed" in watched.output
    assert cli("job", "show", "000000000000000000000000").exit_code == 1


def add_campaign(sync_db: Any, **settings: Any) -> str:
    doc = {"name": "Base", "status": "active", "sequence_id": "seq-base", "settings": settings}
    return str(sync_db[schema.CAMPAIGNS].insert_one(doc).inserted_id)


def test_a_job_waits_for_its_campaigns_sending_window(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db, mailbox.port)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%a").lower()
    window = {"timezone": "UTC", "days": [tomorrow], "start": "00:00", "end": "23:59"}
    job_id = create(
        cli, "--recipients", "a@a.example,b@a.example", "--campaign-id", add_campaign(sync_db, schedule=window)
    )

    dispatch(cli)

    assert mailbox.messages == []
    (execution,) = executions(cli, job_id)
    assert execution["state"] == "running" and execution["counts"]["pending"] == 2


def test_a_job_keeps_to_the_accounts_daily_limits(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> None:
    accounts = seed(sync_db, mailbox.port, accounts=1)["accounts"]
    sync_db[schema.EMAIL_CAMPAIGN_SETTINGS].update_many({}, {"$set": {"max_daily_sends": 2}})
    job_id = create(cli, "--recipients", "a@a.example,b@a.example,c@a.example", "--accounts", accounts[0])

    dispatch(cli)

    assert len(mailbox.messages) == 2
    (execution,) = executions(cli, job_id)
    assert execution["counts"]["sent"] == 2 and execution["counts"]["pending"] == 1


def test_a_template_error_holds_the_execution_and_says_why(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> None:
    seed(sync_db, mailbox.port)
    job_id = create(cli, "--recipients", "a@a.example")
    sync_db[schema.TEMPLATES].update_one({"name": "announce"}, {"$set": {"subject": "Hi {{ missing_field }}"}})

    dispatch(cli)

    assert mailbox.messages == []
    (execution,) = executions(cli, job_id)
    assert execution["state"] == "running" and "missing_field" in execution["held_reason"]
    shown = cli("job", "show", job_id)
    assert "is held" in shown.output and f"campaign resume {execution['_id']}" in shown.output


def test_dry_run_names_the_job_runs_that_would_start_and_changes_nothing(
    cli: Cli, sync_db: Any, mailbox: MailboxServer, tmp_path: Path
) -> None:
    seed(sync_db, mailbox.port)
    emails = write_csv(tmp_path / "list.csv", 6)
    sync_db[schema.SUPPRESSIONS].insert_one({"value": emails[0], "reason": "complaint"})
    immediate = create(cli, "--recipient-file", str(tmp_path / "list.csv"))
    broken = create(cli, "--recipient-file", str(tmp_path / "list.csv"))
    later = create(cli, "--recipients", "x@y.example", "--schedule", "delayed", "--run-at", "2099-01-01T00:00:00Z")
    # Its file was moved after the job was made: the run would fail, saying why.
    sync_db[schema.JOBS].update_one({"_id": ObjectId(broken)}, {"$set": {"source.path": str(tmp_path / "no.csv")}})
    assert cli("job", "run-now", later).exit_code == 0  # a pending execution, not started yet
    before = {name: list(sync_db[name].find(sort=[("_id", 1)])) for name in sync_db.list_collection_names()}

    result = cli("run-dispatcher", "--dry-run")

    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert f"({immediate}): a new execution for" in text
    assert "would start with 6 recipients, 1 of them suppressed (skipped)" in text
    assert f"({broken}): a new execution for" in text and "would start and fail:" in text
    assert f"({later}): its pending execution for" in text and "would start with 1 recipient;" in text
    assert text.count(f"({later})") == 1, "its scheduled run in 2099 is not due now"
    after = {name: list(sync_db[name].find(sort=[("_id", 1)])) for name in sync_db.list_collection_names()}
    assert after == before
    assert mailbox.messages == []

    restricted = cli("run-dispatcher", "--dry-run", "--campaign-id", "6b0f00000000000000000000")
    assert immediate not in restricted.output, "a dispatcher restricted to a campaign runs no jobs"
