"""Recurring jobs' schedules: cron validation naming the field, fire times across DST, missed runs coalesced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.job_schedule import (
    Cron,
    CronError,
    DueDecision,
    Misfire,
    describe,
    due_runs,
    next_run,
    parse_cron,
    previous_run,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fire_times(expr: str, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    cron, times = parse_cron(expr), []
    for _ in range(count):
        after = next_run(cron, tz, after)
        times.append(after)
    return times


@pytest.mark.parametrize(
    ("expr", "stored"),
    [
        ("* * * * *", "* * * * *"),
        ("  0   8 *  * 1-5 ", "0 8 * * 1-5"),
        ("*/15 9-17 * * MON-FRI", "*/15 9-17 * * MON-FRI"),
        ("0 0 L * *", "0 0 L * *"),
        ("@daily", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
        ("@weekly", "0 0 * * 0"),
    ],
)
def test_valid_expressions_are_stored_with_single_spaces_and_macros_expanded(expr: str, stored: str) -> None:
    assert parse_cron(expr) == Cron(stored)


@pytest.mark.parametrize(
    ("expr", "field", "bad"),
    [
        ("60 * * * *", "minute", "'60'"),
        ("a * * * *", "minute", "'a'"),
        ("*/0 * * * *", "minute", "'*/0'"),
        ("0 24 * * *", "hour", "'24'"),
        ("0 5-3x * * *", "hour", "'5-3x'"),
        ("0 8 0 * *", "day of month", "'0'"),
        ("0 8 32 * *", "day of month", "'32'"),
        ("0 8 31 2 *", "day of month", "never occurs in month '2'"),
        ("0 8 * 13 *", "month", "'13'"),
        ("0 8 * JANUARY *", "month", "'JANUARY'"),
        ("0 8 * * 8", "day of week", "'8'"),
        ("0 8 * * MON-FRII", "day of week", "'MON-FRII'"),
    ],
)
def test_a_bad_field_is_named_in_the_error(expr: str, field: str, bad: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expr)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert bad in str(caught.value)


def test_six_fields_are_refused_because_seconds_are_not_supported() -> None:
    with pytest.raises(CronError, match="seconds are not supported") as caught:
        parse_cron("0 0 8 * * 1-5")
    assert caught.value.field == "expression"


@pytest.mark.parametrize("expr", ["", "   ", "* * *", "* * * *", "0 0 8 * * 1-5 2026", "@sometimes"])
def test_a_wrong_number_of_fields_says_that_five_are_expected(expr: str) -> None:
    with pytest.raises(CronError, match="minute hour day-of-month month day-of-week") as caught:
        parse_cron(expr)
    assert caught.value.field == "expression"


def test_every_minute_fires_on_each_minute_strictly_after_the_given_time() -> None:
    assert fire_times("* * * * *", UTC_ZONE, utc(2026, 5, 4, 10, 0, 0), 3) == [
        utc(2026, 5, 4, 10, 1),
        utc(2026, 5, 4, 10, 2),
        utc(2026, 5, 4, 10, 3),
    ]
    partway = datetime(2026, 5, 4, 10, 0, 59, 999_999, tzinfo=UTC)
    assert next_run(parse_cron("* * * * *"), UTC_ZONE, partway) == utc(2026, 5, 4, 10, 1)


def test_fire_times_are_utc_whatever_the_zone_of_the_given_time() -> None:
    after = utc(2026, 5, 4, 10, 0).astimezone(NEW_YORK)
    found = next_run(parse_cron("0 12 * * *"), BERLIN, after)
    assert found == utc(2026, 5, 4, 10, 0) + timedelta(days=1) and found.tzinfo is UTC


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # Spring forward on Sunday 2026-03-29: Friday 08:00 is CET (07:00 UTC), Monday 08:00 CEST (06:00 UTC).
        (utc(2026, 3, 26, 12), [utc(2026, 3, 27, 7), utc(2026, 3, 30, 6), utc(2026, 3, 31, 6)]),
        # Fall back on Sunday 2026-10-25: Friday 08:00 is CEST (06:00 UTC), Monday 08:00 CET (07:00 UTC).
        (utc(2026, 10, 22, 12), [utc(2026, 10, 23, 6), utc(2026, 10, 26, 7), utc(2026, 10, 27, 7)]),
    ],
)
def test_weekdays_at_eight_in_berlin_stay_at_eight_local_across_both_dst_changes(
    after: datetime, expected: list[datetime]
) -> None:
    times = fire_times("0 8 * * 1-5", BERLIN, after, 3)
    assert times == expected
    assert [t.astimezone(BERLIN).hour for t in times] == [8, 8, 8]


def test_a_daily_0230_job_on_the_spring_forward_day_fires_once_just_after_the_gap() -> None:
    times = fire_times("30 2 * * *", BERLIN, utc(2026, 3, 28, 12), 3)
    # 02:30 does not exist on 2026-03-29 (02:00 CET jumps to 03:00 CEST): it runs at 03:00 CEST, once.
    assert times == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)]
    assert times[0].astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"


def test_a_daily_0230_job_on_the_fall_back_day_fires_once_at_the_first_0230() -> None:
    times = fire_times("30 2 * * *", BERLIN, utc(2026, 10, 24, 12), 2)
    # 02:30 happens twice on 2026-10-25 (CEST, then CET): only the first occurrence fires.
    assert times == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    # Asked from inside the repeated hour, the next run is the next day's, not the second 02:30.
    during_repeat = utc(2026, 10, 25, 1, 0)  # 02:00 CET, the second pass through 02:xx
    assert next_run(parse_cron("30 2 * * *"), BERLIN, during_repeat) == utc(2026, 10, 26, 1, 30)


def test_an_hourly_job_fires_every_real_hour_through_the_repeated_hour() -> None:
    times = fire_times("30 * * * *", BERLIN, utc(2026, 10, 24, 23, 0), 4)
    assert times == [
        utc(2026, 10, 24, 23, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 25, 2, 30),
    ]


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # EST (UTC-5) before 2026-03-08, EDT (UTC-4) after; EDT until 2026-11-01, then EST.
        (utc(2026, 3, 6, 20), [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13), utc(2026, 3, 9, 13)]),
        (utc(2026, 10, 31, 20), [utc(2026, 11, 1, 14), utc(2026, 11, 2, 14)]),
    ],
)
def test_new_york_keeps_local_time_across_its_own_dst_dates(after: datetime, expected: list[datetime]) -> None:
    times = fire_times("0 9 * * *", NEW_YORK, after, len(expected))
    assert times == expected
    assert {t.astimezone(NEW_YORK).hour for t in times} == {9}


def test_a_0230_job_in_new_york_fires_at_0300_on_the_spring_forward_day() -> None:
    found = next_run(parse_cron("30 2 * * *"), NEW_YORK, utc(2026, 3, 7, 12))
    assert found == utc(2026, 3, 8, 7, 0)
    assert found.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:00 EDT"


@pytest.mark.parametrize(
    ("expr", "tz", "at", "expected"),
    [
        ("* * * * *", UTC_ZONE, utc(2026, 5, 4, 10, 0, 0), utc(2026, 5, 4, 10, 0)),
        ("* * * * *", UTC_ZONE, utc(2026, 5, 4, 10, 0, 30), utc(2026, 5, 4, 10, 0)),
        ("0 8 * * 1-5", BERLIN, utc(2026, 3, 30, 5), utc(2026, 3, 27, 7)),
        ("30 2 * * *", BERLIN, utc(2026, 3, 29, 5), utc(2026, 3, 29, 1, 0)),
        ("30 2 * * *", BERLIN, utc(2026, 10, 25, 5), utc(2026, 10, 25, 0, 30)),
        # 02:00 CET, inside the repeated hour: the 02:30 CEST of an hour ago is the last run, not yesterday's.
        ("30 2 * * *", BERLIN, utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 0, 30)),
        ("30 2 * * *", BERLIN, utc(2026, 10, 25, 0, 29), utc(2026, 10, 24, 0, 30)),
    ],
)
def test_previous_run_is_the_last_fire_time_at_or_before_the_given_time(
    expr: str, tz: ZoneInfo, at: datetime, expected: datetime
) -> None:
    assert previous_run(parse_cron(expr), tz, at) == expected


NOT_DUE_AT = utc(2026, 5, 4, 10, 5)
EVERY_MINUTE = parse_cron("* * * * *")
WEEKDAYS_AT_8 = parse_cron("0 8 * * 1-5")


@pytest.mark.parametrize("misfire", ["run_once", "skip"])
def test_a_job_not_yet_due_keeps_its_next_run(misfire: Misfire) -> None:
    decision = due_runs(EVERY_MINUTE, UTC_ZONE, NOT_DUE_AT, utc(2026, 5, 4, 10, 4, 30), misfire)
    assert decision == DueDecision(None, NOT_DUE_AT)


@pytest.mark.parametrize("misfire", ["run_once", "skip"])
def test_a_run_due_a_few_seconds_ago_runs_under_either_policy(misfire: Misfire) -> None:
    now = utc(2026, 5, 4, 10, 5, 3)
    decision = due_runs(EVERY_MINUTE, UTC_ZONE, NOT_DUE_AT, now, misfire)
    assert decision == DueDecision(NOT_DUE_AT, utc(2026, 5, 4, 10, 6))


def test_three_days_of_downtime_give_one_run_with_run_once_for_the_latest_missed_time() -> None:
    # Due Friday 08:00 Berlin; the dispatcher comes back on Monday at 12:00 (three weekday runs missed).
    friday_8 = utc(2026, 5, 1, 6)
    monday_noon = utc(2026, 5, 4, 10)
    decision = due_runs(WEEKDAYS_AT_8, BERLIN, friday_8, monday_noon, "run_once")
    assert decision == DueDecision(utc(2026, 5, 4, 6), utc(2026, 5, 5, 6))
    assert decision.next_run_at > monday_noon


def test_three_days_of_downtime_give_no_run_with_skip() -> None:
    friday_8 = utc(2026, 5, 1, 6)
    monday_noon = utc(2026, 5, 4, 10)
    decision = due_runs(WEEKDAYS_AT_8, BERLIN, friday_8, monday_noon, "skip")
    assert decision == DueDecision(None, utc(2026, 5, 5, 6))


def test_every_minute_after_three_days_down_creates_one_execution_not_thousands() -> None:
    due = utc(2026, 5, 1, 10, 0)
    now = utc(2026, 5, 4, 10, 0, 30)
    decision = due_runs(EVERY_MINUTE, UTC_ZONE, due, now, "run_once")
    assert decision == DueDecision(utc(2026, 5, 4, 10, 0), utc(2026, 5, 4, 10, 1))
    # With skip, only the current minute's run (30 s late, within the grace) is kept.
    assert due_runs(EVERY_MINUTE, UTC_ZONE, due, now, "skip").run == utc(2026, 5, 4, 10, 0)
    assert due_runs(EVERY_MINUTE, UTC_ZONE, due, now, "skip", grace=timedelta(seconds=10)).run is None


def test_applying_the_decision_again_at_the_same_moment_creates_nothing_more() -> None:
    now = utc(2026, 5, 4, 10, 0, 30)
    first = due_runs(EVERY_MINUTE, UTC_ZONE, utc(2026, 5, 1, 10, 0), now, "run_once")
    assert due_runs(EVERY_MINUTE, UTC_ZONE, first.next_run_at, now, "run_once").run is None


def test_an_unknown_misfire_policy_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="misfire"):
        due_runs(EVERY_MINUTE, UTC_ZONE, NOT_DUE_AT, NOT_DUE_AT, "replay_all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        next_run(EVERY_MINUTE, UTC_ZONE, datetime(2026, 5, 4, 10, 0))


def test_describe_reads_the_schedule_in_words() -> None:
    assert describe(WEEKDAYS_AT_8) == "At 08:00 on Monday through Friday"
