"""`report show` and `report send --now`: the daily report on the terminal, or mailed on demand.

The dispatcher mails the report once a day by itself (OUTBOUND_REPORT_TO, OUTBOUND_REPORT_AT); `send --now`
mails it at once without the daily claim, so the scheduled one still goes out, and notes the send in
`report_runs` (`manual`).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Any

import typer

from app.cli.common import (
    JSON_OPTION,
    console,
    err_console,
    fail,
    fmt_time,
    now_utc,
    print_json,
    print_table,
    run_db,
    settings_of,
)
from app.config import Settings
from app.credentials import credentials_for
from app.domain import reports
from app.domain.daily_report import COUNTED, DailyReport, report_day, subject
from app.report.sending import Delivery, ReportError, build, deliver, report_account, send_timeout
from app.store import daily_report as store
from app.store.client import Database
from app.transport.smtp import SmtpSender

report_app = typer.Typer(help="The daily report: show it, or mail it now.", no_args_is_help=True)

DAY_OPTION = typer.Option(
    None, "--day", help="The day to report, YYYY-MM-DD in OUTBOUND_REPORT_TIMEZONE (default: yesterday there)."
)


def _day(text: str | None, settings: Settings, now: datetime) -> date:
    if text is None:
        return report_day(now, settings.report_timezone)
    try:
        return date.fromisoformat(reports.parse_day(text))
    except ValueError as exc:
        fail(f"--day: {exc}", code=2)


def _render(report: DailyReport) -> None:
    console.print(f"[bold]{subject(report)}[/]")
    console.print(f"day {report.day} in {report.timezone}, made {fmt_time(report.generated_at)} UTC")
    rows = [
        [f"{r.name} ({r.campaign_id})" if r.campaign_id else r.name, *(getattr(r, n) for n in COUNTED)]
        for r in (*report.campaigns, report.totals)
    ]
    print_table("Campaigns", ["campaign", *COUNTED], rows)
    accounts = [[a.account_id, a.email, a.status, a.sent, a.limit, "; ".join(a.notes)] for a in report.accounts]
    print_table("Accounts to check", ["id", "email", "status", "sent", "limit", "why"], accounts)
    uncertain = [[u.send_key, u.campaign_id, u.account_id, fmt_time(u.since), u.why] for u in report.uncertain]
    title = f"Uncertain sends: {report.uncertain_total} (oldest {len(report.uncertain)}; settle with resolve-send)"
    print_table(title, ["send", "campaign", "account", "since (UTC)", "why"], uncertain)
    paused = [[p.campaign_id, p.name, fmt_time(p.paused_at), p.reason] for p in report.paused]
    print_table("Paused campaigns", ["id", "name", "since (UTC)", "reason"], paused)


def show(ctx: typer.Context, day: str | None = DAY_OPTION, json_: bool = JSON_OPTION) -> None:
    """Print the daily report: per campaign the day's sends, replies, bounces, unsubscribes and failures; the
    accounts near, at or over their daily limit or out of rotation; uncertain sends; paused campaigns.

    Example: outbound report show --day 2025-01-31 --json
    """
    settings, now = settings_of(ctx), now_utc()
    chosen = _day(day, settings, now)
    report = run_db(settings, lambda db: build(db, chosen, settings.report_timezone, now), read_only=True)
    if json_:
        print_json({"subject": subject(report), **asdict(report)})
    else:
        _render(report)


async def _send(db: Database, settings: Settings, day: date, now: datetime) -> Delivery | str:
    """Mail the report of `day` now; the Delivery, or why it could not even start."""
    try:
        account = await report_account(db, settings)
    except ReportError as exc:
        return str(exc)
    report = await build(db, day, settings.report_timezone, now)
    sender = SmtpSender(
        timeout=settings.smtp_timeout,
        default_starttls=settings.smtp_starttls,
        local_hostname=settings.helo_name,
        credentials=credentials_for(settings),
    )
    try:
        delivery = await deliver(sender, account, report, settings.report_to, timeout=send_timeout(settings))
    finally:
        await sender.close()
    entry: dict[str, Any] = {
        "at": now,
        "account_id": delivery.account_id,
        "delivered": list(delivery.delivered),
        "message_ids": list(delivery.message_ids),
        "error": delivery.error,
    }
    await store.record_manual(db, day.isoformat(), entry)
    return delivery


def send(
    ctx: typer.Context,
    now_: bool = typer.Option(False, "--now", help="Mail it now (without this, the dispatcher mails it daily)."),
    day: str | None = DAY_OPTION,
    json_: bool = JSON_OPTION,
) -> None:
    """Mail the daily report now to OUTBOUND_REPORT_TO from the report account (OUTBOUND_REPORT_ACCOUNT, else the
    first active account). The day's scheduled report still goes out; this send is noted in report_runs.

    Example: outbound report send --now --day 2025-01-31
    """
    settings, now = settings_of(ctx), now_utc()
    if not now_:
        fail("say when: `outbound report send --now` mails it now; the dispatcher mails it daily by itself", code=2)
    if not settings.report_to:
        fail("no recipients: set OUTBOUND_REPORT_TO to one or more addresses, separated by commas", code=2)
    chosen = _day(day, settings, now)
    result = run_db(settings, lambda db: _send(db, settings, chosen, now))
    if isinstance(result, str):
        fail(result)
    summary = {"day": chosen.isoformat(), **asdict(result), "error": result.error}
    if json_:
        print_json(summary)
    elif result.delivered:
        console.print(f"Report for {chosen.isoformat()} sent to {', '.join(result.delivered)}.")
    if result.errors:
        for error in result.errors:
            err_console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `report show` and `report send`."""
    report_app.command("show")(show)
    report_app.command("send")(send)
    app.add_typer(report_app, name="report")
