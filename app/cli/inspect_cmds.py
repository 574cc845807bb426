"""Inspection and repair commands (seed 001 names): campaigns, leads, accounts, and resetting their progress.

Reads validate every document with the typed views; a malformed document is reported (collection, _id, field,
why) and skipped, so one bad document never hides the rest. Repairs confirm first (unless --yes) and never
touch a lead a dispatcher is holding.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from pymongo import ASCENDING, DESCENDING

from app.cli.common import (
    JSON_OPTION,
    YES_OPTION,
    confirm,
    console,
    err_console,
    fail,
    fmt_time,
    print_json,
    print_table,
    run_db,
    settings_of,
    to_jsonable,
)
from app.domain import reports, stop_policy
from app.domain.limits import AccountLimits
from app.domain.models import (
    CAMPAIGN_STATUSES,
    RECIPIENT_STATUSES,
    AccountCampaignSettings,
    Campaign,
    EmailAccount,
    InvalidDocument,
    Lead,
    SequenceStep,
    Template,
)
from app.store import lead_queries, schema
from app.store.client import Database
from app.store.documents import Collection, get_doc, id_filter, id_values, iter_valid

ACTIVITY_LIMIT = 20
# How long a reset holds the leads it rewrites; if the command dies midway, dispatchers take them back after this.
RESET_LEASE = timedelta(minutes=5)
RESET_OWNER = "outbound-reset"


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers


@dataclass
class Skipped:
    """Malformed documents met while reading: reported with the output instead of crashing the command."""

    problems: list[InvalidDocument] = field(default_factory=list)

    def add(self, exc: InvalidDocument) -> None:
        """Remember one malformed document (the `on_invalid` callback of store.iter_valid)."""
        self.problems.append(exc)

    def as_json(self) -> list[dict[str, str]]:
        """The problems as JSON objects: collection, id, field, reason."""
        return [
            {"collection": p.collection, "id": str(p.doc_id), "field": p.field, "reason": p.reason}
            for p in self.problems
        ]

    def report(self) -> None:
        """Print one warning line per malformed document on stderr."""
        for p in self.problems:
            err_console.print(
                f"[yellow]skipped malformed document[/] {p.collection} {p.doc_id}: field '{p.field}' {p.reason}"
            )


def _now() -> datetime:
    # The only clock read of a command: everything below takes `now` from here.
    return datetime.now(UTC)


def _day_option(day: str | None, now: datetime) -> str:
    if day is None:
        return reports.utc_day(now)
    try:
        return reports.parse_day(day)
    except ValueError as exc:
        fail(f"--day: {exc}", code=2)


def _emit(json_: bool, payload: Mapping[str, Any], skipped: Skipped, render: Callable[[], None]) -> None:
    """Print `payload` as JSON (with the skipped documents) or render tables and report skips on stderr."""
    if json_:
        print_json({**payload, "invalid_documents": skipped.as_json()})
        return
    render()
    skipped.report()


def _campaign_ref(campaign_id: str) -> dict[str, Any]:
    # campaign_leads.campaign_id is a string, but older data may hold the ObjectId itself.
    return id_filter(campaign_id, "campaign_id")


async def _lead_counts(db: Database, campaign_id: str, now: datetime) -> reports.LeadCounts:
    """Count a campaign's leads per state on the server (no lead is loaded)."""
    leads = db[schema.CAMPAIGN_LEADS]
    scope = _campaign_ref(campaign_id)
    total = await leads.count_documents(scope)
    counts = {
        state: await leads.count_documents({"$and": [scope, flt]})
        for state, flt in lead_queries.state_filters(now).items()
    }
    counts[reports.WAITING] = max(total - sum(counts.values()), 0)
    return reports.LeadCounts.from_states(counts)


async def _campaign(db: Database, campaign_id: str) -> Campaign:
    return Campaign.from_doc(await get_doc(db[schema.CAMPAIGNS], "campaign", campaign_id))


async def _steps(db: Database, campaign: Campaign, skipped: Skipped) -> list[SequenceStep]:
    if campaign.sequence_id is None:
        return []
    flt = {"sequence_id": campaign.sequence_id}
    coll = db[schema.SEQUENCE_STEPS]
    return [
        s async for s in iter_valid(coll, flt, SequenceStep.from_doc, sort=[("step_order", 1)], on_invalid=skipped.add)
    ]


def _any_of(ids: Sequence[object]) -> list[Any]:
    return [value for raw in ids for value in id_values(raw)]


# ---------------------------------------------------------------------------------------------------------------
# Campaigns


