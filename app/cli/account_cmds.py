"""`list-accounts`, `show-account-stats` and `reset-account-limits`: sending accounts, their day's sends and limits.

Every document is read through its typed view; a malformed one is reported and skipped. Credentials are never
copied into the output. `list-accounts` also names the active campaigns each account cannot render (`cannot_send`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from app.cli.common import (
    JSON_OPTION,
    YES_OPTION,
    Skipped,
    confirm,
    console,
    emit,
    fail,
    fmt_time,
    now_utc,
    print_table,
    run_db,
    settings_of,
    to_jsonable,
)
from app.domain import reports
from app.domain.models import EmailAccount, InvalidDocument
from app.ops import account_views
from app.store import schema
from app.store.client import Database
from app.store.documents import get_doc, id_filter

DAY_OPTION = typer.Option(None, "--day", help="The account's day as YYYY-MM-DD, in its time zone (default: its today).")


def _day_option(day: str | None) -> str | None:
    """The day an operator chose, validated; None: each account's own today."""
    if day is None:
        return None
    try:
        return reports.parse_day(day)
    except ValueError as exc:
        fail(f"--day: {exc}", code=2)


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def _status_text(row: Mapping[str, Any]) -> str:
    return f"{row['status']} ({row['disabled_reason']})" if row["disabled_reason"] else str(row["status"])


_LIST_FIELDS = (
    "id",
    "email",
    "status",
    "disabled_reason",
    "provider",
    "smtp",
    "inbox",
    "max_daily_sends",
    "min_wait_time",
    "sent",
    "limit",
    "next_available_at",
    "cannot_send",
)


def _cannot_send_text(row: Mapping[str, Any]) -> str:
    return "; ".join(f"{c['campaign']}: {', '.join(c['missing'])}" for c in row["cannot_send"]) or "-"


