"""Apply an answer (reply, auto-reply, bounce, unsubscribe) to the lead it answers, once.

The decision is `domain.inbound_effects.decide`; this module reads what it needs and writes:
the recipient's status and the lead's stop (only while no dispatcher holds the lead: a held lead is written
when its lease ends, so a dispatcher's release never overwrites the answer), the suppression (at once, so
the next claim of any campaign skips the address), and one activity keyed by the answer, so applying the
same answer twice records it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from pymongo.errors import DuplicateKeyError

from app.domain import inbound_effects as fx
from app.domain.campaigns import recipient_key
from app.domain.collections import ACTIVITIES, CAMPAIGN_LEADS, CAMPAIGNS, INBOUND, SENDS, SUPPRESSIONS
from app.domain.inbound import SendRef
from app.store import inbound, suppressions
from app.store.client import Database
from app.store.documents import id_filter

log = structlog.get_logger()  # lazy: takes the configuration in force when it first logs

_LEAD_FIELDS = {"lead_data": 1, "campaign_id": 1, "progress.lease_until": 1, "progress.stopped": 1}


@dataclass(frozen=True)
class Answer:
    """One answer to apply: what it is (`domain.inbound_effects` ANSWERS), from whom, to which send.

    `key` makes it idempotent (the inbound message's record id, or `link:<send key>` for the one-click link);
    `details` go into the activity (message_id, date, subject, snippet, reason, folder...).
    """

    answer: str
    email: str
    key: str
    ref: SendRef | None = None
    account_id: str | None = None
    source: str = "inbox"
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Applied:
    """What applying an answer did. `deferred`: a dispatcher holds the lead; apply it again later."""

    found: bool
    email: str | None
    changed: bool
    deferred: bool = False
    lead_id: str | None = None
    status: str | None = None
    stopped: str | None = None
    detail: str = ""


async def apply(db: Database, answer: Answer, now: datetime) -> Applied:
    """Write what `answer` does; safe to call again with the same answer (nothing more changes)."""
    lead = await _lead(db, answer.ref)
    index = _recipient_index(lead, answer) if lead is not None else None
    if lead is None or index is None:
        change = fx.decide(answer.answer, [], -1, earlier_soft_bounces=await _soft_bounces(db, answer))
        await _suppress(db, answer, change, now)
        changed = await _record(db, answer, change, None, None, now)
        return Applied(False, answer.email, changed, detail="no lead holds this recipient any more")
    statuses = [_status(r) for r in lead["lead_data"]]
    change = fx.decide(
        answer.answer,
        statuses,
        index,
        stop_on_reply=await _stop_on_reply(db, lead.get("campaign_id")),
        earlier_soft_bounces=await _soft_bounces(db, answer),
    )
    await _suppress(db, answer, change, now)
    if not await _write_lead(db, lead, index, change, now):
        return Applied(True, answer.email, False, deferred=True, lead_id=str(lead["_id"]), detail="lead is held")
    changed = await _record(db, answer, change, lead, index, now)
    if changed:
        log.info(
            "inbound.applied",
            answer=answer.answer,
            lead_id=str(lead["_id"]),
            recipient_index=index,
            status=change.status,
            stopped=change.stop_reason,
            source=answer.source,
        )
    return Applied(True, answer.email, changed, False, str(lead["_id"]), change.status, change.stop_reason)


async def unsubscribe_by_link(db: Database, ref: SendRef, now: datetime) -> Applied:
    """The one-click link of send `ref` was used: unsubscribe that recipient (idempotent).

    When a dispatcher holds the lead right now, the address is suppressed at once and the status is written
    by the inbox loop's retry of deferred answers (see `store.inbound.defer`).
    """
    email = await _send_email(db, ref)
    if email is None:
        return Applied(False, None, False, detail="no such send")
    answer = Answer(fx.UNSUBSCRIBE, email, f"link:{ref.send_key}", ref, source="link")
    applied = await apply(db, answer, now)
    if applied.deferred:
        await inbound.defer(db[INBOUND], answer.key, [answer_doc(answer)], now)
    return applied


def answer_doc(answer: Answer) -> dict[str, Any]:
    """An answer as stored in an `inbound` record, to be applied again later (`answer_from_doc`)."""
    doc: dict[str, Any] = {
        "answer": answer.answer,
        "email": answer.email,
        "key": answer.key,
        "source": answer.source,
        "details": dict(answer.details),
    }
    if answer.ref is not None:
        doc["ref"] = {
            "lead_id": answer.ref.lead_id,
            "step_order": answer.ref.step_order,
            "recipient_index": answer.ref.recipient_index,
        }
    if answer.account_id:
        doc["account_id"] = answer.account_id
    return doc


def answer_from_doc(doc: Mapping[str, Any]) -> Answer | None:
    """The answer `answer_doc` stored, or None when the stored form is not one (nothing to apply)."""
    ref_doc = doc.get("ref")
    ref = None
    if isinstance(ref_doc, Mapping):
        try:
            ref = SendRef(str(ref_doc["lead_id"]), int(ref_doc["step_order"]), int(ref_doc["recipient_index"]))
        except (KeyError, TypeError, ValueError):
            ref = None
    answer, email, key = doc.get("answer"), doc.get("email"), doc.get("key")
    if answer not in fx.ANSWERS or not isinstance(email, str) or not isinstance(key, str):
        return None
    details = doc.get("details")
    return Answer(
        str(answer),
        email,
        key,
        ref,
        account_id=doc.get("account_id") if isinstance(doc.get("account_id"), str) else None,
        source=str(doc.get("source") or "inbox"),
        details=details if isinstance(details, Mapping) else {},
    )


async def _send_email(db: Database, ref: SendRef) -> str | None:
    doc = await db[SENDS].find_one({"_id": ref.send_key}, projection={"email": 1})
    if doc is not None and isinstance(doc.get("email"), str):
        return str(doc["email"])
    lead = await _lead(db, ref)
    data = lead.get("lead_data") if lead else None
    if isinstance(data, list) and 0 <= ref.recipient_index < len(data) and isinstance(data[ref.recipient_index], dict):
        email = data[ref.recipient_index].get("email")
        return email if isinstance(email, str) else None
    return None


async def _lead(db: Database, ref: SendRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    variant = f"progress.processed_recipients.{recipient_key(ref.step_order, ref.recipient_index)}.variant"
    doc = await db[CAMPAIGN_LEADS].find_one(id_filter(ref.lead_id), projection={**_LEAD_FIELDS, variant: 1})
    return doc if doc is not None and isinstance(doc.get("lead_data"), list) else None


def _status(recipient: object) -> str:
    status = recipient.get("status") if isinstance(recipient, dict) else None
    return status if isinstance(status, str) else "not_contacted"


def _recipient_index(lead: Mapping[str, Any], answer: Answer) -> int | None:
    """Which recipient answered: the one the send names when it still has that address, else by address."""
    data = lead["lead_data"]
    wanted = answer.email.lower()

    def email_at(i: int) -> str | None:
        recipient = data[i]
        email = recipient.get("email") if isinstance(recipient, dict) else None
        return email.lower() if isinstance(email, str) else None

    hinted = answer.ref.recipient_index if answer.ref is not None else -1
    if 0 <= hinted < len(data) and email_at(hinted) == wanted:
        return hinted
    return next((i for i in range(len(data)) if email_at(i) == wanted), None)


async def _stop_on_reply(db: Database, campaign_id: object) -> str:
    if campaign_id is None:
        return "lead"
    doc = await db[CAMPAIGNS].find_one(id_filter(campaign_id), projection={"settings.stop_on_reply": 1})
    settings = doc.get("settings") if doc else None
    value = settings.get("stop_on_reply") if isinstance(settings, dict) else None
    return value if value in fx.STOP_ON_REPLY else "lead"


async def _soft_bounces(db: Database, answer: Answer) -> int:
    if answer.answer != fx.SOFT_BOUNCE:
        return 0
    flt = {"email": answer.email, "type": "soft_bounce", "inbound_key": {"$ne": answer.key}}
    return await db[ACTIVITIES].count_documents(flt)


async def _suppress(db: Database, answer: Answer, change: fx.LeadChange, now: datetime) -> None:
    if change.suppress:
        detail = f"{answer.source}: {change.note or change.activity}"
        await suppressions.add(db[SUPPRESSIONS], [(answer.email, change.suppress, detail)], now)


async def _write_lead(db: Database, lead: Mapping[str, Any], index: int, change: fx.LeadChange, now: datetime) -> bool:
    """Set the status and stop, unless a dispatcher holds the lead (then False: nothing was written)."""
    values: dict[str, Any] = {}
    update: dict[str, Any] = {}
    if change.status:
        values[f"lead_data.{index}.status"] = change.status
    if change.stop_reason and not _stopped(lead):
        values.update({"progress.stopped": True, "progress.stopped_reason": change.stop_reason})
        update["$unset"] = {"progress.next_due_at": ""}
    if not values:
        return True
    update["$set"] = values
    free = {"$or": [{"progress.lease_until": {"$exists": False}}, {"progress.lease_until": {"$lte": now}}]}
    email = lead["lead_data"][index].get("email")
    result = await db[CAMPAIGN_LEADS].update_one(
        {"_id": lead["_id"], f"lead_data.{index}.email": email, **free}, update
    )
    return result.matched_count == 1


def _stopped(lead: Mapping[str, Any]) -> bool:
    progress = lead.get("progress")
    return isinstance(progress, dict) and progress.get("stopped") is True


def _variant_of(lead: Mapping[str, Any] | None, ref: SendRef) -> str | None:
    """The template variant the send `ref` was worded from, as its settlement recorded it in the lead."""
    if lead is None:
        return None
    processed = (lead.get("progress") or {}).get("processed_recipients") or {}
    key = recipient_key(ref.step_order, ref.recipient_index)
    entry = processed.get(key) if isinstance(processed, Mapping) else None
    variant = entry.get("variant") if isinstance(entry, Mapping) else None
    return variant if isinstance(variant, str) else None


async def _record(
    db: Database,
    answer: Answer,
    change: fx.LeadChange,
    lead: Mapping[str, Any] | None,
    index: int | None,
    now: datetime,
) -> bool:
    """Insert the answer's activity once (keyed by the answer); True when this call inserted it."""
    doc: dict[str, Any] = {
        "_id": f"answer:{answer.key}",
        "type": change.activity,
        "email": answer.email,
        "created_at": now,
        "source": answer.source,
        "inbound_key": answer.key,
    }
    if lead is not None:
        doc.update({"campaign_id": lead.get("campaign_id"), "lead_id": str(lead["_id"]), "recipient_index": index})
    if answer.ref is not None:
        doc["step_order"] = answer.ref.step_order
        doc.setdefault("lead_id", answer.ref.lead_id)
        variant = _variant_of(lead, answer.ref)
        if variant is not None:
            doc["variant"] = variant  # the wording this answer is to, for the reply rate per variant
    if answer.account_id:
        doc["account_id"] = answer.account_id
    if change.note:
        doc["note"] = change.note
    doc["inbound"] = dict(answer.details)
    try:
        await db[ACTIVITIES].insert_one(doc)
    except DuplicateKeyError:
        return False
    return True
