"""The daily report: what happened yesterday, and what needs the operator. Pure: plain values and `now` in.

"Yesterday" is the calendar day before the report's day in the report's time zone (OUTBOUND_REPORT_TIMEZONE),
so a day is 23 or 25 hours long across a DST change. The report never names a recipient: an uncertain send is
listed by its ledger key, which `outbound list-uncertain` and `resolve-send` take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from zoneinfo import ZoneInfo

NEAR_LIMIT = 0.8  # share of the daily limit from which an account is listed as near it
COUNTED = ("sent", "replied", "bounced", "unsubscribed", "failed")
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


@dataclass(frozen=True)
class CampaignInfo:
    """What the report shows of a campaign document."""

    campaign_id: str
    name: str
    status: str
    paused_reason: str | None = None
    paused_at: datetime | None = None
    job_id: str | None = None  # the campaign of a job's execution: its counts are shown under its job
    job_name: str | None = None


@dataclass(frozen=True)
class AccountStanding:
    """One account on the report's day: its status and what it sent against its daily limit (None: no limit)."""

    account_id: str
    email: str
    status: str
    disabled_reason: str | None
    sent: int
    limit: int | None


@dataclass(frozen=True)
class UncertainSend:
    """A send nobody can vouch for, by its ledger key (never the recipient's address)."""

    send_key: str
    campaign_id: str | None
    account_id: str | None
    since: datetime | None
    why: str | None


@dataclass(frozen=True)
class ReportInputs:
    """Everything the gatherer read for one day, as plain values."""

    campaigns: Sequence[CampaignInfo]
    activity_counts: Mapping[str, Mapping[str, int]]  # campaign id -> activity type -> count on the day
    failures: Mapping[str, int]  # campaign id -> ledger entries that became `failed` on the day
    accounts: Sequence[AccountStanding]
    uncertain_total: int
    uncertain_oldest: Sequence[UncertainSend]


@dataclass(frozen=True)
class CampaignRow:
    """One campaign's day: sends, replies, hard bounces and unsubscribes (activities), failures (the ledger)."""

    campaign_id: str
    name: str
    status: str
    sent: int = 0
    replied: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class AccountAlert:
    """An account that needs a look: near, at or over its daily limit, or out of rotation."""

    account_id: str
    email: str
    status: str
    sent: int
    limit: int | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class PausedCampaign:
    """A paused campaign and why."""

    campaign_id: str
    name: str
    reason: str | None
    paused_at: datetime | None


@dataclass(frozen=True)
class DailyReport:
    """The report for `day` (ISO date, local to `timezone`), as of `generated_at`."""

    day: str
    timezone: str
    generated_at: datetime
    campaigns: tuple[CampaignRow, ...]
    totals: CampaignRow
    accounts: tuple[AccountAlert, ...]
    uncertain_total: int
    uncertain: tuple[UncertainSend, ...]
    paused: tuple[PausedCampaign, ...]


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
        PausedCampaign(c.campaign_id, c.name, c.paused_reason, c.paused_at)
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


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def subject(report: DailyReport) -> str:
    """The subject line: the day, its totals and how many things need the operator (never an address)."""
    t = report.totals
    parts = [
        f"{t.sent} sent",
        _plural(t.replied, "reply", "replies"),
        _plural(t.bounced, "bounce"),
        _plural(t.unsubscribed, "unsubscribe"),
        f"{t.failed} failed",
    ]
    attention = []
    if report.accounts:
        attention.append(_plural(len(report.accounts), "account") + " to check")
    if report.uncertain_total:
        attention.append(_plural(report.uncertain_total, "uncertain send"))
    if report.paused:
        attention.append(_plural(len(report.paused), "paused campaign"))
    tail = f"; {', '.join(attention)}" if attention else ""
    return f"Outbound daily report {report.day}: {', '.join(parts)}{tail}"


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _campaign_cells(row: CampaignRow) -> list[str]:
    label = f"{row.name} ({row.campaign_id})" if row.campaign_id else row.name
    return [label, *(str(getattr(row, name)) for name in COUNTED)]


def _uncertain_cells(send: UncertainSend, names: Mapping[str, str]) -> list[str]:
    campaign = names.get(send.campaign_id or "", send.campaign_id or "-")
    return [send.send_key, campaign, send.account_id or "-", _when(send.since), send.why or "-"]


HEADER = "Outbound daily report"
RESOLVE_HINT = "settle each with `outbound resolve-send <send> --sent` (delivered) or `--resend`"
UNCERTAIN_COLUMNS = ("send", "campaign", "account", "since", "why")


def _text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    line = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return [line.format(*columns).rstrip(), *(line.format(*r).rstrip() for r in rows)]


def render_text(report: DailyReport) -> str:
    """The plain-text body."""
    names = {c.campaign_id: c.name for c in report.campaigns}
    lines = [f"{HEADER} for {report.day} ({report.timezone}), made {_when(report.generated_at)}", "", "Campaigns"]
    rows = [_campaign_cells(r) for r in (*report.campaigns, report.totals)]
    lines += _text_table(["campaign", *COUNTED], rows)
    lines += ["", "Accounts to check"]
    lines += [f"  {a.email} ({a.account_id}): {'; '.join(a.notes)}" for a in report.accounts] or ["  none"]
    lines += ["", f"Uncertain sends: {report.uncertain_total}"]
    if report.uncertain:
        lines.append(f"  oldest {len(report.uncertain)}; {RESOLVE_HINT}")
        lines += ["  " + "  ".join(_uncertain_cells(u, names)) for u in report.uncertain]
    lines += ["", "Paused campaigns"]
    lines += [
        f"  {p.name} ({p.campaign_id}), since {_when(p.paused_at)}: {p.reason or 'no reason recorded'}"
        for p in report.paused
    ] or ["  none"]
    return "\n".join(lines) + "\n"


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table border="1" cellpadding="4" cellspacing="0"><tr>{head}</tr>{body}</table>'


def _html_list(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>" if items else "<p>none</p>"


def render_html(report: DailyReport) -> str:
    """The HTML body: the text body's sections as tables and lists, every value escaped."""
    names = {c.campaign_id: c.name for c in report.campaigns}
    title = f"{HEADER} for {report.day} ({report.timezone})"
    parts = [f"<h1>{escape(title)}</h1>", f"<p>made {escape(_when(report.generated_at))}</p>", "<h2>Campaigns</h2>"]
    parts.append(_html_table(["campaign", *COUNTED], [_campaign_cells(r) for r in (*report.campaigns, report.totals)]))
    parts.append("<h2>Accounts to check</h2>")
    parts.append(_html_list([f"{a.email} ({a.account_id}): {'; '.join(a.notes)}" for a in report.accounts]))
    parts.append(f"<h2>Uncertain sends: {report.uncertain_total}</h2>")
    if report.uncertain:
        parts.append(f"<p>oldest {len(report.uncertain)}; {escape(RESOLVE_HINT)}</p>")
        parts.append(_html_table(UNCERTAIN_COLUMNS, [_uncertain_cells(u, names) for u in report.uncertain]))
    parts.append("<h2>Paused campaigns</h2>")
    paused = [
        f"{p.name} ({p.campaign_id}), since {_when(p.paused_at)}: {p.reason or 'no reason recorded'}"
        for p in report.paused
    ]
    parts.append(_html_list(paused))
    return f"<!doctype html><html><body>{''.join(parts)}</body></html>\n"
