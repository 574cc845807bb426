"""Pure time arithmetic: UTC days, due times, waits and retry backoff. Every function takes `now` or a time.

Nothing here reads the clock or sleeps: callers pass the time in and do the waiting themselves, so the rules
are tested with plain tables.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

# 2**62 * base overflows no float, and no schedule needs a longer ceiling than that.
_MAX_DOUBLINGS = 62


def _require_aware(name: str, value: datetime) -> datetime:
    """Naive datetimes are ambiguous; every time in Outbound is timezone-aware UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}={value.isoformat()} has no timezone; pass a timezone-aware UTC datetime")
    return value


def _require_minutes(name: str, minutes: float) -> float:
    if not math.isfinite(minutes) or minutes < 0:
        raise ValueError(f"{name}={minutes!r} must be a finite number of minutes >= 0")
    return minutes


def utc_day(now: datetime) -> str:
    """The UTC calendar day of `now` as "YYYY-MM-DD" (the key of daily send counters)."""
    return _require_aware("now", now).astimezone(UTC).date().isoformat()


def next_day_start(now: datetime) -> datetime:
    """The next UTC midnight after `now`: when daily limits reset."""
    day = _require_aware("now", now).astimezone(UTC).date() + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=UTC)


def after_minutes(when: datetime, minutes: float) -> datetime:
    """`when` plus a non-negative number of minutes (fractions allowed)."""
    _require_minutes("minutes", minutes)
    return _require_aware("when", when) + timedelta(minutes=minutes)


def backoff_seconds(
    attempt: int,
    *,
    base: float,
    cap: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (1-based): exponential backoff with "equal jitter".

    The ceiling doubles per attempt from `base` and stops at `cap`; half of it is fixed and half random, so
    racing retries spread out yet a retry never comes immediately. Attempt 1 waits between base/2 and base.
    """
    if attempt < 1:
        raise ValueError(f"attempt={attempt} must be >= 1 (the first retry is attempt 1)")
    if not (math.isfinite(base) and base > 0 and math.isfinite(cap) and cap >= base):
        raise ValueError(f"backoff needs 0 < base <= cap, got base={base!r}, cap={cap!r}")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))
    # Clamped so an injected random source can never push the wait outside [ceiling/2, ceiling].
    jitter = min(max(rand(), 0.0), 1.0)
    return ceiling / 2 + jitter * ceiling / 2


def next_step_due(finished_at: datetime, delay_minutes: float) -> datetime:
    """When a lead's next step is due: the step's delay after the previous step finished (or enrolment)."""
    return after_minutes(finished_at, delay_minutes)


def recipient_due(last_sent_at: datetime, min_wait_minutes: float) -> datetime:
    """When the next recipient of a lead may be mailed: `min_wait_time` after the previous one."""
    return after_minutes(last_sent_at, min_wait_minutes)


def sleep_seconds(now: datetime, earliest_due: datetime | None, poll_interval: float) -> float:
    """How long the dispatcher sleeps: until the earliest due time or one poll interval, whichever is sooner.

    Never negative: work already due means no sleep at all.
    """
    if not math.isfinite(poll_interval) or poll_interval < 0:
        raise ValueError(f"poll_interval={poll_interval!r} must be a finite number of seconds >= 0")
    if earliest_due is None:
        return poll_interval
    until_due = (_require_aware("earliest_due", earliest_due) - _require_aware("now", now)).total_seconds()
    return max(0.0, min(poll_interval, until_due))
