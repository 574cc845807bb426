"""How the daily report reads: its subject line and its plain-text and HTML bodies. Pure.

Separate from `daily_report.py` (what the report holds and when it goes out) because this is presentation
alone: it takes a finished `DailyReport` and decides nothing about what is listed. Like the report itself it
never names a recipient; uncertain sends appear by their ledger key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape

from app.domain.daily_report_model import COUNTED, CampaignRow, DailyReport, PausedCampaign, UncertainSend


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
    lines += [f"  {_paused(p)}" for p in report.paused] or ["  none"]
    return "\n".join(lines) + "\n"


def _paused(p: PausedCampaign) -> str:
    by = f" by {p.by}" if p.by else ""
    return f"{p.name} ({p.campaign_id}), since {_when(p.paused_at)}{by}: {p.reason or 'no reason recorded'}"


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
    parts.append(_html_list([_paused(p) for p in report.paused]))
    return f"<!doctype html><html><body>{''.join(parts)}</body></html>\n"
