"""apply and export against a real database: the same documents as the CLI writes, idempotent, diff first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bson import ObjectId

from tests.integration.cli_documents import NOW, add_account, ok

SPRING = """\
name: Spring
status: draft
settings:
  daily_limit: 40
  min_wait_time: 4
accounts: [a@mail.example]
templates:
  intro:
    subject: Hello {{ first_name | default('there') }}
    body_text: |
      Hi {{ first_name | default('there') }},
      a short note from {{ sender_name }}.
  bump:
    file: bump.txt
steps:
  - template: intro
  - template: bump
    delay_minutes: 1440
    thread: true
"""
BUMP = "Subject: Quick follow-up\nJust bumping this up.\n"
INTRO_BODY = "Hi {{ first_name | default('there') }},\na short note from {{ sender_name }}.\n"


def _files(tmp_path: Path, text: str = SPRING) -> str:
    (tmp_path / "bump.txt").write_text(BUMP, encoding="utf-8")
    path = tmp_path / "spring.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _documents(sync_db: Any) -> dict[str, Any]:
    """The campaign's documents without ids and timestamps, template ids replaced by names."""
    names = {str(t["_id"]): t["name"] for t in sync_db.templates.find()}
    campaigns = [
        {k: v for k, v in c.items() if k not in ("_id", "created_at", "sequence_id")} for c in sync_db.campaigns.find()
    ]
    steps = [
        {**{k: v for k, v in s.items() if k not in ("_id", "sequence_id")}, "template_id": names[s["template_id"]]}
        for s in sync_db.sequence_steps.find(sort=[("step_order", 1)])
    ]
    templates = sorted(({k: v for k, v in t.items() if k != "_id"} for t in sync_db.templates.find()), key=str)
    return {"campaigns": campaigns, "sequence_steps": steps, "templates": templates}


def _raw(sync_db: Any) -> list[str]:
    return sorted(
        json.dumps(d, default=str, sort_keys=True)
        for name in ("campaigns", "sequence_steps", "templates")
        for d in sync_db[name].find()
    )


def _campaign_id(sync_db: Any) -> str:
    return str(sync_db.campaigns.find_one({"name": "Spring"})["_id"])


def test_the_cli_and_one_apply_file_write_the_same_documents(cli, sync_db, tmp_path) -> None:
    add_account(sync_db, "a@mail.example")
    (tmp_path / "intro.txt").write_text(INTRO_BODY, encoding="utf-8")
    _files(tmp_path)
    subject = "Hello {{ first_name | default('there') }}"
    ok(cli("template", "add", "--name", "intro", "--subject", subject, "--body-file", str(tmp_path / "intro.txt")))
    ok(cli("template", "add", "--name", "bump", "--file", str(tmp_path / "bump.txt")))
    args = ("--daily-limit", "40", "--min-wait", "4", "--accounts", "a@mail.example")
    created = json.loads(ok(cli("campaign", "create", "--name", "Spring", *args, "--json")).stdout)
    cid = str(created["_id"])
    ok(cli("step", "add", "--campaign-id", cid, "--template", "intro"))
    ok(cli("step", "add", "--campaign-id", cid, "--template", "bump", "--delay-minutes", "1440", "--thread"))
    by_cli = _documents(sync_db)
    for name in ("campaigns", "sequence_steps", "templates"):
        sync_db[name].delete_many({})

    out = ok(cli("apply", _files(tmp_path), "--yes")).stdout
    assert "+ campaign Spring: status draft" in out and "+ step 2: template bump, delay 1440 min, thread true" in out
    assert _documents(sync_db) == by_cli


def test_apply_twice_is_no_change_and_export_then_apply_is_no_change(cli, sync_db, tmp_path) -> None:
    add_account(sync_db, "a@mail.example")
    path = _files(tmp_path)
    ok(cli("apply", path, "--yes"))
    stored = _raw(sync_db)
    assert "Spring: no change" in ok(cli("apply", path, "--yes")).stdout
    assert _raw(sync_db) == stored

    exported = tmp_path / "exported.yaml"
    ok(cli("export", _campaign_id(sync_db), "-o", str(exported)))
    text = exported.read_text()
    assert "accounts:\n- a@mail.example" in text and "thread: true" in text
    assert "Spring: no change" in ok(cli("apply", str(exported))).stdout
    assert _raw(sync_db) == stored
    assert ok(cli("export", _campaign_id(sync_db))).stdout == text


def test_the_diff_is_shown_before_anything_is_written(cli, sync_db, tmp_path) -> None:
    add_account(sync_db, "a@mail.example")
    path = _files(tmp_path)
    dry = ok(cli("apply", path, "--dry-run"))
    assert "+ template intro" in dry.stdout and "dry run: nothing was written" in dry.stdout
    assert _raw(sync_db) == []
    unconfirmed = cli("apply", path)
    assert unconfirmed.exit_code == 1 and "+ template bump" in unconfirmed.stdout and "--yes" in unconfirmed.stderr
    assert _raw(sync_db) == []


