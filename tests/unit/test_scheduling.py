"""Scheduling arithmetic: UTC days, due times, dispatcher sleeps and retry backoff, as tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.domain.scheduling import (
    after_minutes,
    backoff_seconds,
    next_day_start,
    next_step_due,
    recipient_due,
    sleep_seconds,
    utc_day,
)

T0 = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
PLUS_5 = timezone(timedelta(hours=5))
MINUS_8 = timezone(timedelta(hours=-8))


@pytest.mark.parametrize(
    ("now", "day"),
    [
        (T0, "2026-03-14"),
        (datetime(2026, 3, 14, 0, 0, tzinfo=UTC), "2026-03-14"),
        (datetime(2026, 3, 14, 23, 59, 59, 999999, tzinfo=UTC), "2026-03-14"),
        # Local times count by their UTC day, not their wall-clock day.
        (datetime(2026, 3, 15, 2, 0, tzinfo=PLUS_5), "2026-03-14"),
        (datetime(2026, 3, 14, 17, 0, tzinfo=MINUS_8), "2026-03-15"),
        (datetime(2024, 12, 31, 23, 0, tzinfo=UTC), "2024-12-31"),
    ],
)
def test_utc_day_is_the_calendar_day_in_utc(now: datetime, day: str) -> None:
    assert utc_day(now) == day


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0, datetime(2026, 3, 15, tzinfo=UTC)),
        (datetime(2026, 3, 14, 0, 0, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)),
        (datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)),
        (datetime(2024, 2, 28, 12, 0, tzinfo=UTC), datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2026, 12, 31, 12, 0, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2026, 3, 14, 17, 0, tzinfo=MINUS_8), datetime(2026, 3, 16, tzinfo=UTC)),
    ],
)
def test_next_day_start_is_the_following_utc_midnight(now: datetime, expected: datetime) -> None:
    start = next_day_start(now)
    assert start == expected
    assert start.tzinfo is UTC
    assert start > now


def test_next_day_start_opens_a_new_utc_day() -> None:
    assert utc_day(next_day_start(T0)) != utc_day(T0)


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (0, T0),
        (4, T0 + timedelta(minutes=4)),
        (0.5, T0 + timedelta(seconds=30)),
        (1440, T0 + timedelta(days=1)),
    ],
)
def test_after_minutes_adds_fractional_minutes(minutes: float, expected: datetime) -> None:
    assert after_minutes(T0, minutes) == expected


@pytest.mark.parametrize("minutes", [-1, float("nan"), float("inf")])
def test_after_minutes_refuses_negative_or_non_finite_minutes(minutes: float) -> None:
    with pytest.raises(ValueError, match="minutes"):
        after_minutes(T0, minutes)


def test_naive_datetimes_are_refused_with_a_hint() -> None:
    naive = datetime(2026, 3, 14, 9, 30)
    for call in (
        lambda: utc_day(naive),
        lambda: next_day_start(naive),
        lambda: after_minutes(naive, 1),
        lambda: sleep_seconds(naive, T0, 5),
    ):
        with pytest.raises(ValueError, match="timezone-aware UTC"):
            call()


def test_next_step_is_due_its_delay_after_the_previous_step_finished() -> None:
    assert next_step_due(T0, 0) == T0
    assert next_step_due(T0, 2880) == T0 + timedelta(days=2)


def test_next_recipient_is_due_min_wait_after_the_previous_send() -> None:
    assert recipient_due(T0, 4) == T0 + timedelta(minutes=4)
    assert recipient_due(T0, 0) == T0


@pytest.mark.parametrize(
    ("earliest_due", "poll", "expected"),
    [
        (None, 5.0, 5.0),  # nothing scheduled: poll
        (T0 + timedelta(seconds=2), 5.0, 2.0),  # due before the next poll: wake for it
        (T0 + timedelta(seconds=30), 5.0, 5.0),  # due later: poll first (new work may arrive)
        (T0, 5.0, 0.0),  # due now
        (T0 - timedelta(minutes=3), 5.0, 0.0),  # overdue: never negative
        (T0 + timedelta(milliseconds=250), 5.0, 0.25),
        (None, 0.0, 0.0),
    ],
)
def test_dispatcher_sleeps_until_the_earliest_due_or_one_poll(
    earliest_due: datetime | None, poll: float, expected: float
) -> None:
    assert sleep_seconds(T0, earliest_due, poll) == pytest.approx(expected)


@pytest.mark.parametrize("poll", [-1.0, float("nan"), float("inf")])
def test_sleep_refuses_a_bad_poll_interval(poll: float) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        sleep_seconds(T0, None, poll)


def _fixed(value: float) -> Callable[[], float]:
    return lambda: value


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        (1, 30.0, 60.0),
        (2, 60.0, 120.0),
        (3, 120.0, 240.0),
        (4, 240.0, 480.0),
        (6, 960.0, 1920.0),
        (7, 1800.0, 3600.0),  # 3840 capped at 3600
        (50, 1800.0, 3600.0),
        (10_000, 1800.0, 3600.0),  # no overflow however long an outage lasts
    ],
)
def test_backoff_doubles_from_base_up_to_cap_with_equal_jitter(attempt: int, low: float, high: float) -> None:
    assert backoff_seconds(attempt, base=60, cap=3600, rand=_fixed(0.0)) == pytest.approx(low)
    assert backoff_seconds(attempt, base=60, cap=3600, rand=_fixed(1.0)) == pytest.approx(high)
    middle = backoff_seconds(attempt, base=60, cap=3600, rand=_fixed(0.5))
    assert low < middle < high


def test_backoff_is_never_zero_and_never_above_cap_with_real_randomness() -> None:
    waits = [backoff_seconds(a, base=1.5, cap=20.0) for a in range(1, 12) for _ in range(50)]
    assert min(waits) >= 0.75
    assert max(waits) <= 20.0


def test_backoff_clamps_a_random_source_outside_zero_to_one() -> None:
    assert backoff_seconds(1, base=10, cap=100, rand=_fixed(-3.0)) == pytest.approx(5.0)
    assert backoff_seconds(1, base=10, cap=100, rand=_fixed(7.0)) == pytest.approx(10.0)


def test_backoff_grows_monotonically_at_fixed_jitter() -> None:
    waits = [backoff_seconds(a, base=2, cap=1000, rand=_fixed(0.3)) for a in range(1, 15)]
    assert waits == sorted(waits)
    assert waits[-1] == pytest.approx(500 + 0.3 * 500)


@pytest.mark.parametrize("attempt", [0, -1])
def test_backoff_refuses_attempts_below_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_seconds(attempt, base=60, cap=3600)


@pytest.mark.parametrize(("base", "cap"), [(0, 10), (-1, 10), (10, 5), (float("nan"), 10), (1, float("inf"))])
def test_backoff_refuses_base_and_cap_that_make_no_schedule(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base"):
        backoff_seconds(1, base=base, cap=cap)
