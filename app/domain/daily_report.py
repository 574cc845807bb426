"""The daily report: what happened yesterday, and what needs the operator. Pure: plain values and `now` in.

"Yesterday" is the calendar day before the report's day in the report's time zone (OUTBOUND_REPORT_TIMEZONE),
so a day is 23 or 25 hours long across a DST change. The report never names a recipient: an uncertain send is
listed by its ledger key, which `outbound list-uncertain` and `resolve-send` take.

The report's values live in `daily_report_model.py` and its subject and bodies in `daily_report_render.py`;
every name is importable from here as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.domain.daily_report_model import COUNTED as COUNTED
from app.domain.daily_report_model import AccountAlert as AccountAlert
from app.domain.daily_report_model import AccountStanding as AccountStanding
from app.domain.daily_report_model import CampaignInfo as CampaignInfo
from app.domain.daily_report_model import CampaignRow as CampaignRow
from app.domain.daily_report_model import DailyReport as DailyReport
from app.domain.daily_report_model import PausedCampaign as PausedCampaign
from app.domain.daily_report_model import ReportInputs as ReportInputs
from app.domain.daily_report_model import UncertainSend as UncertainSend
from app.domain.daily_report_render import HEADER as HEADER
from app.domain.daily_report_render import RESOLVE_HINT as RESOLVE_HINT
from app.domain.daily_report_render import UNCERTAIN_COLUMNS as UNCERTAIN_COLUMNS
from app.domain.daily_report_render import render_html as render_html
from app.domain.daily_report_render import render_text as render_text
from app.domain.daily_report_render import subject as subject

NEAR_LIMIT = 0.8  # share of the daily limit from which an account is listed as near it
# `activities.type` -> the report's column (failures come from the ledger, see `CampaignRow`).
ACTIVITY_COLUMNS = {"sent": "sent", "replied": "replied", "bounced": "bounced", "unsubscribed": "unsubscribed"}


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(UTC))")
    return now


def report_day(now: datetime, tz: str) -> date:
    """The day a report sent at `now` covers: the local calendar day before `now`'s, in zone `tz`."""
    return _aware(now).astimezone(ZoneInfo(tz)).date() - timedelta(days=1)


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day in zone `tz`, in UTC: 23 or 25 hours apart across a DST change.

    In UTC because Python subtracts two times of one zone by their wall clocks (always 24 hours here).
    """
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0, 0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def report_due(now: datetime, at: time, tz: str, last_sent_day: date | None) -> bool:
    """True when the report for yesterday should go out at `now`: the local clock in `tz` reads `at` or later
    and yesterday's report is not the last one sent.

    The wall clock is compared, not an instant: on the day a DST change skips `at` (02:30 in Europe/Berlin in
    March) the report goes out as the clock jumps past it, and on the day `at` occurs twice it goes at the first.
    """
    local = _aware(now).astimezone(ZoneInfo(tz))
    return local.time().replace(tzinfo=None) >= at and last_sent_day != local.date() - timedelta(days=1)


def _campaign_row(info: CampaignInfo, counts: Mapping[str, int], failed: int) -> CampaignRow:
    columns = {column: int(counts.get(kind, 0)) for kind, column in ACTIVITY_COLUMNS.items()}
    return CampaignRow(info.campaign_id, info.name, info.status, failed=failed, **columns)


def _by_job(infos: Sequence[CampaignInfo], rows: Sequence[CampaignRow]) -> list[CampaignRow]:
    """Sequence campaigns row by row, and each job's executions (a campaign per run, up to 1,440 a day) summed
    into one row, "Job: <name>", active when one of them is (else paused when one is)."""
    out: list[CampaignRow] = []
    jobs: dict[str, list[CampaignRow]] = {}
    names: dict[str, str] = {}
    for info, row in zip(infos, rows, strict=True):
        if info.job_id is None:
            out.append(row)
            continue
        jobs.setdefault(info.job_id, []).append(row)
        names[info.job_id] = info.job_name or info.job_id
    for job_id, group in jobs.items():
        sums = {name: sum(getattr(r, name) for r in group) for name in COUNTED}
        statuses = {r.status for r in group}
        status = next((s for s in ("active", "paused") if s in statuses), group[0].status)
        out.append(CampaignRow(f"job:{job_id}", f"Job: {names[job_id]}", status, **sums))
    return out


def _total(rows: Sequence[CampaignRow]) -> CampaignRow:
    sums = {name: sum(getattr(r, name) for r in rows) for name in COUNTED}
    return CampaignRow("", "all campaigns", "", **sums)


def _has_counts(row: CampaignRow) -> bool:
    return any(getattr(row, name) for name in COUNTED)


def account_notes(standing: AccountStanding) -> tuple[str, ...]:
    """Why an account is listed (empty: it is not): out of rotation, and over, at or near its daily limit."""
    notes: list[str] = []
    if standing.status != "active":
        why = f": {standing.disabled_reason}" if standing.disabled_reason else ""
        notes.append(f"out of rotation ({standing.status}{why})")
    limit, sent = standing.limit, standing.sent
    if limit is not None and sent > limit:
        notes.append(f"over its daily limit ({sent}/{limit})")
    elif limit is not None and sent == limit:
        notes.append(f"at its daily limit ({sent}/{limit})")
    elif limit is not None and limit > 0 and sent >= NEAR_LIMIT * limit:
        notes.append(f"near its daily limit ({sent}/{limit}, {100 * sent / limit:.0f}%)")
    return tuple(notes)


def build_report(inputs: ReportInputs, day: date, tz: str, now: datetime) -> DailyReport:
    """The report of `day` from what was read: every active or paused campaign and any other with counts on
    the day (busiest first; a job's executions as one row per job), the accounts that need a look, the oldest
    uncertain sends and paused campaigns."""
    rows = [
        _campaign_row(c, inputs.activity_counts.get(c.campaign_id, {}), inputs.failures.get(c.campaign_id, 0))
        for c in inputs.campaigns
    ]
    shown = [r for r in _by_job(inputs.campaigns, rows) if r.status in ("active", "paused") or _has_counts(r)]
    shown.sort(key=lambda r: (-r.sent, r.name, r.campaign_id))
    alerts = [
        AccountAlert(a.account_id, a.email, a.status, a.sent, a.limit, notes)
        for a in sorted(inputs.accounts, key=lambda a: (a.email, a.account_id))
        if (notes := account_notes(a))
    ]
    paused = [
        PausedCampaign(c.campaign_id, c.name, c.paused_reason, c.paused_at, c.paused_by)
        for c in sorted(inputs.campaigns, key=lambda c: (c.name, c.campaign_id))
        if c.status == "paused"
    ]
    return DailyReport(
        day=day.isoformat(),
        timezone=tz,
        generated_at=_aware(now),
        campaigns=tuple(shown),
        totals=_total(rows),
        accounts=tuple(alerts),
        uncertain_total=inputs.uncertain_total,
        uncertain=tuple(inputs.uncertain_oldest),
        paused=tuple(paused),
    )