def list_accounts(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """List sending accounts: status, provider, SMTP server, the IMAP server its inbox is read from (or `not read`),
    limits, today's sends and the active campaigns each cannot render (a template variable such as sender_name it
    does not supply). Passwords are never shown.

    Example: outbound list-accounts --json
    """
    skipped = Skipped()
    rows = run_db(settings_of(ctx), lambda db: account_views.list_rows(db, None, now_utc(), skipped.add))

    def render() -> None:
        columns = [
            *("id", "email", "status", "provider", "smtp", "inbox", "max daily", "min wait", "sent today"),
            *("next available", "cannot send"),
        ]
        table = [
            [
                *(r["id"], r["email"], _status_text(r), r["provider"], r["smtp"], r["inbox"], r["max_daily_sends"]),
                *(r["min_wait_time"], f"{r['sent']}/{_or_dash(r['limit'])}", fmt_time(r["next_available_at"])),
                _cannot_send_text(r),
            ]
            for r in rows
        ]
        print_table(f"Accounts ({len(rows)})", columns, table)
        if any(r["cannot_send"] for r in rows):
            console.print("cannot send: `outbound show-campaign <id>` says where to set each missing variable")

    emit(json_, {"accounts": [{k: r[k] for k in _LIST_FIELDS} for r in rows]}, skipped, render)


ANSWER_DAYS = account_views.ANSWER_DAYS
ANSWER_COLUMNS = ("sent", "replied", "auto_replies", "bounced", "unsubscribed")


def _per_campaign(row: Mapping[str, Any]) -> str:
    names = row.get("campaign_names") or {}
    return ", ".join(f"{names.get(c) or c}: {n}" for c, n in row["campaigns"].items()) or "-"


def _hour_text(row: Mapping[str, Any]) -> str:
    cap = row["max_hourly_sends"]
    return str(row["sent_this_hour"]) if cap is None else f"{row['sent_this_hour']}/{cap}"


def _limit_text(row: Mapping[str, Any]) -> str:
    """The day's limit; under a ramp, also the ramp's day and its ceiling."""
    if row["ramp"] is None:
        return _or_dash(row["limit"])
    started = row["ramp_started_on"] or "its first day"
    return f"{row['limit']} (ramp from {started}, max {_or_dash(row['max_daily_sends'])})"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def show_account_stats(ctx: typer.Context, json_: bool = JSON_OPTION, day: str | None = DAY_OPTION) -> None:
    """Show each account's sends for a day (its own, in its `timezone`; default its today): sent, committed,
    reserved (and of those, reserved but not yet handed to SMTP), per campaign, sent this hour, the day's
    effective limit (under a warm-up ramp, that day's step) and remaining; then its replies, bounces and bounce
    rate over the last 30 days (read from its mailbox, see sync-inbox).

    Example: outbound show-account-stats --day 2025-01-31
    """
    chosen, skipped = _day_option(day), Skipped()
    rows = run_db(settings_of(ctx), lambda db: account_views.stats_rows(db, chosen, now_utc(), skipped.add))

    def render() -> None:
        columns = [
            *("id", "email", "day", "sent", "committed", "reserved", "reserved-but-unsent"),
            *("per campaign", "this hour", "limit", "remaining"),
        ]
        table = [
            [
                *(r["id"], r["email"], f"{r['day']} ({r['timezone']})", r["sent"], r["committed"], r["reserved"]),
                *(r["reserved_unsent"], _per_campaign(r), _hour_text(r), _limit_text(r), r["remaining"]),
            ]
            for r in rows
        ]
        title = f"Account usage on {chosen or 'today'} (each account's day, in its time zone)"
        print_table(title, columns, table)
        answers = [
            [r["email"], *(r["answers_30d"][k] for k in ANSWER_COLUMNS), _rate(r["answers_30d"]["bounce_rate"])]
            for r in rows
        ]
        print_table(
            f"Answers over the last {ANSWER_DAYS} days",
            ["email", "sent", "replied", "auto-replies", "bounced", "unsubscribed", "bounce rate"],
            answers,
        )
        for r in rows:
            console.print(
                f"{r['email']}: next available {fmt_time(r['next_available_at'])}, "
                f"last used {fmt_time(r['last_used_at'])}"
            )

    stats = [{k: v for k, v in r.items() if k not in ("smtp", "inbox", "provider")} for r in rows]
    # Each row has its account's own day; the top-level one is that day when all accounts share it.
    shared = {r["day"] for r in rows}
    emit(json_, {"day": chosen or (shared.pop() if len(shared) == 1 else None), "accounts": stats}, skipped, render)


async def _reset_account(db: Database, account_id: str, day: str | None, yes: bool) -> tuple[str, list[str]]:
    accounts = db[schema.EMAIL_ACCOUNTS]
    doc = await get_doc(accounts, "account", account_id)
    key = str(doc["_id"])
    if day is None:
        try:
            day = reports.today_of(EmailAccount.from_doc(doc), now_utc())
        except InvalidDocument as exc:
            fail(f"account {key}: {exc}; pass --day YYYY-MM-DD", code=2)
    confirm(f"Reset send limits of account {doc.get('email')} ({key}) for {day}?", yes)
    cleared: list[str] = []
    usage = await db[schema.ACCOUNT_USAGE].find_one_and_delete({**id_filter(key, "account_id"), "day": day})
    if usage is not None:
        cleared.append(f"usage for {day} (sent {usage.get('sent', 0)}, committed {usage.get('committed', 0)})")
    for name in ("next_available_at", "reservation_token"):
        if doc.get(name) is not None:
            cleared.append(f"{name} ({to_jsonable(doc[name]) if name != 'reservation_token' else 'held'})")
    update: dict[str, Any] = {"$unset": {"next_available_at": "", "reservation_token": ""}}
    if doc.get("status") == "auth_failed":
        update["$set"] = {"status": "active"}
        update["$unset"]["disabled_reason"] = ""
        cleared.append(f"status auth_failed -> active (was: {doc.get('disabled_reason') or 'no reason recorded'})")
    await accounts.update_one({"_id": doc["_id"]}, update)
    return day, cleared


def reset_account_limits(
    ctx: typer.Context,
    account_id: str = typer.Argument(..., help="Account _id."),
    yes: bool = YES_OPTION,
    day: str | None = DAY_OPTION,
) -> None:
    """Make an account available again: forget its usage for the day (its own, in its time zone; default its
    today), its wait window, reservation and auth failure.

    Example: outbound reset-account-limits 665f1c2e9b1e8a3d4c5b6a72 --yes
    """
    chosen, cleared = run_db(settings_of(ctx), lambda db: _reset_account(db, account_id, _day_option(day), yes))
    if not cleared:
        console.print(f"Account {account_id}: nothing to clear for {chosen}")
        return
    console.print(f"Account {account_id}: cleared")
    for item in cleared:
        console.print(f"  {item}")


def register(app: typer.Typer) -> None:
    """Add the account commands to `app`."""
    app.command("list-accounts")(list_accounts)
    app.command("show-account-stats")(show_account_stats)
    app.command("reset-account-limits")(reset_account_limits)
