"""Sending windows: the local days and hours a campaign may send in, and when the next one opens. Pure.

A window belongs to the local date it opens on: with `start` 22:00 and `end` 02:00, Friday's window runs from
Friday 22:00 to Saturday 02:00, so `days` and `blackout_dates` name the day a window opens. Times are wall-clock
times in the schedule's zone (or the recipient's), so 09:00 stays 09:00 across a daylight-saving change. A start
that does not exist that day (the spring-forward gap) opens at the first instant after it, the end of the gap;
a time that happens twice (the autumn fold) means its first occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WORKING_DAYS = frozenset(range(5))
_HH_MM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


class InvalidSchedule(ValueError):
    """A `settings.schedule` that cannot be used; `field` is its path under the schedule."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Schedule:
    """`campaigns.settings.schedule`: when the campaign may send, in local time.

    `days` are weekday numbers (0 is Monday). `end` at or before `start` spans midnight (equal: 24 hours).
    """

    timezone: ZoneInfo
    start: time
    end: time
    days: frozenset[int] = WORKING_DAYS
    blackout_dates: frozenset[date] = frozenset()
    recipient_timezone: bool = False  # a recipient's own valid `timezone` field wins over `timezone`

    def zone_for(self, recipient_fields: Mapping[str, Any]) -> ZoneInfo:
        """The zone a recipient's window is read in: theirs when asked for and valid, else the campaign's."""
        if self.recipient_timezone:
            own = zone(recipient_fields.get("timezone"))
            if own is not None:
                return own
        return self.timezone


def zone(name: object) -> ZoneInfo | None:
    """The IANA time zone called `name`, or None when there is none (not a string, unknown, malformed)."""
    if not isinstance(name, str) or not name.strip():
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_schedule(raw: Mapping[str, Any]) -> Schedule:
    """Read a stored schedule; raise InvalidSchedule naming the field and what it accepts."""
    tz = zone(raw.get("timezone"))
    if tz is None:
        raise InvalidSchedule(
            "timezone", f"must be an IANA time zone such as America/New_York, got {raw.get('timezone')!r}"
        )
    return Schedule(
        timezone=tz,
        start=_clock_time(raw, "start"),
        end=_clock_time(raw, "end"),
        days=_days(raw.get("days")),
        blackout_dates=_blackout_dates(raw.get("blackout_dates")),
        recipient_timezone=_flag(raw, "recipient_timezone"),
    )


def _clock_time(raw: Mapping[str, Any], name: str) -> time:
    value = raw.get(name)
    found = _HH_MM.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise InvalidSchedule(name, f"must be a local time as HH:MM (00:00 to 23:59), got {value!r}")
    return time(int(found[1]), int(found[2]))


def _days(value: Any) -> frozenset[int]:
    if value is None:
        return WORKING_DAYS
    if not isinstance(value, list):
        raise InvalidSchedule("days", f'must be a list of days such as ["mon", "tue"], got {value!r}')
    days = set()
    for item in value:
        name = item.strip().lower() if isinstance(item, str) else None
        if name in DAY_NAMES:
            days.add(DAY_NAMES.index(name))
        elif name in FULL_DAY_NAMES:
            days.add(FULL_DAY_NAMES.index(name))
        else:
            raise InvalidSchedule("days", f"must name days as {', '.join(DAY_NAMES)}, got {item!r}")
    if not days:
        raise InvalidSchedule("days", "must name at least one day: a schedule with every day closed never sends")
    return frozenset(days)


def _blackout_dates(value: Any) -> frozenset[date]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise InvalidSchedule("blackout_dates", f"must be a list of dates as YYYY-MM-DD, got {value!r}")
    return frozenset(_blackout_date(item) for item in value)


def _blackout_date(item: Any) -> date:
    if isinstance(item, datetime):  # a date stored as a BSON date: its calendar day
        return item.date()
    if isinstance(item, str) and len(item.strip()) == 10:
        try:
            return date.fromisoformat(item.strip())
        except ValueError:
            pass
    raise InvalidSchedule("blackout_dates", f"must be dates as YYYY-MM-DD, got {item!r}")


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise InvalidSchedule(name, f"must be true or false, got {value!r}")
    return value


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall time `at` on `day` in `tz`: the first occurrence of a repeated time, and for a time
    the clocks skip, the first instant after it (the end of the gap)."""
    wall = datetime.combine(day, at, tzinfo=tz)
    instant = wall.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return instant
    # In a gap, `fold=0` reads the wall time with the offset before the change (an instant after the gap) and
    # `fold=1` with the offset after it (an instant before the gap): the change lies between, found to the second.
    before = int(wall.replace(fold=1).astimezone(UTC).timestamp())
    after = int(instant.timestamp())
    first_offset = _offset(before, tz)
    while after - before > 1:
        middle = (before + after) // 2
        if _offset(middle, tz) == first_offset:
            before = middle
        else:
            after = middle
    return datetime.fromtimestamp(after, UTC)


def _offset(timestamp: int, tz: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(timestamp, tz).utcoffset()


@dataclass(frozen=True)
class Window:
    """One opening: from `opens` to `closes` (UTC instants)."""

    opens: datetime
    closes: datetime


def window_on(day: date, schedule: Schedule, tz: ZoneInfo) -> Window | None:
    """The window that opens on local date `day`, or None when that day is closed (its weekday or a blackout)."""
    if day.weekday() not in schedule.days or day in schedule.blackout_dates:
        return None
    end_day = day if schedule.end > schedule.start else day + timedelta(days=1)
    return Window(local_instant(day, schedule.start, tz), local_instant(end_day, schedule.end, tz))


def is_open(now: datetime, schedule: Schedule, tz: ZoneInfo) -> bool:
    """True when `now` (aware) lies in a window of `schedule` read in `tz`."""
    return next_open(now, schedule, tz) == now


def next_open(now: datetime, schedule: Schedule, tz: ZoneInfo) -> datetime:
    """`now` when a window is open then, else the instant (UTC) the next window opens. `now` must be aware."""
    if now.tzinfo is None:
        raise ValueError("next_open needs an aware time (UTC or with an offset), got a naive one")
    today = now.astimezone(tz).date()
    # Yesterday's window may span midnight into today; past that, each closed weekday or blackout date can push
    # the opening at most one day further.
    for offset in range(-1, 7 * (len(schedule.blackout_dates) + 2)):
        window = window_on(today + timedelta(days=offset), schedule, tz)
        # A window inside the spring-forward gap has no instant at all.
        if window is None or window.closes <= now or window.closes <= window.opens:
            continue
        return now if window.opens <= now else window.opens
    raise ValueError("the schedule has no opening day")  # parse_schedule refuses a schedule with no days


def describe_opening(at: datetime, tz: ZoneInfo) -> str:
    """A window's opening as an operator reads it: `Mon 2025-03-10 09:00 EDT (America/New_York)`."""
    local = at.astimezone(tz)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()} ({tz.key})"
