"""What `list-accounts` and `show-account-stats` print, gathered for every surface: each sending account's
identity, limits, usage for a day (its own, in its time zone), wait window and rotation state. Never a credential.

Every document is read through its typed view; a malformed one is passed to `on_invalid` and skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from app.domain import eligibility, reports
from app.domain.limits import AccountLimits, account_hour
from app.domain.models import AccountCampaignSettings, Campaign, EmailAccount
from app.ops.campaign_views import OnInvalid, campaign_templates, general_settings_by_account
from app.store import answer_stats, schema
from app.store.client import Database
from app.store.documents import NotFound, id_filter, id_values, iter_valid

ANSWER_DAYS = 30

# For one account: the active campaigns whose templates it cannot render, with the variables it lacks.
CannotSend = Callable[[EmailAccount], list[dict[str, Any]]]


async def _settings_by_account(db: Database, on_invalid: OnInvalid) -> dict[str, list[AccountCampaignSettings]]:
    grouped: dict[str, list[AccountCampaignSettings]] = {}
    coll = db[schema.EMAIL_CAMPAIGN_SETTINGS]
    async for item in iter_valid(coll, {}, AccountCampaignSettings.from_doc, on_invalid=on_invalid):
        grouped.setdefault(item.email_id, []).append(item)
    return grouped


async def _usage_by_account(
    db: Database, days: Mapping[str, str], on_invalid: OnInvalid
) -> dict[str, reports.AccountUsage]:
    """Each account's usage document for its day in `days` (account id -> day); accounts in different zones may
    be on different days."""
    coll = db[schema.ACCOUNT_USAGE]
    flt = {"day": {"$in": sorted(set(days.values()))}}
    found = iter_valid(coll, flt, reports.usage_from_doc, on_invalid=on_invalid)
    return {u.account_id: u async for u in found if days.get(u.account_id) == u.day}


def _account_view(doc: Mapping[str, Any]) -> tuple[EmailAccount, reports.AccountState]:
    return EmailAccount.from_doc(doc), reports.account_state(doc)


async def cannot_send(db: Database, on_invalid: OnInvalid) -> CannotSend:
    """Read the active campaigns' templates and the general settings once; then judge each account in memory."""
    general = await general_settings_by_account(db, on_invalid)
    needs: list[tuple[Campaign, frozenset[str]]] = []
    coll = db[schema.CAMPAIGNS]
    active = iter_valid(coll, {"status": "active"}, Campaign.from_doc, sort=[("created_at", 1)], on_invalid=on_invalid)
    async for campaign in active:
        needed = eligibility.account_variables_used(await campaign_templates(db, campaign, on_invalid))
        if needed:
            needs.append((campaign, needed))

    def check(account: EmailAccount) -> list[dict[str, Any]]:
        mine = general.get(account.id)
        found = [(c, eligibility.unsupplied(n, account, mine)) for c, n in needs if eligibility.may_send(c, account)]
        return [{"campaign_id": c.id, "campaign": c.name, "missing": list(m)} for c, m in found if m]

    return check


async def account_rows(
    db: Database,
    day: str | None,
    now: datetime,
    on_invalid: OnInvalid,
    cannot: CannotSend | None = None,
    flt: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per valid account (matching `flt`), by email: identity, limits, usage for `day` (None: each
    account's today in its own time zone) and `cannot_send` if `cannot` is given. No credentials."""
    settings = await _settings_by_account(db, on_invalid)
    coll = db[schema.EMAIL_ACCOUNTS]
    found = iter_valid(coll, dict(flt or {}), _account_view, sort=[("email", 1)], on_invalid=on_invalid)
    views = [v async for v in found]
    days = {account.id: day or reports.today_of(account, now) for account, _ in views}
    usage = await _usage_by_account(db, days, on_invalid)
    rows: list[dict[str, Any]] = []
    for account, state in views:
        lim = reports.account_limits(settings.get(account.id, []), account)
        used = usage.get(account.id, reports.AccountUsage(account_id=account.id, day=days[account.id]))
        rows.append(_row(account, state, lim, used, now))
        if cannot is not None:
            rows[-1]["cannot_send"] = cannot(account)
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


async def list_rows(db: Database, day: str | None, now: datetime, on_invalid: OnInvalid) -> list[dict[str, Any]]:
    """`list-accounts`: the usage rows, each with the active campaigns the account cannot render."""
    return await account_rows(db, day, now, on_invalid, await cannot_send(db, on_invalid))


async def stats_rows(
    db: Database, day: str | None, now: datetime, on_invalid: OnInvalid, flt: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """`show-account-stats`: the usage rows, each with campaign names and its replies and bounce rate over the
    last ANSWER_DAYS days."""
    rows = await account_rows(db, day, now, on_invalid, flt=flt)
    ids = sorted({c for row in rows for c in row["campaigns"]})
    names = await campaign_names(db, ids)
    for row in rows:
        row["campaign_names"] = {c: names.get(c) for c in row["campaigns"]}
    answered = await answer_stats.per_account(db, now - timedelta(days=ANSWER_DAYS))
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


async def account_stats(
    db: Database, account_id: str, day: str | None, now: datetime, on_invalid: OnInvalid
) -> dict[str, Any]:
    """One account's `show-account-stats` row; NotFound naming the id when there is no such (valid) account."""
    rows = await stats_rows(db, day, now, on_invalid, flt=id_filter(account_id))
    if not rows:
        raise NotFound("email account", account_id)
    return rows[0]


async def campaign_names(db: Database, ids: list[str]) -> dict[str, str]:
    """Campaign names by id (ids stored as ObjectIds or strings), for output people can read."""
    values = [v for raw in ids for v in id_values(raw)]
    if not values:
        return {}
    return {
        str(doc["_id"]): str(doc.get("name"))
        async for doc in db[schema.CAMPAIGNS].find({"_id": {"$in": values}}, projection={"name": 1})
    }
