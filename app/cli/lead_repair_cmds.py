"""`reset-lead-progress`, `reset-campaign-progress` and `bulk-update-status`: repairs of leads' progress and statuses.

Each repair confirms first (unless --yes) and never touches a lead a dispatcher is holding. Setting recipients
to unsubscribed or bounced by hand also suppresses their addresses, so no other campaign mails them either.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import typer

from app.cli.common import (
    CAMPAIGN_ARGUMENT,
    LEAD_ARGUMENT,
    YES_OPTION,
    confirm,
    console,
    err_console,
    fail,
    fmt_time,
    now_utc,
    run_db,
    settings_of,
)
from app.cli.lookups import any_of, campaign_ref, load_campaign
from app.domain import stop_policy
from app.domain.models import RECIPIENT_STATUSES
from app.domain.suppression_entries import InvalidEntry, suppression_value
from app.store import schema, suppressions
from app.store.client import Database
from app.store.documents import Collection, get_doc

# How long a reset holds the leads it rewrites; if the command dies midway, dispatchers take them back after this.
RESET_LEASE = timedelta(minutes=5)
RESET_OWNER = "outbound-reset"
# Statuses that say a person must not be mailed by anyone: set by hand, they suppress the address everywhere.
SUPPRESSING_STATUSES = frozenset({"unsubscribed", "bounced"})
SUPPRESS_DETAIL = "bulk-update-status"
_SUPPRESS_CHUNK = 1000


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
    deleted = await db[schema.SENDS].delete_many({"lead_id": {"$in": any_of(ids)}}) if ids else None
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


def reset_lead_progress(ctx: typer.Context, lead_id: str = LEAD_ARGUMENT, yes: bool = YES_OPTION) -> None:
    """Reset a lead to step 1, due now: clear its progress and recipient statuses, delete its send ledger.

    Example: outbound reset-lead-progress 665f1c2e9b1e8a3d4c5b6a71 --yes
    """
    now = now_utc()
    outcome = run_db(settings_of(ctx), lambda db: _reset_lead(db, lead_id, yes, now))
    console.print(f"Reset lead {lead_id}: step 1, due now; deleted {outcome.sends_deleted} send ledger entries")


async def _reset_campaign(db: Database, campaign_id: str, yes: bool, now: datetime) -> ResetOutcome:
    campaign = await load_campaign(db, campaign_id)
    total = await db[schema.CAMPAIGN_LEADS].count_documents(campaign_ref(campaign.id))
    confirm(
        f"Reset progress of all {total} leads of campaign {campaign.name!r} ({campaign.id}) and delete their "
        "send ledger, so every recipient can be mailed again?",
        yes,
    )
    return await reset_leads(db, campaign_ref(campaign.id), now)


def reset_campaign_progress(ctx: typer.Context, campaign_id: str = CAMPAIGN_ARGUMENT, yes: bool = YES_OPTION) -> None:
    """Reset every lead of a campaign to step 1, due now (leads a dispatcher holds are left and counted).

    Example: outbound reset-campaign-progress 665f1c2e9b1e8a3d4c5b6a70 --yes
    """
    now = now_utc()
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
        values.update({"progress.stopped": True, "progress.stopped_reason": status})
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
        campaign_ref(campaign_id),
        {"lead_data": {"$type": "array"}},
        {"$or": [{"progress": {"$exists": False}}, {"progress": {"$type": "object"}}]},
    ]


def _matching_addresses(lead_data: object, email_filter: str | None) -> list[str]:
    """The suppression values of the recipients `status_update` sets (those matching the filter, or all)."""
    pattern = re.compile(re.escape(email_filter), re.IGNORECASE) if email_filter is not None else None
    found = []
    for recipient in lead_data if isinstance(lead_data, list) else []:
        email = recipient.get("email") if isinstance(recipient, Mapping) else None
        if not isinstance(email, str) or (pattern is not None and not pattern.search(email)):
            continue
        try:
            found.append(suppression_value(email))
        except InvalidEntry:
            continue  # never mailable anyway: such a recipient is refused when the lead is read
    return found


async def suppress_recipients(
    db: Database, flt: Mapping[str, Any], status: str, email_filter: str | None, now: datetime
) -> tuple[int, int]:
    """Suppress, for every campaign, the addresses a bulk update to `status` sets, a chunk per write;
    returns (addresses, how many of them were new on the list)."""
    coll, added, total = db[schema.SUPPRESSIONS], 0, 0
    pending: set[str] = set()
    async for doc in db[schema.CAMPAIGN_LEADS].find(flt, projection={"lead_data.email": 1}):
        pending.update(_matching_addresses(doc.get("lead_data"), email_filter))
        if len(pending) >= _SUPPRESS_CHUNK:
            added += await suppressions.add(coll, [(v, status, SUPPRESS_DETAIL) for v in sorted(pending)], now)
            total, pending = total + len(pending), set()
    added += await suppressions.add(coll, [(v, status, SUPPRESS_DETAIL) for v in sorted(pending)], now)
    return total + len(pending), added


async def _bulk_update(
    db: Database, campaign_id: str, status: str, email_filter: str | None, yes: bool
) -> dict[str, int]:
    campaign = await load_campaign(db, campaign_id)
    lead_match, update, array_filters = status_update(status, email_filter)
    leads = db[schema.CAMPAIGN_LEADS]
    flt = {"$and": [*_writable(campaign.id), lead_match]}
    matched = await leads.count_documents(flt)
    stopping = " and stop those leads" if _stops_leads(status, email_filter) else ""
    suppressing = " and suppress their addresses in every campaign" if status in SUPPRESSING_STATUSES else ""
    who = f"recipients matching {email_filter!r}" if email_filter else "every recipient"
    confirm(f"Set {who} of {matched} leads of campaign {campaign.name!r} to {status}{stopping}{suppressing}?", yes)
    # Suppressed first: should the status update fail, running the command again completes it.
    suppressed = await suppress_recipients(db, flt, status, email_filter, now_utc()) if suppressing else (0, 0)
    result = await leads.update_many(flt, update, array_filters=array_filters)
    malformed = await leads.count_documents(campaign_ref(campaign.id)) - await leads.count_documents(
        {"$and": _writable(campaign.id)}
    )
    return {
        "matched": result.matched_count,
        "modified": result.modified_count,
        "malformed": malformed,
        "suppressed": suppressed[0],
        "newly_suppressed": suppressed[1],
    }


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

    unsubscribed and bounced also put the addresses on the suppression list, so no campaign mails them again.

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
    if status in SUPPRESSING_STATUSES:
        added, already = result["newly_suppressed"], result["suppressed"] - result["newly_suppressed"]
        console.print(
            f"Suppressed {result['suppressed']} addresses in every campaign (reason: {status}): "
            f"added {added}, already suppressed {already}"
        )
    if result["malformed"]:
        err_console.print(
            f"{result['malformed']} malformed leads (lead_data or progress of the wrong type) were left alone"
        )


def register(app: typer.Typer) -> None:
    """Add the lead repair commands to `app`."""
    app.command("reset-lead-progress")(reset_lead_progress)
    app.command("reset-campaign-progress")(reset_campaign_progress)
    app.command("bulk-update-status")(bulk_update_status)