async def _list_campaigns(db: Database, status: str | None, now: datetime, skipped: Skipped) -> list[dict[str, Any]]:
    flt = {"status": status} if status else {}
    rows = []
    async for campaign in iter_valid(
        db[schema.CAMPAIGNS], flt, Campaign.from_doc, sort=[("created_at", ASCENDING)], on_invalid=skipped.add
    ):
        counts = await _lead_counts(db, campaign.id, now)
        rows.append(
            {
                "id": campaign.id,
                "name": campaign.name,
                "status": campaign.status,
                "sequence_id": campaign.sequence_id,
                "daily_limit": campaign.settings.daily_limit,
                "min_wait_time": campaign.settings.min_wait_time,
                "leads": counts.total,
                "completed": counts.completed,
                "due_now": counts.due,
            }
        )
    return rows


def list_campaigns(
    ctx: typer.Context,
    json_: bool = JSON_OPTION,
    status: str | None = typer.Option(
        None, "--status", help=f"Only campaigns in this status: {', '.join(CAMPAIGN_STATUSES)}."
    ),
) -> None:
    """List campaigns with their limits and lead counts ("due now" counts leads ready to send, even if paused).

    Example: outbound list-campaigns --status active
    """
    if status is not None and status not in CAMPAIGN_STATUSES:
        fail(f"--status {status!r} is not a campaign status: use one of {', '.join(CAMPAIGN_STATUSES)}", code=2)
    now, skipped = _now(), Skipped()
    rows = run_db(settings_of(ctx), lambda db: _list_campaigns(db, status, now, skipped))

    def render() -> None:
        columns = ["id", "name", "status", "sequence", "daily limit", "min wait (min)", "leads", "completed", "due now"]
        print_table(f"Campaigns ({len(rows)})", columns, [list(r.values()) for r in rows])

    _emit(json_, {"campaigns": rows}, skipped, render)


async def _templates_by_id(db: Database, steps: Sequence[SequenceStep], skipped: Skipped) -> dict[str, Template]:
    flt = {"_id": {"$in": _any_of([s.template_id for s in steps])}}
    found = iter_valid(db[schema.TEMPLATES], flt, Template.from_doc, on_invalid=skipped.add)
    return {t.id: t async for t in found}


async def _campaign_accounts(db: Database, campaign: Campaign, skipped: Skipped) -> list[dict[str, Any]]:
    wanted = campaign.settings.account_ids
    flt: dict[str, Any] = {"_id": {"$in": _any_of(wanted)}} if wanted else {"status": "active"}
    found = {
        a.id: a async for a in iter_valid(db[schema.EMAIL_ACCOUNTS], flt, EmailAccount.from_doc, on_invalid=skipped.add)
    }
    ids = list(wanted) if wanted else sorted(found)
    return [
        {"id": i, "email": found[i].email, "status": found[i].status}
        if i in found
        else {"id": i, "email": None, "status": "missing"}
        for i in ids
    ]


async def _show_campaign(db: Database, campaign_id: str, now: datetime, skipped: Skipped) -> dict[str, Any]:
    campaign = await _campaign(db, campaign_id)
    steps = await _steps(db, campaign, skipped)
    templates = await _templates_by_id(db, steps, skipped)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "sequence_id": campaign.sequence_id,
        "created_at": campaign.created_at,
        "settings": {**asdict(campaign.settings), "account_ids": list(campaign.settings.account_ids)},
        "steps": [
            {
                "step_order": s.step_order,
                "template_id": s.template_id,
                "template_name": templates[s.template_id].name if s.template_id in templates else None,
                "delay_minutes": s.delay_minutes,
            }
            for s in steps
        ],
        "accounts": await _campaign_accounts(db, campaign, skipped),
        "account_scope": "listed" if campaign.settings.account_ids else "every active account",
        "leads": asdict(await _lead_counts(db, campaign.id, now)),
    }


def show_campaign(
    ctx: typer.Context, campaign_id: str = typer.Argument(..., help="Campaign _id."), json_: bool = JSON_OPTION
) -> None:
    """Show a campaign's settings, its sequence steps, the accounts it may send from and its lead counts.

    Example: outbound show-campaign 665f1c2e9b1e8a3d4c5b6a70 --json
    """
    now, skipped = _now(), Skipped()
    info = run_db(settings_of(ctx), lambda db: _show_campaign(db, campaign_id, now, skipped))

    def render() -> None:
        console.print(
            f"[bold]{info['name']}[/] ({info['id']}) status {info['status']}, sequence {info['sequence_id'] or '-'}"
        )
        console.print("settings: " + ", ".join(f"{k}={v}" for k, v in info["settings"].items()))
        step_rows = [
            [s["step_order"], s["template_name"] or f"{s['template_id']} (missing)", s["delay_minutes"]]
            for s in info["steps"]
        ]
        print_table("Steps", ["step", "template", "delay (min)"], step_rows)
        account_rows = [[a["id"], a["email"], a["status"]] for a in info["accounts"]]
        print_table(f"Accounts ({info['account_scope']})", ["id", "email", "status"], account_rows)
        console.print("leads: " + ", ".join(f"{k} {v}" for k, v in info["leads"].items()))

    _emit(json_, info, skipped, render)


