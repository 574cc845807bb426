"""`list-accounts`, `show-account-stats` and `reset-account-limits`: sending accounts, their day's sends and limits.

Every document is read through its typed view; a malformed one is reported and skipped. Credentials are never
copied into the output. `list-accounts` also names the active campaigns each account cannot render (`cannot_send`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import typer

from app.cli.campaign_cmds import campaign_templates, general_settings_by_account
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
from app.domain import eligibility, reports
from app.domain.limits import AccountLimits, account_hour
from app.domain.models import AccountCampaignSettings, Campaign, EmailAccount, InvalidDocument
from app.store import answer_stats, schema
from app.store.client import Database
from app.store.documents import get_doc, id_filter, id_values, iter_valid

DAY_OPTION = typer.Option(None, "--day", help="The account's day as YYYY-MM-DD, in its time zone (default: its today).")

# For one account: the active campaigns whose templates it cannot render, with the variables it lacks.
CannotSend = Callable[[EmailAccount], list[dict[str, Any]]]


def _day_option(day: str | None) -> str | None:
    """The day an operator chose, validated; None: each account's own today."""
    if day is None:
        return None
    try:
        return reports.parse_day(day)
    except ValueError as exc:
        fail(f"--day: {exc}", code=2)


async def _settings_by_account(db: Database, skipped: Skipped) -> dict[str, list[AccountCampaignSettings]]:
    grouped: dict[str, list[AccountCampaignSettings]] = {}
    coll = db[schema.EMAIL_CAMPAIGN_SETTINGS]
    async for item in iter_valid(coll, {}, AccountCampaignSettings.from_doc, on_invalid=skipped.add):
        grouped.setdefault(item.email_id, []).append(item)
    return grouped


async def _usage_by_account(db: Database, days: Mapping[str, str], skipped: Skipped) -> dict[str, reports.AccountUsage]:
    """Each account's usage document for its day in `days` (account id -> day); accounts in different zones may
    be on different days."""
    coll = db[schema.ACCOUNT_USAGE]
    flt = {"day": {"$in": sorted(set(days.values()))}}
    found = iter_valid(coll, flt, reports.usage_from_doc, on_invalid=skipped.add)
    return {u.account_id: u async for u in found if days.get(u.account_id) == u.day}


def _account_view(doc: Mapping[str, Any]) -> tuple[EmailAccount, reports.AccountState]:
    return EmailAccount.from_doc(doc), reports.account_state(doc)


async def _cannot_send(db: Database, skipped: Skipped) -> CannotSend:
    """Read the active campaigns' templates and the general settings once; then judge each account in memory."""
    general = await general_settings_by_account(db, skipped)
    needs: list[tuple[Campaign, frozenset[str]]] = []
    coll = db[schema.CAMPAIGNS]
    active = iter_valid(coll, {"status": "active"}, Campaign.from_doc, sort=[("created_at", 1)], on_invalid=skipped.add)
    async for campaign in active:
        needed = eligibility.account_variables_used(await campaign_templates(db, campaign, skipped))
        if needed:
            needs.append((campaign, needed))

    def check(account: EmailAccount) -> list[dict[str, Any]]:
        mine = general.get(account.id)
        found = [(c, eligibility.unsupplied(n, account, mine)) for c, n in needs if eligibility.may_send(c, account)]
        return [{"campaign_id": c.id, "campaign": c.name, "missing": list(m)} for c, m in found if m]

    return check


async def _account_rows(
    db: Database, day: str | None, skipped: Skipped, cannot_send: CannotSend | None = None
) -> list[dict[str, Any]]:
    """One row per valid account: identity, limits, usage for `day` (None: each account's today in its own time
    zone) and `cannot_send` if given. No credentials."""
    settings = await _settings_by_account(db, skipped)
    coll = db[schema.EMAIL_ACCOUNTS]
    now = now_utc()
    views = [v async for v in iter_valid(coll, {}, _account_view, sort=[("email", 1)], on_invalid=skipped.add)]
    days = {account.id: day or reports.today_of(account, now) for account, _ in views}
    usage = await _usage_by_account(db, days, skipped)
    rows: list[dict[str, Any]] = []
    for account, state in views:
        lim = reports.account_limits(settings.get(account.id, []), account)
        used = usage.get(account.id, reports.AccountUsage(account_id=account.id, day=days[account.id]))
        rows.append(_row(account, state, lim, used, now))
        if cannot_send is not None:
            rows[-1]["cannot_send"] = cannot_send(account)
    return rows