def test_a_changed_file_updates_the_campaign_in_place_and_says_what_changed(cli, sync_db, tmp_path) -> None:
    add_account(sync_db, "a@mail.example")
    ok(cli("apply", _files(tmp_path), "--yes"))
    cid = _campaign_id(sync_db)
    changed = SPRING.replace("daily_limit: 40", "daily_limit: 60").replace("a short note", "a quick note")
    changed = changed.replace("status: draft", "status: active")
    out = ok(cli("apply", _files(tmp_path, changed), "--yes")).stdout
    assert "~ template intro" in out and "~ settings.daily_limit: 40 -> 60" in out
    assert "~ campaign status: draft -> active" in out
    doc = sync_db.campaigns.find_one({"_id": ObjectId(cid)})
    assert doc["status"] == "active" and doc["settings"]["daily_limit"] == 60
    assert "a quick note" in sync_db.templates.find_one({"name": "intro"})["body_text"]
    assert sync_db.campaigns.count_documents({}) == 1 and sync_db.templates.count_documents({}) == 2


def test_file_errors_name_the_file_line_and_field_and_change_nothing(cli, sync_db, tmp_path) -> None:
    add_account(sync_db, "a@mail.example")
    bad = SPRING.replace("    delay_minutes: 1440", "    delay_minutes: soon").replace(
        "  bump:\n", "  bump:\n    extra: 1\n"
    )
    result = cli("apply", _files(tmp_path, bad), "--yes")
    assert result.exit_code == 2
    path = str(tmp_path / "spring.yaml")
    assert f"{path}:14: templates.bump.extra: is not a known field" in result.stderr
    assert f"{path}:19: steps[1].delay_minutes:" in result.stderr
    unknown = cli("apply", _files(tmp_path, SPRING.replace("a@mail.example", "b@mail.example")), "--yes")
    assert unknown.exit_code == 1 and "b@mail.example" in unknown.stderr
    assert _raw(sync_db) == []


def _with_leads(cli: Any, sync_db: Any, tmp_path: Path) -> str:
    add_account(sync_db, "a@mail.example")
    ok(cli("apply", _files(tmp_path, SPRING.replace("status: draft", "status: active")), "--yes"))
    cid = _campaign_id(sync_db)
    for step in (1, 2):
        sync_db.campaign_leads.insert_one(
            {
                "campaign_id": cid,
                "created_at": NOW,
                "lead_data": [{"email": f"p{step}@acme.example", "status": "contacted"}],
                "progress": {"current_step_order": step, "stopped": False, "processed_recipients": {}},
            }
        )
    return cid


def test_step_changes_under_leads_in_flight_are_explained_and_the_unsafe_ones_refused(cli, sync_db, tmp_path) -> None:
    _with_leads(cli, sync_db, tmp_path)
    stored = _raw(sync_db)
    inserted = SPRING.replace("status: draft", "status: active").replace(
        "steps:\n  - template: intro\n", "steps:\n  - template: intro\n  - template: extra\n"
    )
    inserted = inserted.replace("templates:\n", "templates:\n  extra:\n    subject: Extra\n    body_text: Extra\n")
    refused = cli("apply", _files(tmp_path, inserted), "--yes", "--force")
    assert refused.exit_code == 1 and "would be sent step 2 (bump) again" in refused.stdout
    assert _raw(sync_db) == stored

    removed = SPRING.replace("status: draft", "status: active").split("  - template: bump")[0]
    unforced = cli("apply", _files(tmp_path, removed), "--yes")
    assert unforced.exit_code == 1 and "- step 2: template bump" in unforced.stdout
    assert "1 lead(s) at step 2 (bump) go on with nothing more (they complete)" in unforced.stdout
    assert _raw(sync_db) == stored
    ok(cli("apply", _files(tmp_path, removed), "--yes", "--force"))
    assert sync_db.sequence_steps.count_documents({}) == 1


def test_activating_an_automatically_paused_campaign_shows_the_reason_and_clears_it(cli, sync_db, tmp_path) -> None:
    cid = _with_leads(cli, sync_db, tmp_path)
    sync_db.campaigns.update_one(
        {"_id": ObjectId(cid)}, {"$set": {"status": "paused", "paused_reason": "template intro: missing variable"}}
    )
    out = ok(cli("apply", _files(tmp_path, SPRING.replace("status: draft", "status: active")), "--yes")).stdout
    assert "~ campaign status: paused -> active (it was paused: template intro: missing variable)" in out
    doc = sync_db.campaigns.find_one({"_id": ObjectId(cid)})
    assert doc["status"] == "active" and "paused_reason" not in doc