async def _sends_today(db: Database, campaign_id: str, now: datetime, skipped: Skipped) -> dict[str, int]:
    midnight = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    sent = await db[schema.ACTIVITIES].count_documents(
        {"$and": [_campaign_ref(campaign_id), {"type": "sent", "created_at": {"$gte": midnight}}]}
    )
    counted = 0
    flt = {"day": reports.utc_day(now), f"campaigns.{campaign_id}": {"$exists": True}}
    async for usage in iter_valid(db[schema.ACCOUNT_USAGE], flt, reports.usage_from_doc, on_invalid=skipped.add):
        counted += usage.campaigns.get(campaign_id, 0)
    return {"sent_today": sent, "counted_today": counted}


async def _campaign_progress(db: Database, campaign_id: str, now: datetime, skipped: Skipped) -> dict[str, Any]:
    campaign = await _campaign(db, campaign_id)
    steps = await _steps(db, campaign, skipped)
    coll = db[schema.CAMPAIGN_LEADS]
    leads = [lead async for lead in iter_valid(coll, _campaign_ref(campaign.id), Lead.from_doc, on_invalid=skipped.add)]
    progress = reports.campaign_progress(leads, [s.step_order for s in steps], now)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "steps": [asdict(s) for s in progress.steps],
        "leads": asdict(progress.counts),
        "percent_complete": progress.percent_complete,
        **await _sends_today(db, campaign.id, now, skipped),
    }


def show_campaign_progress(
    ctx: typer.Context, campaign_id: str = typer.Argument(..., help="Campaign _id."), json_: bool = JSON_OPTION
) -> None:
    """Show per step the leads at it and its sent/failed/uncertain recipients, lead states and sends today.

    Example: outbound show-campaign-progress 665f1c2e9b1e8a3d4c5b6a70
    """
    now, skipped = _now(), Skipped()
    info = run_db(settings_of(ctx), lambda db: _campaign_progress(db, campaign_id, now, skipped))

    def render() -> None:
        console.print(
            f"[bold]{info['name']}[/] ({info['id']}) status {info['status']}: {info['percent_complete']}% complete"
        )
        rows = [[s["step_order"], s["leads_at_step"], s["sent"], s["failed"], s["uncertain"]] for s in info["steps"]]
        print_table("Steps", ["step", "leads at step", "sent", "failed", "uncertain"], rows)
        console.print("leads: " + ", ".join(f"{k} {v}" for k, v in info["leads"].items()))
        console.print(f"today (UTC): sent {info['sent_today']}, counted against limits {info['counted_today']}")

    _emit(json_, info, skipped, render)


# ---------------------------------------------------------------------------------------------------------------
# Accounts


async def _limits_by_account(db: Database, skipped: Skipped) -> dict[str, AccountLimits]:
    grouped: dict[str, list[AccountCampaignSettings]] = {}
    coll = db[schema.EMAIL_CAMPAIGN_SETTINGS]
    async for item in iter_valid(coll, {}, AccountCampaignSettings.from_doc, on_invalid=skipped.add):
        grouped.setdefault(item.email_id, []).append(item)
    return {email_id: reports.account_limits(items) for email_id, items in grouped.items()}


async def _usage_by_account(db: Database, day: str, skipped: Skipped) -> dict[str, reports.AccountUsage]:
    coll = db[schema.ACCOUNT_USAGE]
    return {
        u.account_id: u async for u in iter_valid(coll, {"day": day}, reports.usage_from_doc, on_invalid=skipped.add)
    }


def _account_view(doc: Mapping[str, Any]) -> tuple[EmailAccount, reports.AccountState]:
    return EmailAccount.from_doc(doc), reports.account_state(doc)


