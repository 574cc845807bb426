"""`job create`'s options: the schedule each combination means, and every refusal naming its option."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.domain.job_recipients import RecipientSource
from app.domain.job_schedule import Cron
from app.domain.job_specs import JobInput, JobSpec, JobSpecError, first_run_at, validate_job

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
BASE = JobInput(name="Spring announcement", template="tpl-1", recipients="ann@a.example")


def valid(**options: object) -> JobSpec:
    return validate_job(replace(BASE, **options), NOW, allow_past=False)  # type: ignore[arg-type]


def refused(**options: object) -> JobSpecError:
    with pytest.raises(JobSpecError) as caught:
        valid(**options)
    return caught.value


def test_a_minimal_job_is_immediate_in_utc_through_any_active_account() -> None:
    spec = valid()
    assert spec == JobSpec(
        name="Spring announcement",
        template_id="tpl-1",
        source=RecipientSource("static", addresses=("ann@a.example",)),
        schedule="immediate",
        run_at=None,
        cron=None,
        timezone="UTC",
        misfire=None,
        campaign_id=None,
        account_ids=(),
        max_retries=None,
    )
    assert first_run_at(spec, NOW) == NOW


@pytest.mark.parametrize(
    ("options", "schedule"),
    [
        ({}, "immediate"),
        ({"schedule": "immediate"}, "immediate"),
        ({"run_at": "2026-05-05T09:00+02:00"}, "delayed"),
        ({"schedule": "Delayed", "run_at": "2026-05-05T09:00+02:00"}, "delayed"),
        ({"cron": "0 8 * * 1-5"}, "recurring"),
        ({"schedule": "recurring", "cron": "0 8 * * 1-5"}, "recurring"),
    ],
)
def test_the_schedule_follows_from_the_options_when_not_given(options: dict[str, str], schedule: str) -> None:
    assert valid(**options).schedule == schedule


@pytest.mark.parametrize(
    ("options", "option", "words"),
    [
        ({"schedule": "weekly"}, "--schedule", "is not one of immediate, delayed, recurring"),
        ({"schedule": "delayed"}, "--run-at", "a delayed job needs --run-at"),
        ({"schedule": "recurring"}, "--cron", "a recurring job needs --cron"),
        ({"schedule": "immediate", "cron": "* * * * *"}, "--cron", "not immediate"),
        ({"schedule": "delayed", "run_at": "2026-06-01T09:00Z", "cron": "* * * * *"}, "--cron", "not delayed"),
        ({"schedule": "recurring", "cron": "* * * * *", "run_at": "2026-06-01T09:00Z"}, "--run-at", "not recurring"),
        ({"schedule": "immediate", "run_at": "2026-06-01T09:00Z"}, "--run-at", "not immediate"),
        ({"cron": "* * * * *", "run_at": "2026-06-01T09:00Z"}, "--run-at", "give one"),
    ],
)
def test_contradicting_schedule_options_are_refused(options: dict[str, str], option: str, words: str) -> None:
    error = refused(**options)
    assert error.option == option
    assert words in str(error)


@pytest.mark.parametrize(
    ("run_at", "timezone", "expected"),
    [
        ("2026-05-05T09:00+02:00", None, datetime(2026, 5, 5, 7, 0, tzinfo=UTC)),
        ("2026-05-05T09:00Z", None, datetime(2026, 5, 5, 9, 0, tzinfo=UTC)),
        ("2026-05-05 09:00", None, datetime(2026, 5, 5, 9, 0, tzinfo=UTC)),
        ("2026-05-05T09:00", "Europe/Berlin", datetime(2026, 5, 5, 7, 0, tzinfo=UTC)),
        ("2026-05-05T09:00", "America/New_York", datetime(2026, 5, 5, 13, 0, tzinfo=UTC)),
        # An explicit offset wins over --timezone.
        ("2026-05-05T09:00+00:00", "Europe/Berlin", datetime(2026, 5, 5, 9, 0, tzinfo=UTC)),
    ],
)
def test_run_at_is_iso_8601_with_an_offset_or_read_in_the_time_zone(
    run_at: str, timezone: str | None, expected: datetime
) -> None:
    spec = valid(run_at=run_at, timezone=timezone)
    assert spec.run_at == expected and spec.run_at.tzinfo is UTC
    assert first_run_at(spec, NOW) == expected


@pytest.mark.parametrize(
    ("run_at", "words"),
    [
        ("tomorrow 9am", "is not an ISO 8601 time"),
        ("2026-13-01T09:00", "is not an ISO 8601 time"),
        ("2026-03-29T02:30", "does not exist (the clocks skip it) in Europe/Berlin"),
        ("2026-10-25T02:30", "happens twice (the clocks go back) in Europe/Berlin: give the offset"),
    ],
)
def test_a_bad_or_ambiguous_run_at_is_refused(run_at: str, words: str) -> None:
    error = refused(run_at=run_at, timezone="Europe/Berlin", **{"schedule": "delayed"})
    assert error.option == "--run-at"
    assert words in str(error)


def test_a_delayed_job_in_the_past_is_refused_unless_allowed() -> None:
    error = refused(run_at="2026-05-04T09:59Z")
    assert error.option == "--run-at"
    assert "is in the past (now is 2026-05-04 10:00 UTC)" in str(error) and "--allow-past" in str(error)
    spec = validate_job(replace(BASE, run_at="2026-05-04T09:59Z"), NOW, allow_past=True)
    assert first_run_at(spec, NOW) == datetime(2026, 5, 4, 9, 59, tzinfo=UTC)


def test_a_recurring_job_keeps_its_cron_zone_and_misfire_and_first_runs_at_the_next_tick() -> None:
    spec = valid(cron="0  8 * * 1-5", timezone="Europe/Berlin", misfire="skip")
    assert (spec.cron, spec.timezone, spec.misfire) == (Cron("0 8 * * 1-5"), "Europe/Berlin", "skip")
    # Monday 2026-05-04 12:00 Berlin: the next run is Tuesday 08:00 CEST.
    assert first_run_at(spec, NOW) == datetime(2026, 5, 5, 6, 0, tzinfo=UTC)
    assert valid(cron="* * * * *").misfire == "run_once"


@pytest.mark.parametrize(
    ("cron", "field"),
    [("61 * * * *", "minute"), ("0 25 * * *", "hour"), ("0 8 * * MON-FRII", "day of week")],
)
def test_a_bad_cron_expression_names_the_option_and_the_field(cron: str, field: str) -> None:
    error = refused(cron=cron)
    assert error.option == "--cron"
    assert str(error).startswith("--cron: ") and f"the {field} field" in str(error)


@pytest.mark.parametrize(
    ("options", "option", "words"),
    [
        ({"name": "  "}, "--name", "is required"),
        ({"name": "a\nb"}, "--name", "one line"),
        ({"name": "x" * 201}, "--name", "keep it to 200"),
        ({"template": ""}, "--template", "is required"),
        ({"timezone": "Mars/Olympus"}, "--timezone", "not an IANA time zone"),
        ({"timezone": "../etc/passwd"}, "--timezone", "not an IANA time zone"),
        ({"misfire": "skip"}, "--misfire", "is for recurring jobs"),
        ({"cron": "* * * * *", "misfire": "replay"}, "--misfire", "is not one of run_once, skip"),
        ({"campaign_id": "c1", "accounts": "a1"}, "--accounts", "not both"),
        ({"accounts": " , "}, "--accounts", "lists no account id"),
        ({"campaign_id": " "}, "--campaign-id", "is required"),
        ({"max_retries": "21"}, "--max-retries", "from 0 to 20"),
        ({"max_retries": -1}, "--max-retries", "from 0 to 20"),
        ({"max_retries": "three"}, "--max-retries", "from 0 to 20"),
    ],
)
def test_each_bad_option_is_refused_by_name(options: dict[str, object], option: str, words: str) -> None:
    error = refused(**options)
    assert error.option == option
    assert option in str(error) and words in str(error)


def test_senders_and_retries_as_given() -> None:
    assert valid(campaign_id=" c1 ").campaign_id == "c1"
    assert valid(accounts="a1, a2,a1,").account_ids == ("a1", "a2")
    assert [valid(max_retries=v).max_retries for v in ("0", 20, " 5 ")] == [0, 20, 5]
    assert valid(misfire="run-once", cron="@daily").misfire == "run_once"


def test_recipient_addresses_are_validated_normalised_and_deduplicated_in_order() -> None:
    spec = valid(recipients=" Bob@B.example, ann@a.example,,BOB@b.example ,zoë@müller.example")
    assert spec.source.addresses == ("bob@b.example", "ann@a.example", "zoë@müller.example")


def test_every_bad_recipient_address_is_named() -> None:
    error = refused(recipients="ok@x.example, not-an-address, also@x.example, x@@y")
    assert error.option == "--recipients"
    assert "2 invalid address(es)" in str(error)
    assert "'not-an-address'" in str(error) and "'x@@y'" in str(error) and "ok@x.example" not in str(error)


@pytest.mark.parametrize(
    ("options", "option", "words"),
    [
        ({"recipients": None}, "--recipients", "a job needs recipients"),
        ({"recipients": " , "}, "--recipients", "lists no address"),
        ({"recipient_file": "/data/list.csv"}, "--recipients", "not both"),
        ({"recipient_filters": ("country=DE",)}, "--recipient-filter", "not a --recipients list"),
        ({"recipients": None, "recipient_filters": ("country",)}, "--recipient-filter", "expected KEY=VALUE"),
        ({"encoding": "cp1252"}, "--encoding", "give the file too"),
        ({"recipients": None, "recipient_file": "/d/l.csv", "encoding": "klingon"}, "--encoding", "unknown"),
    ],
)
def test_exactly_one_recipient_source_is_required(options: dict[str, object], option: str, words: str) -> None:
    error = refused(**options)
    assert error.option == option
    assert words in str(error)


def test_a_recipient_file_is_stored_as_an_absolute_path_with_its_filters_and_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = valid(
        recipients=None,
        recipient_file="lists/leads.csv",
        recipient_filters=("Country=DE", "tier=gold"),
        encoding="Windows-1252",
    )
    assert spec.source == RecipientSource(
        "file",
        path=str(tmp_path / "lists" / "leads.csv"),
        filters=(("country", "DE"), ("tier", "gold")),
        encoding="cp1252",
    )


def test_a_filter_alone_selects_stored_recipients() -> None:
    spec = valid(recipients=None, recipient_filters=("status=not_contacted",))
    assert spec.source == RecipientSource("filter", filters=(("status", "not_contacted"),))