WINDOWED = SPRING.replace(
    "  min_wait_time: 4\n",
    """\
  min_wait_time: 4
  hourly_limit: 5
  wait_jitter: 6
  schedule:
    timezone: America/New_York
    days: [mon, tue, wed, thu, fri]
    start: "09:00"
    end: "17:00"
    blackout_dates: ["2025-12-25"]
""",
).replace(
    "      a short note from {{ sender_name }}.\n",
    """\
      a short note from {{ sender_name }}.
    variants:
      - name: short
        weight: 2
      - name: long
        subject: An idea for {{ company_name | default('you') }}
        body_text: |
          Hello {{ first_name | default('there') }},
          a longer note.
""",
)


def test_a_campaign_created_with_a_schedule_exports_it_and_the_export_applies_as_no_change(
    cli, sync_db, tmp_path
) -> None:
    add_account(sync_db, "a@mail.example")
    (tmp_path / "intro.txt").write_text(INTRO_BODY, encoding="utf-8")
    ok(cli("template", "add", "--name", "intro", "--subject", "Hello", "--body-file", str(tmp_path / "intro.txt")))
    window = ("--schedule-timezone", "Europe/Berlin", "--schedule-days", "mon,wed", "--schedule-start", "08:30")
    window += ("--schedule-end", "17:00", "--schedule-blackout", "2025-12-24", "--no-recipient-timezone")
    limits = ("--hourly-limit", "5", "--wait-jitter", "2.5", "--accounts", "a@mail.example")
    created = json.loads(ok(cli("campaign", "create", "--name", "Spring", *window, *limits, "--json")).stdout)
    ok(cli("step", "add", "--campaign-id", str(created["_id"]), "--template", "intro"))
    stored = _raw(sync_db)

    exported = tmp_path / "exported.yaml"
    ok(cli("export", _campaign_id(sync_db), "-o", str(exported)))
    text = exported.read_text()
    assert "  hourly_limit: 5\n  wait_jitter: 2.5\n  schedule:\n    timezone: Europe/Berlin\n" in text
    assert "    start: '08:30'\n    end: '17:00'\n" in text and "    recipient_timezone: false\n" in text
    assert "Spring: no change" in ok(cli("apply", str(exported))).stdout
    assert _raw(sync_db) == stored


def test_apply_changing_the_schedule_shows_each_changed_field_in_the_diff(cli, sync_db, tmp_path) -> None:
    add_account(sync_db, "a@mail.example")
    out = ok(cli("apply", _files(tmp_path, WINDOWED), "--yes")).stdout
    assert "+ campaign Spring: status draft" in out
    settings = sync_db.campaigns.find_one({"name": "Spring"})["settings"]
    assert settings["hourly_limit"] == 5 and settings["wait_jitter"] == 6.0
    assert settings["schedule"]["blackout_dates"] == ["2025-12-25"] and settings["schedule"]["start"] == "09:00"

    changed = WINDOWED.replace('end: "17:00"', 'end: "18:00"').replace("[mon, tue, wed, thu, fri]", "[mon, tue]")
    changed = changed.replace("  hourly_limit: 5\n", "")
    dry = ok(cli("apply", _files(tmp_path, changed), "--dry-run")).stdout
    assert "~ settings.hourly_limit: 5 -> (unset)" in dry
    assert "~ settings.schedule.days: mon, tue, wed, thu, fri -> mon, tue" in dry
    assert "~ settings.schedule.end: 17:00 -> 18:00" in dry and "start" not in dry
    ok(cli("apply", _files(tmp_path, changed), "--yes"))
    settings = sync_db.campaigns.find_one({"name": "Spring"})["settings"]
    assert "hourly_limit" not in settings and settings["schedule"]["end"] == "18:00"
    assert "Spring: no change" in ok(cli("apply", _files(tmp_path, changed), "--yes")).stdout


def test_template_variants_are_applied_exported_and_their_changes_shown(cli, sync_db, tmp_path) -> None:
    add_account(sync_db, "a@mail.example")
    ok(cli("apply", _files(tmp_path, WINDOWED), "--yes"))
    intro = sync_db.templates.find_one({"name": "intro"})
    assert intro["variants"] == [
        {"name": "short", "weight": 2},
        {
            "name": "long",
            "subject": "An idea for {{ company_name | default('you') }}",
            "body_text": "Hello {{ first_name | default('there') }},\na longer note.\n",
        },
    ]
    stored = _raw(sync_db)
    exported = tmp_path / "exported.yaml"
    ok(cli("export", _campaign_id(sync_db), "-o", str(exported)))
    assert "    variants:\n    - name: short\n      weight: 2\n" in exported.read_text()
    assert "Spring: no change" in ok(cli("apply", str(exported))).stdout
    assert _raw(sync_db) == stored

    out = ok(cli("apply", _files(tmp_path, WINDOWED.replace("weight: 2", "weight: 3")), "--yes")).stdout
    assert f"~ template intro ({intro['_id']}): variants" in out
    assert sync_db.templates.find_one({"name": "intro"})["variants"][0] == {"name": "short", "weight": 3}
    ok(cli("apply", _files(tmp_path), "--yes"))  # the file without variants removes them
    assert "variants" not in sync_db.templates.find_one({"name": "intro"})