async def _account_rows(db: Database, day: str, skipped: Skipped) -> list[dict[str, Any]]:
    """One row per valid account: identity, limits and usage for `day`. Credentials are never copied."""
    limits = await _limits_by_account(db, skipped)
    usage = await _usage_by_account(db, day, skipped)
    rows = []
    coll = db[schema.EMAIL_ACCOUNTS]
    async for account, state in iter_valid(coll, {}, _account_view, sort=[("email", 1)], on_invalid=skipped.add):
        lim = limits.get(account.id, AccountLimits())
        used = usage.get(account.id, reports.AccountUsage(account_id=account.id, day=day))
        rows.append(
            {
                "id": account.id,
                "email": account.email,
                "status": account.status,
                "disabled_reason": state.disabled_reason,
                "provider": account.provider,
                "smtp": f"{account.smtp_host}:{account.smtp_port}",
                "max_daily_sends": lim.max_daily_sends,
                "daily_limit": lim.campaign_daily_limit,
                "min_wait_time": lim.min_wait_minutes,
                "day": day,
                "sent": used.sent,
                "committed": used.committed,
                "reserved": used.reserved,
                "campaigns": dict(used.campaigns),
                "limit": lim.max_daily_sends,
                "remaining": reports.remaining_sends(used.sent, lim.max_daily_sends),
                "next_available_at": state.next_available_at,
                "last_used_at": state.last_used_at,
            }
        )
    return rows


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
    "max_daily_sends",
    "min_wait_time",
    "sent",
    "limit",
    "next_available_at",
)


