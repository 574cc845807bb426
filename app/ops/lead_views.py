"""What `show-lead-details` prints, gathered for every surface: one lead in full, with its send ledger and its
latest activities (the answers among them), and when it waits for its campaign's sending window.

An unknown lead raises the store's NotFound (naming the id); a malformed one InvalidDocument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.domain import reports
from app.domain.gates import GateContext, sending_window_gate
from app.domain.models import Campaign, InvalidDocument, Lead
from app.store import schema
from app.store.client import Database
from app.store.documents import Collection, get_model, id_filter

ACTIVITY_LIMIT = 20
ACTIVITY_FIELDS = (
    "created_at",
    "type",
    "step_order",
    "recipient_index",
    "email",
    "account_id",
    "message_id",
    "smtp_code",
    "error",
    "inbound",
    "note",
    "source",
)
SEND_FIELDS = (
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


async def _lead_history(
    coll: Collection, lead_id: object, fields: Sequence[str], sort: list[tuple[str, int]], limit: int = 0
) -> list[dict[str, Any]]:
    """The lead's documents in `coll` (activities, sends), each cut down to `fields`."""
    cursor = coll.find(id_filter(lead_id, "lead_id"), sort=sort, limit=limit)
    return [{k: doc.get(k) for k in fields} async for doc in cursor]


def window_wait(lead: Lead, campaign: Campaign | None, now: datetime) -> str | None:
    """Why the lead waits at `now` for its campaign's sending window (None: it is open, or there is none)."""
    if campaign is None or campaign.settings.schedule is None or lead.progress.stopped or lead.progress.completed:
        return None
    pending = reports.pending_recipients(lead)
    recipient = lead.recipients[pending[0] if pending else 0]
    verdict = sending_window_gate(recipient, GateContext(now, schedule=campaign.settings.schedule))
    return verdict.reason if verdict is not None else None


def _typed_campaign(doc: Mapping[str, Any] | None) -> Campaign | None:
    try:
        return Campaign.from_doc(doc) if doc is not None else None
    except InvalidDocument:
        return None  # shown as stored; the dispatcher reports it


async def lead_details(
    db: Database, lead_id: str, now: datetime, activity_limit: int = ACTIVITY_LIMIT
) -> dict[str, Any]:
    """A lead in full: campaign, state, window wait, progress and lease, recipients, ledger, latest activities."""
    lead = await get_model(db[schema.CAMPAIGN_LEADS], "lead", lead_id, Lead.from_doc)
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
        "window": window_wait(lead, _typed_campaign(campaign), now),
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
        "sends": await _lead_history(
            db[schema.SENDS], lead.id, SEND_FIELDS, [("step_order", 1), ("recipient_index", 1)]
        ),
        "activities": await _lead_history(
            db[schema.ACTIVITIES], lead.id, ACTIVITY_FIELDS, [("created_at", -1)], activity_limit
        ),
    }


def lead_company(lead: Lead) -> str | None:
    """The lead's company as its recipients name it (company_name, company), else their website."""
    for key in ("company_name", "company", "website"):
        for recipient in lead.recipients:
            value = recipient.fields.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None
