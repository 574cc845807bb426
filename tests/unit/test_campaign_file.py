"""Campaign files (parse, validation messages, plan, export) and the sequence-change rule, as plain values."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.domain.campaign_file import CampaignFileError, export, parse
from app.domain.campaign_plan import Stored, plan
from app.domain.campaigns import Campaign, CampaignSettings
from app.domain.sequence_edits import CONTINUES, REFUSED, UNCHANGED, StepSpec, impact, match_steps

GOOD = """\
name: Spring
status: active
settings:
  daily_limit: 40
  min_wait_time: 4
accounts: [a@mail.example]
templates:
  intro:
    subject: Hello {{ first_name }}
    body_text: |
      Hi there
  bump:
    file: bump.txt
steps:
  - template: intro
  - template: bump
    delay_minutes: 1440
    thread: true
"""
FILES = {"bump.txt": "Subject: Re: hello\nJust bumping this.\n"}


def _read(name: str) -> str:
    if name not in FILES:
        raise FileNotFoundError(2, "No such file or directory", name)
    return FILES[name]


def _parse(text: str):
    return parse(text, "spring.yaml", _read)


def _problems(text: str) -> list[str]:
    with pytest.raises(CampaignFileError) as caught:
        _parse(text)
    return caught.value.problems


def test_a_good_file_gives_its_templates_steps_and_settings() -> None:
    spec = _parse(GOOD)
    assert spec.name == "Spring" and spec.status == "active" and spec.accounts == ("a@mail.example",)
    assert spec.settings == {"daily_limit": 40, "min_wait_time": 4.0}
    intro, bump = spec.templates
    assert (intro.subject, intro.body_text) == ("Hello {{ first_name }}", "Hi there\n")
    assert (bump.subject, bump.body_text) == ("Re: hello", "Just bumping this.\n")  # seed 001's Subject: line
    assert spec.steps == (StepSpec("intro", 0.0, None), StepSpec("bump", 1440.0, True))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("  daily_limit: 40", "  daily_limit: many"), "spring.yaml:4: settings.daily_limit: Input"),
        (GOOD.replace("    delay_minutes: 1440", "    delay_minutes: -1"), "spring.yaml:17: steps[1].delay_minutes"),
        (GOOD.replace("    thread: true", "    threads: true"), "spring.yaml:18: steps[1].threads: is not a known"),
        (GOOD.replace("name: Spring\n", ""), "spring.yaml:1: name: is required"),
        (
            GOOD.replace("  - template: bump", "  - template: bumpp"),
            "spring.yaml:16: steps[1].template: 'bumpp'",
        ),
        (GOOD.replace("status: active", "status: running"), "spring.yaml:2: status: Input should be 'draft'"),
        (
            GOOD.replace("    file: bump.txt", "    file: missing.txt"),
            "spring.yaml:13: templates.bump: cannot read missing.txt",
        ),
        (GOOD.replace("    file: bump.txt", "    file: bump.txt\n    body_text: x"), "spring.yaml:13: templates.bump"),
        (GOOD + "name: Again\n", "spring.yaml:19: name: given twice"),
        ("name: [unclosed\n", "spring.yaml:2: not valid YAML"),
    ],
)
def test_problems_name_the_file_line_and_field(text: str, expected: str) -> None:
    problems = _problems(text)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    text = GOOD.replace("  daily_limit: 40", "  daily_limit: -1").replace("    thread: true", "    thread: maybe")
    problems = _problems(text)
    assert len(problems) == 2 and problems[0].startswith("spring.yaml:4:") and problems[1].startswith("spring.yaml:18:")


def _stored(spec, account_ids=("acc1",)) -> Stored:
    """What apply(spec) leaves stored, in the form the store reads it back."""
    campaign = Campaign("c1", spec.name, spec.status or "draft", "seq-1", CampaignSettings())
    settings = {**spec.settings, "account_ids": list(account_ids)}
    templates = {t.name: replace(t, id=f"t-{t.name}") for t in spec.templates}
    steps = tuple((f"s{i}", s) for i, s in enumerate(spec.steps))
    return Stored(campaign, settings, None, steps, templates)


def test_a_new_campaign_is_created_with_everything_and_the_same_file_again_is_no_change() -> None:
    spec = _parse(GOOD)
    first = plan(spec, Stored(None), ["acc1"])
    assert first.create and first.steps == spec.steps and len(first.templates_new) == 2
    assert first.campaign_set["settings.account_ids"] == ["acc1"]
    assert [c.line() for c in first.changes][:3] == [
        "+ template intro",
        "+ template bump",
        "+ campaign Spring: status active",
    ]
    again = plan(spec, _stored(spec), ["acc1"])
    assert again.empty and again.steps is None


def test_a_changed_file_gives_a_diff_of_what_changes() -> None:
    spec = _parse(GOOD)
    stored = _stored(spec)
    edited = GOOD.replace("daily_limit: 40", "daily_limit: 50").replace("      Hi there", "      Hi again")
    edited = edited.replace("  min_wait_time: 4\n", "").replace("    delay_minutes: 1440", "    delay_minutes: 60")
    result = plan(_parse(edited), stored, ["acc1"])
    assert [c.line() for c in result.changes] == [
        "~ template intro (t-intro): body_text",
        "~ settings.daily_limit: 40 -> 50",
        "~ settings.min_wait_time: 4.0 -> (unset)",
        "~ step 2: template bump, delay 1440 min, thread true -> template bump, delay 60 min, thread true",
    ]
    assert result.campaign_unset == ("settings.min_wait_time",)
    assert result.step_keys == ("s0", "s1")  # the edited step keeps its identity


def test_resuming_through_a_file_shows_the_pause_reason_and_clears_it() -> None:
    spec = _parse(GOOD)
    stored = _stored(spec)
    paused = Stored(
        Campaign("c1", "Spring", "paused", "seq-1", CampaignSettings()), stored.settings, "5 of 5 failed",
        stored.steps, stored.templates,
    )  # fmt: skip
    result = plan(spec, paused, ["acc1"])
    assert [c.line() for c in result.changes] == ["~ campaign status: paused -> active (it was paused: 5 of 5 failed)"]
    assert set(result.campaign_unset) == {"paused_reason", "paused_at", "paused_by"}


def test_export_then_parse_is_no_change() -> None:
    spec = _parse(GOOD)
    stored = _stored(spec)
    text = export(stored, ["a@mail.example"])
    again = parse(text, "exported.yaml", lambda name: "")
    assert plan(again, stored, ["acc1"]).empty
    assert "body_text: |\n      Hi there\n" in text


# --- schedule, hourly limit, jitter and variants -----------------------------------------------------------------

WINDOWED = """\
name: Spring
settings:
  hourly_limit: 5
  wait_jitter: 6
  schedule:
    timezone: America/New_York
    days: [mon, tue, wed, thu, fri]
    start: "09:00"
    end: "17:00"
    blackout_dates: [2025-11-27, "2025-12-25"]
    recipient_timezone: true