def list_accounts(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """List sending accounts: status, provider, SMTP server, limits and today's sends. Passwords are never shown.

    Example: outbound list-accounts --json
    """
    now, skipped = _now(), Skipped()
    rows = run_db(settings_of(ctx), lambda db: _account_rows(db, reports.utc_day(now), skipped))

    def render() -> None:
        columns = ["id", "email", "status", "provider", "smtp", "max daily", "min wait", "sent today", "next available"]
        table = [
            [
                *(r["id"], r["email"], _status_text(r), r["provider"], r["smtp"], r["max_daily_sends"]),
                *(r["min_wait_time"], f"{r['sent']}/{_or_dash(r['limit'])}", fmt_time(r["next_available_at"])),
            ]
            for r in rows
        ]
        print_table(f"Accounts ({len(rows)})", columns, table)

    _emit(json_, {"accounts": [{k: r[k] for k in _LIST_FIELDS} for r in rows]}, skipped, render)


def show_account_stats(
    ctx: typer.Context,
    json_: bool = JSON_OPTION,
    day: str | None = typer.Option(None, "--day", help="UTC day as YYYY-MM-DD (default: today)."),
) -> None:
    """Show each account's sends for a UTC day: sent, committed, reserved, per campaign, limit and remaining.

    Example: outbound show-account-stats --day 2025-01-31
    """
    now, skipped = _now(), Skipped()
    chosen = _day_option(day, now)
    rows = run_db(settings_of(ctx), lambda db: _account_rows(db, chosen, skipped))

    def render() -> None:
        columns = ["id", "email", "sent", "committed", "reserved", "per campaign", "limit", "remaining"]
        table = [
            [
                *(r["id"], r["email"], r["sent"], r["committed"], r["reserved"]),
                *(", ".join(f"{c}: {n}" for c, n in r["campaigns"].items()) or "-", r["limit"], r["remaining"]),
            ]
            for r in rows
        ]
        print_table(f"Account usage on {chosen} (UTC)", columns, table)
        for r in rows:
            console.print(
                f"{r['email']}: next available {fmt_time(r['next_available_at'])}, "
                f"last used {fmt_time(r['last_used_at'])}"
            )

    stats = [{k: v for k, v in r.items() if k not in ("smtp", "provider")} for r in rows]
    _emit(json_, {"day": chosen, "accounts": stats}, skipped, render)


# ---------------------------------------------------------------------------------------------------------------
# Leads


async def _activities(db: Database, lead_id: object) -> list[dict[str, Any]]:
    cursor = db[schema.ACTIVITIES].find(
        id_filter(lead_id, "lead_id"), sort=[("created_at", DESCENDING)], limit=ACTIVITY_LIMIT
    )
    keep = (
        "created_at",
        "type",
        "step_order",
        "recipient_index",
        "email",
        "account_id",
        "message_id",
        "smtp_code",
        "error",
    )
    return [{k: doc.get(k) for k in keep} async for doc in cursor]


async def _ledger(db: Database, lead_id: object) -> list[dict[str, Any]]:
    cursor = db[schema.SENDS].find(id_filter(lead_id, "lead_id"), sort=[("step_order", 1), ("recipient_index", 1)])
    keep = (
        "_id",
        "step_order",
        "recipient_index",
        "email",
        "state",
        "attempts",
        "account_id",
        "message_id",
        "last_error",
    )
    return [{k: doc.get(k) for k in keep} async for doc in cursor]


async def _lead_details(db: Database, lead_id: str, now: datetime) -> dict[str, Any]:
    lead = Lead.from_doc(await get_doc(db[schema.CAMPAIGN_LEADS], "lead", lead_id))
    campaign = await db[schema.CAMPAIGNS].find_one(id_filter(lead.campaign_id))
    p = lead.progress
    return {
        "id": str(lead.id),
        "lead_key": lead.lead_key,
        "campaign": {
            "id": lead.campaign_id,
            "name": campaign.get("name") if campaign else None,
            "status": campaign.get("status") if campaign else "missing",
        },
        "state": reports.lead_state(lead, now),
        "progress": {
            "current_step_order": p.current_step_order,
            "next_due_at": p.next_due_at,
            "last_sent_at": p.last_sent_at,
            "stopped": p.stopped,
            "stop_reason": p.stop_reason,
            "completed": p.completed,
            "lease": {"owner": p.lease_owner, "until": p.lease_until, "active": reports.lease_is_active(lead, now)},
        },
        "recipients": [
            {
                "index": i,
                "email": r.email,
                "status": r.status,
                "last_contacted_at": r.last_contacted_at,
                "last_step": r.last_step,
            }
            for i, r in enumerate(lead.recipients)
        ],
        "processed_recipients": dict(sorted(p.processed_recipients.items())),
        "sends": await _ledger(db, lead.id),
        "activities": await _activities(db, lead.id),
    }


def _render_lead(info: Mapping[str, Any]) -> None:
    p, c = info["progress"], info["campaign"]
    console.print(
        f"[bold]lead {info['id']}[/] ({info['lead_key'] or '-'}) campaign {c['name'] or '-'} ({c['id']}, {c['status']})"
    )
    console.print(
        f"state {info['state']}: step {p['current_step_order']}, next due {fmt_time(p['next_due_at'])}, "
        f"stopped {p['stopped']}{' (' + p['stop_reason'] + ')' if p['stop_reason'] else ''}, completed {p['completed']}"
    )
    lease = p["lease"]
    console.print(
        f"lease: {lease['owner'] or 'free'}" + (f" until {fmt_time(lease['until'])}" if lease["until"] else "")
    )
    rows = [
        [r["index"], r["email"], r["status"], fmt_time(r["last_contacted_at"]), r["last_step"]]
        for r in info["recipients"]
    ]
    print_table("Recipients", ["#", "email", "status", "last contacted", "last step"], rows)
    processed = [
        [key, e.get("status"), e.get("email"), fmt_time(e.get("processed_at")), e.get("account_id"), e.get("error")]
        for key, e in ((k, v if isinstance(v, Mapping) else {}) for k, v in info["processed_recipients"].items())
    ]
    print_table("Processed recipients", ["key", "status", "email", "processed at", "account", "error"], processed)
    sends = [[s["_id"], s["state"], s["attempts"], s["account_id"], s["last_error"]] for s in info["sends"]]
    print_table("Send ledger", ["send", "state", "attempts", "account", "last error"], sends)
    acts = [
        [fmt_time(a["created_at"]), a["type"], a["step_order"], a["recipient_index"], a["email"], a["error"]]
        for a in info["activities"]
    ]
    print_table(f"Last {ACTIVITY_LIMIT} activities", ["at", "type", "step", "#", "email", "error"], acts)


def show_lead_details(
    ctx: typer.Context, lead_id: str = typer.Argument(..., help="Lead _id."), json_: bool = JSON_OPTION
) -> None:
    """Show a lead: campaign, progress and lease, each recipient, processed recipients, send ledger, activities.

    Example: outbound show-lead-details 665f1c2e9b1e8a3d4c5b6a71
    """
    now = _now()
    info = run_db(settings_of(ctx), lambda db: _lead_details(db, lead_id, now))
    if json_:
        print_json(info)
    else:
        _render_lead(info)


async def _active_campaigns(db: Database, campaign_id: str | None, skipped: Skipped) -> dict[str, Campaign]:
    if campaign_id is not None:
        campaign = await _campaign(db, campaign_id)
        return {campaign.id: campaign} if campaign.status == "active" else {}
    coll = db[schema.CAMPAIGNS]
    return {c.id: c async for c in iter_valid(coll, {"status": "active"}, Campaign.from_doc, on_invalid=skipped.add)}


async def _due_leads(
    db: Database, campaign_id: str | None, limit: int, now: datetime, skipped: Skipped
) -> dict[str, Any]:
    campaigns = await _active_campaigns(db, campaign_id, skipped)
    flt = {"campaign_id": {"$in": _any_of(list(campaigns))}, **lead_queries.due_filter(now)}
    coll = db[schema.CAMPAIGN_LEADS]
    found = await coll.count_documents(flt)
    sort = [("progress.next_due_at", ASCENDING)]
    leads = [
        {
            "campaign_id": lead.campaign_id,
            "campaign": campaigns[lead.campaign_id].name if lead.campaign_id in campaigns else None,
            "lead_id": str(lead.id),
            "step": lead.progress.current_step_order,
            "recipients_pending": len(reports.pending_recipients(lead)),
            "recipients": len(lead.recipients),
            "next_due_at": lead.progress.next_due_at,
        }
        async for lead in iter_valid(coll, flt, Lead.from_doc, sort=sort, limit=limit, on_invalid=skipped.add)
    ]
    return {"found": found, "active_campaigns": len(campaigns), "leads": leads}


def show_due_leads(
    ctx: typer.Context,
    json_: bool = JSON_OPTION,
    campaign_id: str | None = typer.Option(None, "--campaign-id", help="Only this campaign's leads."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="Show at most this many leads."),
) -> None:
    """List leads due now in active campaigns (not stopped, not completed, not held by a dispatcher), oldest first.

    Example: outbound show-due-leads --campaign-id 665f1c2e9b1e8a3d4c5b6a70 --limit 20
    """
    now, skipped = _now(), Skipped()
    info = run_db(settings_of(ctx), lambda db: _due_leads(db, campaign_id, limit, now, skipped))

    def render() -> None:
        console.print(f"Found {info['found']} due leads")
        if campaign_id is not None and info["active_campaigns"] == 0:
            err_console.print(f"campaign {campaign_id} is not active: its leads are not dispatched")
        rows = [
            [
                *(d["campaign"] or d["campaign_id"], d["lead_id"], d["step"]),
                *(f"{d['recipients_pending']}/{d['recipients']}", fmt_time(d["next_due_at"])),
            ]
            for d in info["leads"]
        ]
        title = f"Due leads (first {len(rows)} of {info['found']})" if len(rows) < info["found"] else "Due leads"
        print_table(title, ["campaign", "lead", "step", "pending", "due at"], rows)

    _emit(json_, info, skipped, render)


# ---------------------------------------------------------------------------------------------------------------
# Repairs


@dataclass(frozen=True)
class ResetOutcome:
    """What a progress reset did: leads reset, ledger entries deleted, leads left alone and why."""

    reset: int
    sends_deleted: int
    busy: int  # held by a dispatcher right now
    malformed: int  # lead_data is not a list: fix the document first


def fresh_progress(now: datetime) -> dict[str, Any]:
    """A lead's progress as if it had just been enrolled, due at `now`."""
    return {"current_step_order": 1, "processed_recipients": {}, "stopped": False, "next_due_at": now}


async def _fence(leads: Collection, scope: Mapping[str, Any], token: str, now: datetime) -> None:
    """Take a lease on every free lead in `scope`, as a dispatcher would, so none is claimed mid-reset."""
    until = now + RESET_LEASE
    lease = {"lease_owner": RESET_OWNER, "lease_token": token, "lease_until": until, "next_due_at": until}
    base = [scope, {"lead_data": {"$type": "array"}}]
    # No dispatcher can hold a lead whose progress is missing or not an object; it is rewritten whole anyway.
    await leads.update_many(
        {"$and": [*base, {"progress": {"$not": {"$type": "object"}}}]}, {"$set": {"progress": lease}}
    )
    free = {"$or": [{"progress.lease_until": None}, {"progress.lease_until": {"$lte": now}}]}
    await leads.update_many(
        {"$and": [*base, {"progress": {"$type": "object"}}, free]},
        {"$set": {f"progress.{k}": v for k, v in lease.items()}},
    )


async def reset_leads(db: Database, scope: Mapping[str, Any], now: datetime) -> ResetOutcome:
    """Reset the progress of every lead in `scope` that no dispatcher holds, and delete their send ledger.

    The leads are fenced first with a lease of our own, so a dispatcher cannot claim one between the ledger
    deletion and the progress rewrite. Recipient statuses go back to not_contacted.
    """
    leads = db[schema.CAMPAIGN_LEADS]
    token = uuid.uuid4().hex
    await _fence(leads, scope, token, now)
    mine = {"progress.lease_token": token}
    ids = [doc["_id"] async for doc in leads.find(mine, projection={"_id": 1})]
    deleted = await db[schema.SENDS].delete_many({"lead_id": {"$in": _any_of(ids)}}) if ids else None
    result = await leads.update_many(
        mine,
        {
            "$set": {"progress": fresh_progress(now), "lead_data.$[r].status": "not_contacted"},
            "$unset": {"lead_data.$[r].last_contacted_at": "", "lead_data.$[r].last_step": ""},
        },
        array_filters=[{"r": {"$type": "object"}}],
    )
    busy = await leads.count_documents(
        {"$and": [scope, {"progress.lease_until": {"$gt": now}}, {"progress.lease_token": {"$ne": token}}]}
    )
    malformed = await leads.count_documents({"$and": [scope, {"lead_data": {"$not": {"$type": "array"}}}]})
    return ResetOutcome(result.modified_count, deleted.deleted_count if deleted else 0, busy, malformed)


def _lead_guard(doc: Mapping[str, Any], now: datetime) -> None:
    """Refuse to reset a lead a dispatcher holds, or one whose recipients are not a list."""
    progress = doc.get("progress")
    until = progress.get("lease_until") if isinstance(progress, Mapping) else None
    if isinstance(until, datetime) and until > now:
        owner = progress.get("lease_owner") if isinstance(progress, Mapping) else None
        fail(
            f"lead {doc['_id']} is being processed by dispatcher {owner or '?'} until {fmt_time(until)} UTC; "
            "retry after that (or stop the dispatcher); nothing was changed"
        )
    if not isinstance(doc.get("lead_data"), list):
        fail(f"lead {doc['_id']}: field 'lead_data' must be a list of recipients; fix the document first")


async def _reset_lead(db: Database, lead_id: str, yes: bool, now: datetime) -> ResetOutcome:
    doc = await get_doc(db[schema.CAMPAIGN_LEADS], "lead", lead_id)
    _lead_guard(doc, now)
    confirm(
        f"Reset progress of lead {doc['_id']} (campaign {doc.get('campaign_id')}) and delete its send ledger, "
        "so its recipients can be mailed again?",
        yes,
    )
    outcome = await reset_leads(db, {"_id": doc["_id"]}, now)
    if outcome.reset == 0:
        fail(f"lead {doc['_id']} was claimed by a dispatcher meanwhile; nothing was changed, retry later")
    return outcome


def reset_lead_progress(
    ctx: typer.Context, lead_id: str = typer.Argument(..., help="Lead _id."), yes: bool = YES_OPTION
) -> None:
    """Reset a lead to step 1, due now: clear its progress and recipient statuses, delete its send ledger.

    Example: outbound reset-lead-progress 665f1c2e9b1e8a3d4c5b6a71 --yes
    """
    now = _now()
    outcome = run_db(settings_of(ctx), lambda db: _reset_lead(db, lead_id, yes, now))
    console.print(f"Reset lead {lead_id}: step 1, due now; deleted {outcome.sends_deleted} send ledger entries")


async def _reset_campaign(db: Database, campaign_id: str, yes: bool, now: datetime) -> ResetOutcome:
    campaign = await _campaign(db, campaign_id)
    total = await db[schema.CAMPAIGN_LEADS].count_documents(_campaign_ref(campaign.id))
    confirm(
        f"Reset progress of all {total} leads of campaign {campaign.name!r} ({campaign.id}) and delete their "
        "send ledger, so every recipient can be mailed again?",
        yes,
    )
    return await reset_leads(db, _campaign_ref(campaign.id), now)


def reset_campaign_progress(
    ctx: typer.Context, campaign_id: str = typer.Argument(..., help="Campaign _id."), yes: bool = YES_OPTION
) -> None:
    """Reset every lead of a campaign to step 1, due now (leads a dispatcher holds are left and counted).

    Example: outbound reset-campaign-progress 665f1c2e9b1e8a3d4c5b6a70 --yes
    """
    now = _now()
    outcome = run_db(settings_of(ctx), lambda db: _reset_campaign(db, campaign_id, yes, now))
    console.print(f"Reset {outcome.reset} leads; deleted {outcome.sends_deleted} send ledger entries")
    if outcome.busy:
        err_console.print(f"{outcome.busy} leads are held by a dispatcher and were not reset: run again later")
    if outcome.malformed:
        err_console.print(f"{outcome.malformed} leads have a 'lead_data' that is not a list and were not reset")


def status_update(status: str, email_filter: str | None) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(lead filter, update, array filters) setting recipients' status, stopping the lead as the stop policy says."""
    values: dict[str, Any] = {"lead_data.$[r].status": status}
    if _stops_leads(status, email_filter):
        values.update({"progress.stopped": True, "progress.stop_reason": status})
    if email_filter is None:
        return {}, {"$set": values}, [{"r": {"$type": "object"}}]
    pattern = {"$regex": re.escape(email_filter), "$options": "i"}
    return {"lead_data.email": pattern}, {"$set": values}, [{"r.email": pattern}]


def _stops_leads(status: str, email_filter: str | None) -> bool:
    """A reply stops the lead; another skipping status stops it only when every recipient gets it (no filter)."""
    if email_filter is not None:
        return status in stop_policy.STOP_LEAD_STATUSES
    return stop_policy.stops_every_lead(status)


def _writable(campaign_id: str) -> list[dict[str, Any]]:
    # Writes to lead_data.$[] or progress.x fail on documents whose fields have the wrong shape: leave those out.
    return [
        _campaign_ref(campaign_id),
        {"lead_data": {"$type": "array"}},
        {"$or": [{"progress": {"$exists": False}}, {"progress": {"$type": "object"}}]},
    ]


async def _bulk_update(
    db: Database, campaign_id: str, status: str, email_filter: str | None, yes: bool
) -> dict[str, int]:
    campaign = await _campaign(db, campaign_id)
    lead_match, update, array_filters = status_update(status, email_filter)
    leads = db[schema.CAMPAIGN_LEADS]
    flt = {"$and": [*_writable(campaign.id), lead_match]}
    matched = await leads.count_documents(flt)
    stopping = " and stop those leads" if _stops_leads(status, email_filter) else ""
    who = f"recipients matching {email_filter!r}" if email_filter else "every recipient"
    confirm(f"Set {who} of {matched} leads of campaign {campaign.name!r} to {status}{stopping}?", yes)
    result = await leads.update_many(flt, update, array_filters=array_filters)
    malformed = await leads.count_documents(_campaign_ref(campaign.id)) - await leads.count_documents(
        {"$and": _writable(campaign.id)}
    )
    return {"matched": result.matched_count, "modified": result.modified_count, "malformed": malformed}


def bulk_update_status(
    ctx: typer.Context,
    campaign_id: str = typer.Option(..., "--campaign-id", help="Campaign _id."),
    status: str = typer.Option(..., "--status", help=f"New recipient status: {', '.join(RECIPIENT_STATUSES)}."),
    email_filter: str | None = typer.Option(
        None, "--email-filter", help="Only recipients whose address contains this text (case-insensitive)."
    ),
    yes: bool = YES_OPTION,
) -> None:
    """Set the status of every recipient of a campaign; replied, unsubscribed and bounced also stop the lead.

    Example: outbound bulk-update-status --campaign-id 665f1c2e9b1e8a3d4c5b6a70 --status bounced --email-filter acme.com
    """
    if status not in RECIPIENT_STATUSES:
        fail(f"--status {status!r} is not a recipient status: use one of {', '.join(RECIPIENT_STATUSES)}", code=2)
    if email_filter is not None and not email_filter.strip():
        fail("--email-filter is empty: give part of an address (e.g. @acme.com) or leave the option out", code=2)
    result = run_db(settings_of(ctx), lambda db: _bulk_update(db, campaign_id, status, email_filter, yes))
    stopped = " and stopped them" if _stops_leads(status, email_filter) else ""
    console.print(
        f"Updated recipients of {result['modified']} leads (of {result['matched']} matched) to {status}{stopped}"
    )
    if result["malformed"]:
        err_console.print(
            f"{result['malformed']} malformed leads (lead_data or progress of the wrong type) were left alone"
        )


async def _reset_account(db: Database, account_id: str, day: str, yes: bool) -> list[str]:
    accounts = db[schema.EMAIL_ACCOUNTS]
    doc = await get_doc(accounts, "account", account_id)
    key = str(doc["_id"])
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
    return cleared


def reset_account_limits(
    ctx: typer.Context,
    account_id: str = typer.Argument(..., help="Account _id."),
    yes: bool = YES_OPTION,
    day: str | None = typer.Option(None, "--day", help="UTC day as YYYY-MM-DD (default: today)."),
) -> None:
    """Make an account available again: forget its usage for the day, its wait window, reservation and auth failure.

    Example: outbound reset-account-limits 665f1c2e9b1e8a3d4c5b6a72 --yes
    """
    chosen = _day_option(day, _now())
    cleared = run_db(settings_of(ctx), lambda db: _reset_account(db, account_id, chosen, yes))
    if not cleared:
        console.print(f"Account {account_id}: nothing to clear for {chosen}")
        return
    console.print(f"Account {account_id}: cleared")
    for item in cleared:
        console.print(f"  {item}")


COMMANDS: dict[str, Callable[..., None]] = {
    "list-campaigns": list_campaigns,
    "show-campaign": show_campaign,
    "show-campaign-progress": show_campaign_progress,
    "list-accounts": list_accounts,
    "show-account-stats": show_account_stats,
    "show-lead-details": show_lead_details,
    "show-due-leads": show_due_leads,
    "reset-lead-progress": reset_lead_progress,
    "reset-campaign-progress": reset_campaign_progress,
    "bulk-update-status": bulk_update_status,
    "reset-account-limits": reset_account_limits,
}


def register(app: typer.Typer) -> None:
    """Add the inspection and repair commands to `app`."""
    for name, command in COMMANDS.items():
        app.command(name)(command)
