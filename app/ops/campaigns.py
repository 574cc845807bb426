"""Campaign actions: pause, resume, and trigger (its waiting leads become due now).

Status changes are fenced by the status read, so a concurrent automatic pause is never overwritten unseen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.models import InvalidDocument
from app.domain.pausers import paused_by_label as paused_by_label
from app.domain.pausers import pauser as pauser
from app.ops.errors import OpError, not_found
from app.store import campaign_admin, schema
from app.store.client import Database
from app.store.documents import NotFound, id_filter

MAX_REASON_LENGTH = 500


@dataclass(frozen=True)
class StatusChange:
    """A campaign's status before and after an action, and the pause reason it had (cleared by a resume)."""

    campaign_id: str
    before: str
    after: str
    paused_reason: str | None = None


@dataclass(frozen=True)
class Triggered:
    """How many of the campaign's waiting leads were made due now."""

    campaign_id: str
    status: str
    leads_due_now: int


async def _campaign(db: Database, campaign_id: str) -> dict[str, Any]:
    try:
        return await campaign_admin.campaign_doc(db, campaign_id)
    except NotFound:
        raise not_found("campaign", campaign_id) from None
    except InvalidDocument as exc:
        raise OpError("conflict", f"campaign {campaign_id} is malformed: {exc}; fix the document first") from None


def _changed_meanwhile(campaign_id: str) -> OpError:
    return OpError("conflict", f"campaign {campaign_id} changed status meanwhile: run the command again")


def _reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    if len(reason) > MAX_REASON_LENGTH:
        raise OpError("invalid", f"reason: at most {MAX_REASON_LENGTH} characters, got {len(reason)}")
    return reason.strip()


async def pause_campaign(
    db: Database, campaign_id: str, reason: str | None, now: datetime, by: dict[str, str] | None = None
) -> StatusChange:
    """Stop sending for an active campaign now; its leads wait where they are until it is resumed.

    A reason, if given, is kept as `paused_reason` (shown by `show-campaign` and asked about on resume), and who
    paused it as `paused_by` (`pauser`).
    """
    why = _reason(reason)
    doc = await _campaign(db, campaign_id)
    if doc.get("status") != "active":
        raise OpError("conflict", f"campaign {campaign_id} is {doc.get('status')}, not active: not paused")
    sets: dict[str, Any] = {"status": "paused", "paused_at": now}
    if why is not None:
        sets["paused_reason"] = why
    if by is not None:
        sets["paused_by"] = by
    unsets = [name for name, value in (("paused_reason", why), ("paused_by", by)) if value is None]
    if not await campaign_admin.update_campaign(db, campaign_id, sets, unsets, expect={"status": "active"}):
        raise _changed_meanwhile(campaign_id)
    return StatusChange(str(doc["_id"]), "active", "paused", why)


async def resume_check(db: Database, doc: dict[str, Any]) -> None:
    """Refuse to make a campaign active without steps, or with a step whose template is missing."""
    steps = await campaign_admin.sequence_steps(db, doc.get("sequence_id"))
    if not steps:
        raise OpError("conflict", f"campaign {doc['_id']} has no steps: add one with `outbound step add` first")
    found = await campaign_admin.templates_by_id(db, [s.template_id for s in steps])
    missing = [f"step {s.step_order} ({s.template_id})" for s in steps if s.template_id not in found]
    if missing:
        raise OpError("conflict", f"templates not found for {', '.join(missing)}: fix them with `step edit`")


async def resumable(db: Database, campaign_id: str) -> dict[str, Any]:
    """The campaign document if it may be resumed now (paused or draft, with steps and their templates)."""
    doc = await _campaign(db, campaign_id)
    if doc.get("status") not in ("paused", "draft"):
        raise OpError("conflict", f"campaign {campaign_id} is {doc.get('status')}: only paused or draft ones")
    await resume_check(db, doc)
    return doc


async def resume_campaign(db: Database, campaign_id: str, now: datetime) -> StatusChange:
    """Make a paused or draft campaign active, clearing its pause reason; due leads are then sent."""
    doc = await resumable(db, campaign_id)
    before = str(doc.get("status"))
    reason = doc.get("paused_reason")
    unsets = ["paused_reason", "paused_at", "paused_by"]
    if not await campaign_admin.update_campaign(
        db, campaign_id, {"status": "active"}, unsets, expect={"status": before}
    ):
        raise _changed_meanwhile(campaign_id)
    return StatusChange(str(doc["_id"]), before, "active", reason if isinstance(reason, str) else None)


def waiting_filter(campaign_id: str, now: datetime) -> dict[str, Any]:
    """The campaign's leads that wait at `now`: not completed, not stopped, no live lease, due later (or unset)."""
    return {
        **id_filter(campaign_id, "campaign_id"),
        "progress.completed": {"$ne": True},
        "progress.stopped": {"$ne": True},
        "$and": [
            {"$or": [{"progress.lease_until": None}, {"progress.lease_until": {"$lte": now}}]},
            {"$or": [{"progress.next_due_at": None}, {"progress.next_due_at": {"$gt": now}}]},
        ],
    }


async def trigger_campaign(db: Database, campaign_id: str, now: datetime) -> Triggered:
    """Make the campaign's waiting leads due now (a step's delay is skipped); they are sent if it is active.

    Leads a dispatcher holds are left alone: the filter excludes a live lease, so no claim is raced.
    """
    doc = await _campaign(db, campaign_id)
    status = str(doc.get("status"))
    if status == "completed":
        raise OpError("conflict", f"campaign {campaign_id} is completed (archived): its leads receive nothing more")
    key = str(doc["_id"])
    result = await db[schema.CAMPAIGN_LEADS].update_many(
        # The version moves as with every lead write, so a compare-and-set reader (resolve-send) sees the change.
        waiting_filter(key, now),
        {"$set": {"progress.next_due_at": now}, "$inc": {"progress.version": 1}},
    )
    return Triggered(key, status, int(result.modified_count))
