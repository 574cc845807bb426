"""An account's own days and hours, pure: the keys of its counters and when its limits reset.

An account counts its sends per calendar day and per clock hour of its time zone (`email_accounts.timezone`,
IANA, default UTC), so its daily limits roll over at its local midnight and its hourly ones at its local hour.
Separate from `limits.py` (which limits apply and whether there is room) because this is calendar arithmetic
alone: it knows nothing of limits, and the usage store keys its documents with it.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def account_day(now: datetime, tz: str) -> str:
    """The account's calendar day of `now` in its time zone `tz` (IANA) as "YYYY-MM-DD": the key of its daily
    counters, which roll over at its local midnight."""
    return _local(now, tz).date().isoformat()


def account_hour(now: datetime, tz: str) -> str:
    """The account's local clock hour of `now` as "HH" (00-23): the key of its hourly counters inside the day's
    usage document. The hour repeated when clocks go back counts as one hour (stricter, never looser)."""
    return f"{_local(now, tz).hour:02d}"


def next_account_day_start(now: datetime, tz: str) -> datetime:
    """The next local midnight after `now` in `tz`, in UTC: when the account's daily limits reset."""
    day = _local(now, tz).date() + timedelta(days=1)
    return datetime.combine(day, time(0), tzinfo=_zone(tz)).astimezone(UTC)


def next_account_hour_start(now: datetime, tz: str) -> datetime:
    """The start of the account's next local clock hour after `now`, in UTC: when its hourly limits reset."""
    local = _local(now, tz)
    # Wall-clock arithmetic: the hour repeated when clocks go back is one hour here too, as in `account_hour`.
    start = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return max(start.astimezone(UTC), now.astimezone(UTC) + timedelta(microseconds=1))


def _local(now: datetime, tz: str) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now={now.isoformat()} has no timezone; pass a timezone-aware UTC datetime")
    return now.astimezone(_zone(tz))
