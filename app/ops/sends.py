"""The sends nobody can vouch for (`list-uncertain`) and how an operator settles one (`resolve-send`).

An uncertain send may or may not have reached the recipient (a crash or a dropped connection after DATA). It
counts against limits and is never retried automatically: the operator says it was delivered (`sent`) or not
(`resend`: the step is queued again, and the recipient may get it twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from app.domain import ledger_states as lstate
from app.domain.models import recipient_key
from app.ops.errors import OpError, not_found
from app.store import schema
from app.store.client import Database
from app.store.documents import id_filter

Outcome = Literal["sent", "resend"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)


@dataclass(frozen=True)
class ResolvedSend:
    """A settled send: its new ledger state (`sent`, or `retry_wait` to be sent again) and its lead."""

    send_key: str
    state: str
    lead_id: str
    email: str | None


async def list_uncertain(
    db: Database, campaign_id: str | None, limit: int, *, by_key: bool = False, after: str | None = None
) -> list[dict[str, Any]]:
    """Up to `limit` uncertain sends (of one campaign, if given) as stored: longest uncertain first, or with
    `by_key` in send key (`_id`) order after the key `after`, so pages never repeat or skip one while sends
    change state."""
    flt: dict[str, Any] = {"state": lstate.UNCERTAIN}
    if campaign_id is not None:
        flt.update(id_filter(campaign_id, "campaign_id"))
    if not by_key:
        return [doc async for doc in db[schema.SENDS].find(flt, sort=[("updated_at", 1)], limit=limit)]
    if after is not None:
        flt["_id"] = {"$gt": after}
    return [doc async for doc in db[schema.SENDS].find(flt, sort=[("_id", 1)], limit=limit)]


def _lead_is_held(lead: dict[str, Any], now: datetime) -> bool:
    until = (lead.get("progress") or {}).get("lease_until")
    return isinstance(until, datetime) and until > now


def _lead_update(lead: dict[str, Any], key: str, index: int, step: int, sent: bool, now: datetime) -> dict[str, Any]:
    progress = lead.get("progress") or {}
    if sent:
        values: dict[str, Any] = {f"{key}.status": "sent", f"lead_data.{index}.status": "contacted"}
        if not progress.get("completed") and not progress.get("stopped"):
            # A step held back by this uncertain send may go on now.
            values["progress.next_due_at"] = now
        return {"$set": values}
    return {
        "$set": {"progress.current_step_order": step, "progress.next_due_at": now},
        "$unset": {key: "", "progress.completed": "", "progress.completed_at": ""},
    }


async def resolve_send(db: Database, send_key: str, outcome: str, now: datetime) -> ResolvedSend:
    """Settle one uncertain send as delivered (`sent`) or not (`resend`); OpError, changing nothing, when the send
    or its lead is unknown, the send is not uncertain, or a dispatcher holds or changes the lead meanwhile."""
    if outcome not in OUTCOMES:
        raise OpError("invalid", f"outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
    sends, leads = db[schema.SENDS], db[schema.CAMPAIGN_LEADS]
    send = await sends.find_one({"_id": send_key})
    if send is None:
        raise not_found("send", send_key)
    if send.get("state") != lstate.UNCERTAIN:
        raise OpError(
            "conflict", f"send {send_key} is {send.get('state')}, not uncertain: only uncertain sends can be resolved"
        )
    lead = await leads.find_one({"_id": send["lead_id"]})
    if lead is None:
        raise not_found("lead", send["lead_id"])
    if _lead_is_held(lead, now):
        owner = lead["progress"].get("lease_owner")
        raise OpError("conflict", f"lead {lead['_id']} is being processed by {owner}; try again shortly")
    step, index, sent = int(send["step_order"]), int(send["recipient_index"]), outcome == "sent"
    key = f"progress.processed_recipients.{recipient_key(step, index)}"
    version = (lead.get("progress") or {}).get("version")
    # Compare-and-set on the lead's version so a dispatcher claiming it meanwhile makes this fail, not race.
    update = _lead_update(lead, key, index, step, sent, now)
    result = await leads.update_one({"_id": lead["_id"], "progress.version": version}, update)
    if result.modified_count != 1:
        raise OpError("conflict", f"lead {lead['_id']} changed while resolving; nothing was changed, run it again")
    state = lstate.SENT if sent else lstate.RETRY_WAIT
    await sends.update_one(
        {"_id": send_key, "state": lstate.UNCERTAIN},
        {"$set": {**lstate.move(lstate.UNCERTAIN, state, now), "resolved_by_operator": True, "resolved_at": now}},
    )
    await db[schema.ACTIVITIES].insert_one(
        {
            "campaign_id": send.get("campaign_id"),
            "lead_id": send["lead_id"],
            "account_id": send.get("account_id"),
            "step_order": step,
            "recipient_index": index,
            "email": send.get("email"),
            "type": "resolved_sent" if sent else "resolved_resend",
            "message_id": send.get("message_id"),
            "created_at": now,
        }
    )
    return ResolvedSend(send_key, state, str(lead["_id"]), send.get("email"))
