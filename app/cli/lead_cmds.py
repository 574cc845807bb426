"""`show-lead-details` and `show-due-leads`: one lead in full, and the leads a dispatcher would send next.

Leads are read through their typed view; in the due list a malformed lead is reported and skipped. Both say when a
lead waits for its campaign's sending window, as the dispatcher's gate would judge its next recipient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import typer
from pymongo import ASCENDING

from app.cli.common import (
    JSON_OPTION,
    LEAD_ARGUMENT,
    Skipped,
    console,
    emit,
    err_console,
    fmt_time,
    now_utc,
    print_json,
    print_table,
    run_db,
    settings_of,
)
from app.cli.lookups import any_of, load_campaign
from app.domain import reports
from app.domain.models import Campaign, Lead
from app.ops import lead_views
from app.store import lead_queries, schema
from app.store.answer_stats import ANSWER_TYPES
from app.store.client import Database
from app.store.documents import iter_valid

ACTIVITY_LIMIT = lead_views.ACTIVITY_LIMIT


def _render_lead(info: Mapping[str, Any]) -> None:
    p, c = info["progress"], info["campaign"]
    console.print(
        f"[bold]lead {info['id']}[/] ({info['lead_key'] or '-'}) campaign {c['name'] or '-'} ({c['id']}, {c['status']})"
    )
    console.print(
        f"state {info['state']}: step {p['current_step_order']}, next due {fmt_time(p['next_due_at'])}, "
        f"stopped {p['stopped']}{' (' + p['stop_reason'] + ')' if p['stop_reason'] else ''}, completed {p['completed']}"
    )
    if info["window"]:
        console.print(info["window"])
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
    answers = [a for a in info["activities"] if a["type"] in ANSWER_TYPES]
    if answers:
        print_table("Answers", ["at", "type", "step", "#", "subject", "snippet", "message id"], _answer_rows(answers))


def _answer_rows(answers: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """Replies, bounces and unsubscribes with what the message said (subject, a snippet, its Message-ID)."""
    rows = []
    for a in answers:
        given = a.get("inbound")
        inbound: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        said = inbound.get("diagnostic") or inbound.get("snippet") or a.get("note") or ""
        subject = inbound.get("subject") or ("one-click unsubscribe link" if a.get("source") == "link" else "")
        when = inbound.get("date") or a["created_at"]
        rows.append([fmt_time(when), a["type"], a["step_order"], a["recipient_index"], subject, said[:80]])
        rows[-1].append(inbound.get("message_id") or "-")
    return rows


def show_lead_details(ctx: typer.Context, lead_id: str = LEAD_ARGUMENT, json_: bool = JSON_OPTION) -> None:
    """Show a lead: campaign, progress and lease, each recipient, processed recipients, send ledger, activities.

    Example: outbound show-lead-details 665f1c2e9b1e8a3d4c5b6a71
    """
    now = now_utc()
    info = run_db(settings_of(ctx), lambda db: lead_views.lead_details(db, lead_id, now))
    if json_:
        print_json(info)
    else:
        _render_lead(info)


async def _active_campaigns(db: Database, campaign_id: str | None, skipped: Skipped) -> dict[str, Campaign]:
    if campaign_id is not None:
        campaign = await load_campaign(db, campaign_id)
        return {campaign.id: campaign} if campaign.status == "active" else {}
    coll = db[schema.CAMPAIGNS]
    return {c.id: c async for c in iter_valid(coll, {"status": "active"}, Campaign.from_doc, on_invalid=skipped.add)}


async def _due_leads(
    db: Database, campaign_id: str | None, limit: int, now: datetime, skipped: Skipped
) -> dict[str, Any]:
    campaigns = await _active_campaigns(db, campaign_id, skipped)
    flt = {"campaign_id": {"$in": any_of(list(campaigns))}, **lead_queries.due_filter(now)}
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
            "first_recipient": lead.recipients[0].email if lead.recipients else None,
            "company": lead_views.lead_company(lead),
            "next_due_at": lead.progress.next_due_at,
            "window": lead_views.window_wait(lead, campaigns.get(lead.campaign_id), now),
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
    now, skipped = now_utc(), Skipped()
    info = run_db(settings_of(ctx), lambda db: _due_leads(db, campaign_id, limit, now, skipped))

    def render() -> None:
        console.print(f"Found {info['found']} due leads")
        if campaign_id is not None and info["active_campaigns"] == 0:
            err_console.print(f"campaign {campaign_id} is not active: its leads are not dispatched")
        rows = [
            [
                *(d["campaign"] or d["campaign_id"], d["lead_id"], d["first_recipient"], d["company"], d["step"]),
                *(f"{d['recipients_pending']}/{d['recipients']}", fmt_time(d["next_due_at"]), d["window"] or ""),
            ]
            for d in info["leads"]
        ]
        title = f"Due leads (first {len(rows)} of {info['found']})" if len(rows) < info["found"] else "Due leads"
        columns = ["campaign", "lead", "first recipient", "company", "step", "pending", "due at", "note"]
        print_table(title, columns, rows)

    emit(json_, info, skipped, render)


def register(app: typer.Typer) -> None:
    """Add the lead commands to `app`."""
    app.command("show-lead-details")(show_lead_details)
    app.command("show-due-leads")(show_due_leads)
