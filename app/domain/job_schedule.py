"""Recurring jobs' schedules: cron expressions checked with cronsim, fire times in a time zone, missed runs.

Pure: every function takes the time it reasons about. Fire times are computed in the job's zone and returned
as aware UTC datetimes. Daylight-saving changes follow Debian cron, as cronsim does for a job at a fixed time
(specific minute and hour):
- spring forward: a time inside the gap (02:30 when clocks jump from 02:00 to 03:00) fires once, at the first
  valid time after the gap (03:00);
- fall back: a time that occurs twice (02:30 when clocks go from 03:00 back to 02:00) fires once, at its first
  occurrence (summer time).
A job with a wildcard minute or hour (`*/15 * * * *`, `30 * * * *`) fires by real elapsed time instead: every
hour that happens, the repeated one included, and none in the gap.

After downtime, missed runs are never replayed one by one: `due_runs` coalesces them into one run (the most
recent, `run_once`) or drops them (`skip`), keeping a run that is merely a little late (within `grace`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

Misfire = Literal["run_once", "skip"]
MISFIRE_POLICIES: tuple[str, ...] = get_args(Misfire)

# How late a run may start and still count as on time for `skip` (a dispatcher polls every few seconds and may
# be busy with another execution; a run later than this was missed, not delayed).
DEFAULT_GRACE = timedelta(minutes=1)

FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_ALLOWED = {
    "minute": "0-59",
    "hour": "0-23",
    "day of month": "1-31 or L (the last day)",
    "month": "1-12 or JAN-DEC",
    "day of week": "0-7 (0 and 7 are Sunday) or SUN-SAT",
}
_CRONSIM_FIELDS = {
    "minute": "minute",
    "hour": "hour",
    "day-of-month": "day of month",
    "month": "month",
    "day-of-week": "day of week",
}
_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_SYNTAX = "numbers, ranges a-b, lists a,b and steps */n"
# Any fixed instant does to check that an expression fires at all (cronsim looks 50 years ahead).
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)
# Fire times returned at or before `after` (a fall-back hour read as local time) are stepped past; a few do.
_MAX_STEPS = 8


class CronError(ValueError):
    """A cron expression that cannot be used; `field` names the part that is wrong.

    `field` is one of FIELDS, or "expression" when the expression as a whole is wrong (empty, the wrong number
    of fields, or one that never fires).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Cron:
    """A validated five-field cron expression (minute hour day-of-month month day-of-week), as stored."""

    expression: str


@dataclass(frozen=True)
class DueDecision:
    """What to do with a recurring job now: the scheduled time of the one execution to create (or None), and
    the job's next `next_run_at`, always strictly after `now`."""

    run: datetime | None
    next_run_at: datetime


def parse_cron(expr: str) -> Cron:
    """Validate a cron expression and return it; raise CronError naming the field that is wrong.

    Five fields, as crontab(5) has them, or one of @hourly, @daily, @weekly, @monthly, @yearly. Seconds (a sixth
    field) are not supported: a job runs at most once a minute.
    """
    text = " ".join(expr.split())
    text = _MACROS.get(text.lower(), text)
    parts = text.split(" ") if text else []
    if len(parts) == 6:
        raise CronError(
            "expression",
            f"cron expression {expr!r} has 6 fields: seconds are not supported; use the 5 fields "
            "minute hour day-of-month month day-of-week (e.g. '0 8 * * 1-5')",
        )
    if len(parts) != 5:
        raise CronError(
            "expression",
            f"cron expression {expr!r} has {len(parts)} fields; expected 5: minute hour day-of-month month "
            "day-of-week (e.g. '0 8 * * 1-5' for 08:00 on weekdays)",
        )
    try:
        next(CronSim(text, _PROBE))
    except CronSimError as exc:
        raise _field_error(expr, parts, str(exc)) from None
    except StopIteration:
        raise CronError("expression", f"cron expression {expr!r} never fires") from None
    return Cron(text)


