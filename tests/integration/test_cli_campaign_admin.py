"""campaign, template and step commands against a real database: what they write, and refusals that change nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bson import ObjectId

from app.cli.audit_cmds import cli_actor
from app.store import campaigns as campaigns_store
from app.store.client import make_client
from tests.integration.cli_documents import NOW, add_account, ok


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _snapshot(sync_db: Any) -> dict[str, list[dict[str, Any]]]:
    return {
        name: sorted((json.dumps(d, default=str, sort_keys=True) for d in sync_db[name].find()), key=str)
        for name in ("campaigns", "sequence_steps", "templates", "campaign_leads")
    }


def _campaign(cli: Any, name: str = "Spring", *args: str) -> str:
    data = json.loads(ok(cli("campaign", "create", "--name", name, "--json", *args)).stdout)
    return str(data["_id"])


def _template(cli: Any, tmp_path: Path, name: str, subject: str | None = "Hello {{ first_name }}") -> str:
    body = _write(tmp_path, f"{name}.txt", f"Hi {{{{ first_name | default('there') }}}}, this is {name}.\n")
    extra = ["--subject", subject] if subject else []
    data = json.loads(ok(cli("template", "add", "--name", name, "--body-file", body, *extra, "--json")).stdout)
    return str(data["_id"])


def _steps(sync_db: Any, campaign_id: str) -> list[dict[str, Any]]:
    campaign = sync_db.campaigns.find_one({"_id": ObjectId(campaign_id)})
    return list(sync_db.sequence_steps.find({"sequence_id": campaign["sequence_id"]}, sort=[("step_order", 1)]))


def _lead_at(sync_db: Any, campaign_id: str, step: int, **progress: Any) -> None:
    sync_db.campaign_leads.insert_one(
        {
            "campaign_id": campaign_id,
            "created_at": NOW,
            "lead_data": [{"email": f"p{step}-{ObjectId()}@acme.example", "status": "contacted"}],
            "progress": {"current_step_order": step, "stopped": False, "processed_recipients": {}, **progress},
        }
    )


# --- campaign ----------------------------------------------------------------------------------------------------


def test_campaign_create_writes_seed_001s_shape_with_the_accounts_resolved_by_email(cli, sync_db) -> None:
    account = add_account(sync_db, "a@mail.example")
    args = ("--daily-limit", "40", "--min-wait", "4", "--batch-size", "20", "--accounts", "A@mail.example")
    cid = _campaign(cli, "Spring", *args, "--stop-on-reply", "recipient")
    doc = sync_db.campaigns.find_one({"_id": ObjectId(cid)})
    assert doc["name"] == "Spring" and doc["status"] == "draft" and doc["sequence_id"]
    assert doc["settings"] == {
        "daily_limit": 40,
        "min_wait_time": 4.0,
        "batch_size": 20,
        "account_ids": [account],
        "stop_on_reply": "recipient",
    }


def test_campaign_create_refuses_a_taken_name_an_unknown_account_and_a_bad_choice(cli, sync_db) -> None:
    _campaign(cli, "Spring")
    before = _snapshot(sync_db)
    taken = cli("campaign", "create", "--name", "Spring")
    assert taken.exit_code == 1 and "exists already" in taken.stderr
    unknown = cli("campaign", "create", "--name", "Autumn", "--accounts", "nobody@mail.example")
    assert unknown.exit_code == 1 and "nobody@mail.example" in unknown.stderr
    bad = cli("campaign", "create", "--name", "Autumn", "--stop-on-reply", "everyone")
    assert bad.exit_code == 2 and "lead, recipient, none" in bad.stderr
    assert _snapshot(sync_db) == before


def test_campaign_edit_changes_settings_and_an_empty_accounts_list_means_every_active_account(cli, sync_db) -> None:
    account = add_account(sync_db, "a@mail.example")
    cid = _campaign(cli, "Spring", "--accounts", account, "--daily-limit", "10")
    out = ok(cli("campaign", "edit", cid, "--daily-limit", "60", "--accounts", "", "--name", "Spring v2")).stdout
    assert "settings.daily_limit: 10 -> 60" in out
    doc = sync_db.campaigns.find_one({"_id": ObjectId(cid)})
    assert doc["name"] == "Spring v2" and doc["settings"] == {"daily_limit": 60}
    assert "no change" in ok(cli("campaign", "edit", cid, "--daily-limit", "60")).stdout


WINDOW = (
    "--schedule-timezone", "America/New_York", "--schedule-days", "Mon,tue,wed", "--schedule-start", "09:00",
    "--schedule-end", "17:00", "--schedule-blackout", "2025-12-25", "--schedule-blackout", "2026-01-01",
)  # fmt: skip


def test_campaign_create_writes_the_schedule_hourly_limit_and_jitter(cli, sync_db) -> None:
    cid = _campaign(cli, "Spring", *WINDOW, "--recipient-timezone", "--hourly-limit", "5", "--wait-jitter", "6")
    settings = sync_db.campaigns.find_one({"_id": ObjectId(cid)})["settings"]
    assert settings == {
        "hourly_limit": 5,
        "wait_jitter": 6.0,
        "schedule": {
            "timezone": "America/New_York",
            "days": ["mon", "tue", "wed"],
            "start": "09:00",
            "end": "17:00",
            "blackout_dates": ["2025-12-25", "2026-01-01"],
            "recipient_timezone": True,
        },
    }


def test_campaign_edit_changes_one_field_of_the_schedule_and_no_schedule_removes_it(cli, sync_db) -> None:
    cid = _campaign(cli, "Spring", *WINDOW)
    out = ok(cli("campaign", "edit", cid, "--schedule-end", "18:30", "--hourly-limit", "4")).stdout
    assert "settings.hourly_limit: (unset) -> 4" in out and "end 17:00; blackout_dates" in out
    assert "end 18:30; blackout_dates 2025-12-25, 2026-01-01" in out
    schedule = sync_db.campaigns.find_one({"_id": ObjectId(cid)})["settings"]["schedule"]
    assert (schedule["timezone"], schedule["days"], schedule["end"]) == (
        "America/New_York",
        ["mon", "tue", "wed"],
        "18:30",
    )
    assert "no change" in ok(cli("campaign", "edit", cid, "--schedule-end", "18:30")).stdout
    both = cli("campaign", "edit", cid, "--no-schedule", "--schedule-end", "19:00")
    assert both.exit_code == 2 and "--no-schedule" in both.stderr
    ok(cli("campaign", "edit", cid, "--no-schedule"))
    assert "schedule" not in sync_db.campaigns.find_one({"_id": ObjectId(cid)})["settings"]


def test_a_schedule_the_model_refuses_names_the_option_and_writes_nothing(cli, sync_db) -> None:
    cid = _campaign(cli, "Spring", *WINDOW)
    before = _snapshot(sync_db)
    for args, expected in [
        (("--schedule-start", "9:00"), "--schedule-start: must be a local time as HH:MM"),
        (("--schedule-days", "mon,funday"), "--schedule-days: must name days as mon, tue"),
        (("--schedule-timezone", "Mars/Olympus"), "--schedule-timezone: must be an IANA time zone"),
        (("--schedule-blackout", "25/12/2025"), "--schedule-blackout: must be dates as YYYY-MM-DD"),
    ]:
        refused = cli("campaign", "edit", cid, *args)
        assert refused.exit_code == 1 and expected in refused.stderr, refused.stderr
    no_zone = cli("campaign", "create", "--name", "Autumn", "--schedule-start", "09:00", "--schedule-end", "17:00")
    assert no_zone.exit_code == 1 and "--schedule-timezone: must be an IANA time zone" in no_zone.stderr
    assert _snapshot(sync_db) == before


def test_pause_and_resume_a_campaign_and_refuse_what_does_not_apply(cli, sync_db, tmp_path) -> None:
    cid = _campaign(cli, "Spring", "--status", "active")
    no_steps = cli("campaign", "pause", cid)
    ok(no_steps)
    assert sync_db.campaigns.find_one({"_id": ObjectId(cid)})["status"] == "paused"
    refused = cli("campaign", "resume", cid)
    assert refused.exit_code == 1 and "no steps" in refused.stderr
    ok(cli("step", "add", "--campaign-id", cid, "--template", _template(cli, tmp_path, "intro")))
    ok(cli("campaign", "resume", cid))
    assert sync_db.campaigns.find_one({"_id": ObjectId(cid)})["status"] == "active"
    again = cli("campaign", "resume", cid)
    assert again.exit_code == 1 and "is active" in again.stderr
    ok(cli("campaign", "archive", cid, "--yes"))
    assert sync_db.campaigns.find_one({"_id": ObjectId(cid)})["status"] == "completed"
    assert cli("campaign", "pause", cid).exit_code == 1


def test_resume_after_an_automatic_pause_shows_the_reason_asks_and_clears_it(cli, sync_db, tmp_path) -> None:
    cid = _campaign(cli, "Spring", "--status", "active")
    ok(cli("step", "add", "--campaign-id", cid, "--template", _template(cli, tmp_path, "intro")))
    reason = "12 of the last 20 attempts failed (60% >= 50%): check the lead list"
    sync_db.campaigns.update_one(
        {"_id": ObjectId(cid)}, {"$set": {"status": "paused", "paused_reason": reason, "paused_at": NOW}}
    )
    unconfirmed = cli("campaign", "resume", cid)
    assert unconfirmed.exit_code == 1 and reason in unconfirmed.stdout and "--yes" in unconfirmed.stderr
    assert sync_db.campaigns.find_one({"_id": ObjectId(cid)})["status"] == "paused"

    out = ok(cli("campaign", "resume", cid, "--yes")).stdout
    assert "was paused" in out and reason in out
    doc = sync_db.campaigns.find_one({"_id": ObjectId(cid)})
    assert doc["status"] == "active" and "paused_reason" not in doc and "paused_at" not in doc


def test_unknown_campaign_says_not_found(cli, sync_db) -> None:
    missing = str(ObjectId())
    for args in (("campaign", "pause", missing), ("campaign", "edit", missing, "--daily-limit", "1")):
        result = cli(*args)
        assert result.exit_code == 1 and "not found" in result.stderr


# --- template -----------------------------------------------------------------------------------------------------


def test_template_add_reads_seed_001s_subject_line_and_a_follow_up_may_have_no_subject(cli, sync_db, tmp_path) -> None:
    seed_form = _write(tmp_path, "intro.txt", "Subject: Hello {{ first_name }}\nHi there,\nbye\n")
    html = _write(tmp_path, "intro.html", "<p>Hi</p>")
    ok(cli("template", "add", "--name", "intro", "--file", seed_form, "--html-file", html))
    doc = sync_db.templates.find_one({"name": "intro"})
    assert doc["subject"] == "Hello {{ first_name }}" and doc["body_text"] == "Hi there,\nbye\n"
    assert doc["body_html"] == "<p>Hi</p>"

    _template(cli, tmp_path, "bump", subject=None)
    bump = sync_db.templates.find_one({"name": "bump"})
    assert "subject" not in bump and "body_html" not in bump

    listed = json.loads(ok(cli("template", "list", "--json")).stdout)
    assert [t["name"] for t in listed["templates"]] == ["bump", "intro"]
    shown = json.loads(ok(cli("template", "show", "intro", "--json")).stdout)
    assert shown["subject"] == "Hello {{ first_name }}" and shown["campaigns"] == []


def test_template_add_refuses_a_taken_name_a_syntax_error_and_missing_bodies(cli, sync_db, tmp_path) -> None:
    _template(cli, tmp_path, "intro")
    before = _snapshot(sync_db)
    body = _write(tmp_path, "x.txt", "Hi {{ first_name ")
    taken = cli("template", "add", "--name", "intro", "--body-file", _write(tmp_path, "ok.txt", "Hi"))
    assert taken.exit_code == 1 and "exists already" in taken.stderr
    broken = cli("template", "add", "--name", "broken", "--subject", "S", "--body-file", body)
    assert broken.exit_code == 1 and "syntax error" in broken.stderr
    assert cli("template", "add", "--name", "empty").exit_code == 2
    twice = _write(tmp_path, "two.txt", "Subject: A\nbody")
    both = cli("template", "add", "--name", "two", "--file", twice, "--subject", "B")
    assert both.exit_code == 2 and "Subject: line" in both.stderr
    assert _snapshot(sync_db) == before


def test_template_edit_changes_the_body_and_names_the_campaigns_using_it(cli, sync_db, tmp_path) -> None:
    tid = _template(cli, tmp_path, "intro")
    cid = _campaign(cli, "Spring")
    ok(cli("step", "add", "--campaign-id", cid, "--template", "intro"))
    out = ok(cli("template", "edit", "intro", "--body-file", _write(tmp_path, "v2.txt", "Version 2"))).stdout
    assert "used by 1 campaign(s): Spring" in out
    doc = sync_db.templates.find_one({"_id": ObjectId(tid)})
    assert doc["body_text"] == "Version 2" and doc["subject"] == "Hello {{ first_name }}"
    ok(cli("template", "edit", tid, "--no-subject"))
    assert "subject" not in sync_db.templates.find_one({"_id": ObjectId(tid)})


def test_template_lint_reports_undefined_variables_and_sandbox_violations(cli, sync_db, tmp_path) -> None:
    body = _write(tmp_path, "b.txt", "Hi {{ first_name }} at {{ company_name }}, {{ industry }} {{ unsubscribe_url }}")
    ok(cli("template", "add", "--name", "t", "--subject", "For {{ sender_name }}: {{ plan }}", "--body-file", body))
    result = cli("template", "lint", "t", "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [(p["part"], p["kind"], p["detail"].split()[0]) for p in data["problems"]] == [
        ("subject", "undefined", "plan"),
        ("body_text", "undefined", "industry"),
    ]
    assert data["rendered"]["subject"] == "For Sam Sender: <plan>"
    assert "https://outbound.example/u/sample-token" in data["rendered"]["text"]

    fine = ok(cli("template", "lint", "t", "--field", "industry=retail", "--field", "plan=pro")).stdout
    assert "renders for the sample" in fine and "Hi Ada at Example Ltd, retail" in fine

    unsafe = _write(tmp_path, "u.txt", "{{ ''.__class__.__mro__ }}")
    ok(cli("template", "add", "--name", "unsafe", "--subject", "S", "--body-file", _write(tmp_path, "s.txt", "ok")))
    sync_db.templates.update_one({"name": "unsafe"}, {"$set": {"body_text": Path(unsafe).read_text()}})
    flagged = cli("template", "lint", "unsafe")
    assert flagged.exit_code == 1 and "sandbox" in flagged.stdout


def test_template_lint_of_a_follow_up_without_subject_renders_it_as_a_reply(cli, tmp_path) -> None:
    _template(cli, tmp_path, "bump", subject=None)
    out = ok(cli("template", "lint", "bump")).stdout
    assert "only be sent as a reply" in out and "subject: Re: " in out


# --- step ---------------------------------------------------------------------------------------------------------


def test_step_add_list_edit_remove_on_a_campaign_without_leads(cli, sync_db, tmp_path) -> None:
    cid = _campaign(cli, "Spring")
    intro, bump, last = (_template(cli, tmp_path, n) for n in ("intro", "bump", "last"))
    ok(cli("step", "add", "--campaign-id", cid, "--template", "intro"))
    ok(cli("step", "add", "--campaign-id", cid, "--template", last, "--delay-minutes", "2880"))
    ok(cli("step", "add", "--campaign-id", cid, "--template", "bump", "--order", "2", "--delay-minutes", "60",
           "--thread"))  # fmt: skip
    assert [(s["step_order"], s["template_id"], s["delay_minutes"], s.get("thread")) for s in _steps(sync_db, cid)] == [
        (1, intro, 0.0, None),
        (2, bump, 60.0, True),
        (3, last, 2880.0, None),
    ]
    ok(cli("step", "edit", "--campaign-id", cid, "--order", "3", "--delay-minutes", "1440", "--move-to", "2"))
    ok(cli("step", "remove", "--campaign-id", cid, "--order", "3"))
    listed = json.loads(ok(cli("step", "list", "--campaign-id", cid, "--json")).stdout)
    assert [(s["template_name"], s["delay_minutes"]) for s in listed["steps"]] == [("intro", 0.0), ("last", 1440.0)]
    assert sync_db.sequence_steps.count_documents({}) == 2  # the replaced sequences' steps are gone


def test_step_add_refuses_an_unknown_template_or_order_and_changes_nothing(cli, sync_db, tmp_path) -> None:
    cid = _campaign(cli, "Spring")
    _template(cli, tmp_path, "intro")
    before = _snapshot(sync_db)
    unknown = cli("step", "add", "--campaign-id", cid, "--template", "nope")
    assert unknown.exit_code == 1 and "template nope not found" in unknown.stderr
    far = cli("step", "add", "--campaign-id", cid, "--template", "intro", "--order", "3")
    assert far.exit_code == 1 and "has 0 step(s)" in far.stderr
    assert _snapshot(sync_db) == before


def _live(cli: Any, sync_db: Any, tmp_path: Path) -> str:
    """An active campaign with steps intro, bump, last and leads in flight at steps 1 (two) and 2 (one)."""
    cid = _campaign(cli, "Live", "--status", "active")
    for name in ("intro", "bump", "last"):
        _template(cli, tmp_path, name)
        ok(cli("step", "add", "--campaign-id", cid, "--template", name, "--delay-minutes", "60"))
    _lead_at(sync_db, cid, 1)
    _lead_at(sync_db, cid, 1)
    _lead_at(sync_db, cid, 2, processed_recipients={"step_2_recipient_0": {"status": "sent"}})
    return cid


def test_inserting_a_step_before_leads_in_flight_is_refused_even_with_force(cli, sync_db, tmp_path) -> None:
    cid = _live(cli, sync_db, tmp_path)
    _template(cli, tmp_path, "extra")
    before = _snapshot(sync_db)
    result = cli("step", "add", "--campaign-id", cid, "--template", "extra", "--order", "2", "--force", "--yes")
    assert result.exit_code == 1
    assert "1 lead(s) at step 2 (bump) would be sent step 2 (bump) again" in result.stdout
    assert "already had" in result.stderr
    assert _snapshot(sync_db) == before


def test_removing_a_step_leads_have_reached_needs_force_and_says_who_skips_what(cli, sync_db, tmp_path) -> None:
    cid = _live(cli, sync_db, tmp_path)
    before = _snapshot(sync_db)
    refused = cli("step", "remove", "--campaign-id", cid, "--order", "2", "--yes")
    assert refused.exit_code == 1 and "pass --force" in refused.stderr
    assert "1 lead(s) at step 2 (bump) go on with step 3 (last)" in refused.stdout
    assert _snapshot(sync_db) == before

    unconfirmed = cli("step", "remove", "--campaign-id", cid, "--order", "2", "--force")
    assert unconfirmed.exit_code == 1 and "lead(s) concerned" in unconfirmed.stderr
    assert _snapshot(sync_db) == before

    ok(cli("step", "remove", "--campaign-id", cid, "--order", "2", "--force", "--yes"))
    names = [sync_db.templates.find_one({"_id": ObjectId(s["template_id"])})["name"] for s in _steps(sync_db, cid)]
    assert names == ["intro", "last"]
    assert sync_db.campaign_leads.count_documents({"progress.current_step_order": 2}) == 1  # leads keep their number


def test_appending_a_step_and_editing_one_in_place_say_what_changes_for_leads(cli, sync_db, tmp_path) -> None:
    cid = _live(cli, sync_db, tmp_path)
    _template(cli, tmp_path, "extra")
    sync_db.campaign_leads.insert_one(
        {"campaign_id": cid, "lead_data": [{"email": "done@acme.example"}], "progress": {"completed": True}}
    )
    added = cli("step", "add", "--campaign-id", cid, "--template", "extra", "--yes")
    assert "1 completed lead(s) will not get the step(s) added at the end" in ok(added).stdout
    edited = ok(cli("step", "edit", "--campaign-id", cid, "--order", "2", "--template", "extra", "--yes")).stdout
    assert "step 2 (bump) changes: 2 lead(s) before it will get the new version, 1 at it" in edited
    assert len(_steps(sync_db, cid)) == 4


def test_a_pause_from_the_command_line_names_its_operator_and_a_resume_forgets_it(cli, sync_db, tmp_path) -> None:
    cid = _campaign(cli, "Spring", "--status", "active")
    ok(cli("step", "add", "--campaign-id", cid, "--template", _template(cli, tmp_path, "intro")))
    ok(cli("campaign", "pause", cid))
    paused_by = sync_db.campaigns.find_one({"_id": ObjectId(cid)})["paused_by"]
    assert paused_by == {"kind": "cli", "name": cli_actor().name}
    shown = cli("show-campaign", cid, "--json")
    ok(shown)
    assert f"{cli_actor().name} (command line)" in shown.stdout
    ok(cli("campaign", "resume", cid))
    assert "paused_by" not in sync_db.campaigns.find_one({"_id": ObjectId(cid)})


def test_resume_after_an_automatic_pause_says_the_dispatcher_paused_it(cli, sync_db, mongo_uri, tmp_path) -> None:
    cid = _campaign(cli, "Spring", "--status", "active")
    ok(cli("step", "add", "--campaign-id", cid, "--template", _template(cli, tmp_path, "intro")))

    async def pause() -> bool:  # as the dispatcher pauses a campaign whose template fails
        client = make_client(mongo_uri)
        try:
            return await campaigns_store.pause(client[sync_db.name], cid, "template error: step 1", NOW)
        finally:
            await client.close()

    assert asyncio.run(pause())
    resumed = cli("campaign", "resume", cid, "--yes")
    ok(resumed)
    assert "by dispatcher (automatic): template error: step 1" in " ".join(resumed.stdout.split())
    assert "paused_by" not in sync_db.campaigns.find_one({"_id": ObjectId(cid)})