templates:
  intro:
    subject: "{Quick|Short} question"
    body_text: Hi there
    variants:
      - name: short
        weight: 2
      - name: long
        body_text: |
          Subject: An idea for {{ company_name }}
          A longer note.
steps:
  - template: intro
"""
SCHEDULE = {
    "timezone": "America/New_York",
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "start": "09:00",
    "end": "17:00",
    "blackout_dates": ["2025-11-27", "2025-12-25"],
    "recipient_timezone": True,
}


def test_a_schedule_an_hourly_limit_jitter_and_variants_are_read_as_stored() -> None:
    spec = _parse(WINDOWED)
    assert spec.settings == {"hourly_limit": 5, "wait_jitter": 6.0, "schedule": SCHEDULE}  # dates as text
    (intro,) = spec.templates
    assert intro.variants == (  # the model's form: a Subject: line split off, the default weight left out
        {"name": "short", "weight": 2},
        {"name": "long", "subject": "An idea for {{ company_name }}", "body_text": "A longer note.\n"},
    )
    assert intro.document()["variants"] == list(intro.variants)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  hourly_limit: 5", "  hourly_limit: -1", "spring.yaml:3: settings.hourly_limit: Input should be greater"),
        ("  wait_jitter: 6", "  wait_jitter: soon", "spring.yaml:4: settings.wait_jitter: Input should be a valid"),
        ('    end: "17:00"', "    end: 17:00", "spring.yaml:9: settings.schedule.end: Value error, must be a local"),
        ('    end: "17:00"', '    end: "5pm"', "spring.yaml:9: settings.schedule.end: must be a local time as HH:MM"),
        (
            "    timezone: America/New_York",
            "    timezone: Mars/Olympus",
            "spring.yaml:6: settings.schedule.timezone: must be an",
        ),
        ("    days: [mon, tue, wed, thu, fri]", "    days: []", "spring.yaml:7: settings.schedule.days: must name"),
        (
            "    days: [mon, tue, wed, thu, fri]",
            "    days: [mon, funday]",
            "spring.yaml:7: settings.schedule.days: must name days",
        ),
        (
            "    recipient_timezone: true",
            "    recipient_zone: true",
            "spring.yaml:11: settings.schedule.recipient_zone",
        ),
        ('    start: "09:00"\n', "", "spring.yaml:6: settings.schedule.start: is required"),
        ("        weight: 2", "        weight: 0", "spring.yaml:18: templates.intro.variants[0].weight: Input should"),
        (
            "        weight: 2",
            "        weigth: 2",
            "spring.yaml:18: templates.intro.variants[0].weigth: is not a known",
        ),
        ("      - name: long", "      - name: short", "spring.yaml:19: templates.intro.variants[1].name: 'short' is"),
    ],
)
def test_schedule_limit_and_variant_problems_name_the_line_and_field(old: str, new: str, expected: str) -> None:
    assert old in WINDOWED
    problems = _problems(WINDOWED.replace(old, new))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_changed_schedule_is_shown_field_by_field_and_written_whole() -> None:
    stored = _stored(_parse(WINDOWED))
    edited = WINDOWED.replace('end: "17:00"', 'end: "18:30"').replace("    recipient_timezone: true\n", "")
    result = plan(_parse(edited), stored, ["acc1"])
    assert [c.line() for c in result.changes] == [
        "~ settings.schedule.end: 17:00 -> 18:30",
        "~ settings.schedule.recipient_timezone: true -> (unset)",
    ]
    expected = {k: v for k, v in SCHEDULE.items() if k != "recipient_timezone"}
    assert result.campaign_set == {"settings.schedule": {**expected, "end": "18:30"}}


def test_a_schedule_added_or_removed_is_one_line() -> None:
    without = WINDOWED.split("  schedule:")[0] + WINDOWED.split("    recipient_timezone: true\n")[1]
    stored = _stored(_parse(without))
    added = plan(_parse(WINDOWED), stored, ["acc1"])
    assert [c.line() for c in added.changes] == [
        "~ settings.schedule: (unset) -> timezone America/New_York; days mon, tue, wed, thu, fri; start 09:00;"
        " end 17:00; blackout_dates 2025-11-27, 2025-12-25; recipient_timezone true"
    ]
    removed = plan(_parse(without), _stored(_parse(WINDOWED)), ["acc1"])
    assert removed.campaign_unset == ("settings.schedule",)


def test_changed_variants_are_in_the_diff() -> None:
    stored = _stored(_parse(WINDOWED))
    result = plan(_parse(WINDOWED.replace("weight: 2", "weight: 3")), stored, ["acc1"])
    assert [c.line() for c in result.changes] == ["~ template intro (t-intro): variants"]
    assert result.templates_changed[0].variants[0] == {"name": "short", "weight": 3}


def test_export_writes_the_schedule_limits_and_variants_back_and_parses_to_no_change() -> None:
    stored = _stored(_parse(WINDOWED))
    text = export(stored, [])
    assert "    start: '09:00'\n    end: '17:00'\n" in text  # quoted, or YAML would read 17:00 as a number
    assert "  hourly_limit: 5\n  wait_jitter: 6.0\n" in text and "    - name: short\n      weight: 2\n" in text
    again = parse(text, "exported.yaml", lambda name: "")
    assert plan(again, stored, ["acc1"]).empty


# --- the sequence-change rule ------------------------------------------------------------------------------------


def test_leads_at_a_step_that_keeps_its_number_are_unchanged() -> None:
    result = impact(["a", "b"], ["a", "b", "new:0"], {1: 3, 2: 1}, completed_leads=2)
    assert [p.verdict for p in result.positions] == [UNCHANGED, UNCHANGED]
    assert result.added_at_end == 1 and result.affected_leads == 2  # the completed leads miss the new step


@pytest.mark.parametrize(
    ("new", "verdicts"),
    [
        (["a", "x", "b", "c"], [UNCHANGED, REFUSED]),  # inserted before step 2: b would come again
        (["x", "a", "b", "c"], [REFUSED, REFUSED]),  # inserted first: a and b again
        (["a", "c"], [UNCHANGED, CONTINUES]),  # b removed: its leads go on with c
        (["b", "c"], [CONTINUES, CONTINUES]),  # a removed: step 1's leads go on with b, step 2's with c
        (["a", "c", "b"], [UNCHANGED, REFUSED]),  # c moved before b: b would come again
        (["a", "b"], [UNCHANGED, UNCHANGED]),  # c (nobody there yet) removed
    ],
)
def test_a_change_under_leads_in_flight_is_refused_when_it_would_resend(new: list[str], verdicts: list[str]) -> None:
    result = impact(["a", "b", "c"], new, {1: 2, 2: 1})
    assert [p.verdict for p in result.positions] == verdicts


def test_an_edited_step_counts_the_leads_before_at_and_past_it() -> None:
    result = impact(["a", "b", "c"], ["a", "b", "c"], {1: 2, 2: 1, 3: 4}, edited=["b"])
    (edit,) = result.edited
    assert (edit.ahead, edit.at, edit.passed) == (2, 1, 4)


def test_matching_keeps_the_identity_of_steps_kept_or_edited_in_place() -> None:
    a, b, c, x = (StepSpec(n) for n in "abcx")
    old = [("1", a), ("2", b), ("3", c)]
    assert match_steps(old, [a, x, b, c]) == ["1", "new:1", "2", "3"]
    assert match_steps(old, [a, StepSpec("b", 60.0), c]) == ["1", "2", "3"]
    assert match_steps(old, [a, c]) == ["1", "3"]