def _field_error(expr: str, parts: list[str], reason: str) -> CronError:
    name = _CRONSIM_FIELDS.get(reason.removeprefix("Bad ").strip())
    if name is None:
        return CronError("expression", f"cron expression {expr!r} is not valid: {reason}")
    value = parts[FIELDS.index(name)]
    if name == "day of month" and not any(c.isalpha() for c in value) and _fits(value, 31):
        return CronError(name, f"cron expression {expr!r}: day of month {value!r} never occurs in month {parts[3]!r}")
    return CronError(
        name, f"cron expression {expr!r}: the {name} field {value!r} is not valid; use {_ALLOWED[name]}, {_SYNTAX}"
    )


def _fits(value: str, top: int) -> bool:
    """True when every number in a field is within 1..top (so the error is about the month, not the value)."""
    numbers = [n for n in value.replace("-", ",").replace("/", ",").split(",") if n and n != "*"]
    return all(n.isdigit() and 1 <= int(n) <= top for n in numbers)


def next_run(cron: Cron, tz: ZoneInfo, after: datetime) -> datetime:
    """The first fire time strictly after `after`, in `tz`'s wall-clock time, as an aware UTC datetime."""
    after_utc = _aware("after", after).astimezone(UTC)
    start = after_utc.astimezone(tz)
    times = CronSim(cron.expression, start)
    for _ in range(_MAX_STEPS):
        try:
            found = next(times).astimezone(UTC)
        except StopIteration:
            break
        if found > after_utc:
            return found
    raise CronError("expression", f"cron expression {cron.expression!r} has no fire time after {after.isoformat()}")


def previous_run(cron: Cron, tz: ZoneInfo, at: datetime) -> datetime | None:
    """The last fire time at or before `at` (aware UTC), or None when there is none in the last 50 years."""
    at_utc = _aware("at", at).astimezone(UTC)
    # cronsim's reverse iteration yields times strictly before its start: start one second on.
    times = CronSim(cron.expression, (at_utc + timedelta(seconds=1)).replace(microsecond=0).astimezone(tz), True)
    found = None
    for _ in range(_MAX_STEPS):
        try:
            found = next(times).astimezone(UTC)
        except StopIteration:
            return None
        if found <= at_utc:
            break
    if found is None or found > at_utc:
        return None
    # Read backwards as wall-clock time, the repeated hour of a fall-back day hides its first pass: step forward.
    for _ in range(_MAX_STEPS):
        later = next_run(cron, tz, found)
        if later > at_utc:
            break
        found = later
    return found


def due_runs(
    cron: Cron,
    tz: ZoneInfo,
    next_run_at: datetime,
    now: datetime,
    misfire: Misfire,
    *,
    grace: timedelta = DEFAULT_GRACE,
) -> DueDecision:
    """Whether a recurring job runs now, and when it runs next; missed runs are coalesced, never replayed.

    Due are `next_run_at` and every fire time after it up to `now`. With `run_once` one execution is created,
    for the most recent of them; with `skip` that one runs only if it is at most `grace` late, and the missed
    runs are dropped. Either way `next_run_at` moves to the first fire time after `now`.
    """
    if misfire not in MISFIRE_POLICIES:
        raise ValueError(f"misfire={misfire!r} must be one of {', '.join(MISFIRE_POLICIES)}")
    scheduled = _aware("next_run_at", next_run_at).astimezone(UTC)
    now_utc = _aware("now", now).astimezone(UTC)
    if scheduled > now_utc:
        return DueDecision(None, scheduled)
    latest = max(scheduled, previous_run(cron, tz, now_utc) or scheduled)
    upcoming = next_run(cron, tz, now_utc)
    if misfire == "skip" and now_utc - latest > grace:
        return DueDecision(None, upcoming)
    return DueDecision(latest, upcoming)


def describe(cron: Cron) -> str:
    """The schedule in words ("At 08:00 on Monday to Friday"), for `job show`."""
    return CronSim(cron.expression, _PROBE).explain()


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}={value.isoformat()} has no timezone; pass a timezone-aware UTC datetime")
    return value