def _row(
    account: EmailAccount, state: reports.AccountState, lim: AccountLimits, used: reports.AccountUsage, now: datetime
) -> dict[str, Any]:
    limit = reports.day_limit(lim, used.day)
    return {
        "id": account.id,
        "email": account.email,
        "status": account.status,
        "disabled_reason": state.disabled_reason,
        "provider": account.provider,
        "smtp": f"{account.smtp_host}:{account.smtp_port}",
        "inbox": _inbox_text(account),
        "timezone": account.timezone,
        "max_daily_sends": lim.max_daily_sends,
        "daily_limit": lim.campaign_daily_limit,
        "max_hourly_sends": lim.max_hourly_sends,
        "min_wait_time": lim.min_wait_minutes,
        "ramp": None if lim.ramp is None else {"start": lim.ramp.start, "increase": lim.ramp.increase},
        "ramp_started_on": None if account.ramp_started_on is None else account.ramp_started_on.isoformat(),
        "day": used.day,
        "sent": used.sent,
        "committed": used.committed,
        "reserved": used.reserved,
        # Of those, not yet handed to SMTP: given back within a lease period if their dispatcher died.
        "reserved_unsent": used.reserved_unsent,
        "campaigns": dict(used.campaigns),
        "sent_this_hour": used.hours.get(account_hour(now, account.timezone), 0),
        # The day's effective limit: max_daily_sends, or under a ramp that day's step of it.
        "limit": limit,
        "remaining": reports.remaining_sends(used.sent, limit),
        "next_available_at": state.next_available_at,
        "last_used_at": state.last_used_at,
    }


def _inbox_text(account: EmailAccount) -> str:
    """Where the account's mailbox is read: `host:port (security)`, or `not read` without imap_host."""
    if not account.reads_inbox:
        return "not read"
    return f"{account.imap_host}:{account.imap_port} ({account.imap_security})"


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


async def _list_rows(db: Database, day: str | None, skipped: Skipped) -> list[dict[str, Any]]:
    return await _account_rows(db, day, skipped, await _cannot_send(db, skipped))


def list_accounts(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """List sending accounts: status, provider, SMTP server, the IMAP server its inbox is read from (or `not read`),
    limits, today's sends and the active campaigns each cannot render (a template variable such as sender_name it
    does not supply). Passwords are never shown.

    Example: outbound list-accounts --json
    """
    skipped = Skipped()
    rows = run_db(settings_of(ctx), lambda db: _list_rows(db, None, skipped))

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


ANSWER_DAYS = 30
ANSWER_COLUMNS = ("sent", "replied", "auto_replies", "bounced", "unsubscribed")


async def _stats_rows(db: Database, day: str | None, skipped: Skipped) -> list[dict[str, Any]]:
    """The usage rows, each with its replies and bounce rate over the last ANSWER_DAYS days."""
    rows = await _account_rows(db, day, skipped)
    ids = sorted({c for row in rows for c in row["campaigns"]})
    names = await campaign_names(db, ids)
    for row in rows:
        row["campaign_names"] = {c: names.get(c) for c in row["campaigns"]}
    answered = await answer_stats.per_account(db, now_utc() - timedelta(days=ANSWER_DAYS))
    for row in rows:
        counts = answered.get(row["id"], Counter())
        row["answers_30d"] = {
            "sent": counts.get("sent", 0),
            "replied": counts.get("replied", 0),
            "auto_replies": counts.get("auto_reply", 0),
            "bounced": counts.get("bounced", 0),
            "soft_bounces": counts.get("soft_bounce", 0),
            "unsubscribed": counts.get("unsubscribed", 0),
            "bounce_rate": answer_stats.bounce_rate(counts),
        }
    return rows


async def campaign_names(db: Database, ids: list[str]) -> dict[str, str]:
    """Campaign names by id (ids stored as ObjectIds or strings), for output people can read."""
    values = [v for raw in ids for v in id_values(raw)]
    if not values:
        return {}
    return {
        str(doc["_id"]): str(doc.get("name"))
        async for doc in db[schema.CAMPAIGNS].find({"_id": {"$in": values}}, projection={"name": 1})
    }


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
    rows = run_db(settings_of(ctx), lambda db: _stats_rows(db, chosen, skipped))

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
