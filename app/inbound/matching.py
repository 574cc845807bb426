"""Which send of ours an inbound message answers, and the answers it carries.

In this order: a Message-ID of ours in In-Reply-To/References (for a bounce: in the returned message or
headers; for an unsubscribe request: the token in its subject), read back from the send ledger; then the
sender's address (for a bounce: the failed recipient's) equal to a recipient this account has mailed, its
latest send. Every match names the exact (lead, step, recipient).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.domain import inbound as kinds
from app.domain import inbound_effects as fx
from app.domain.collections import CAMPAIGN_LEADS, SENDS
from app.domain.inbound import BouncedRecipient, Classified, SendRef
from app.store.client import Database
from app.store.documents import id_values

BY_MESSAGE_ID = "message-id"
BY_ADDRESS = "address"


@dataclass(frozen=True)
class Match:
    """The send answered, the recipient's address as we mailed it, and how the match was made."""

    ref: SendRef
    email: str
    account_id: str | None
    by: str


@dataclass(frozen=True)
class Matched:
    """One answer found in a message: what it is (an ANSWERS value) and the send it answers."""

    answer: str
    match: Match
    bounce: BouncedRecipient | None = None


async def answers(db: Database, classified: Classified, account_id: str) -> list[Matched]:
    """The answers `classified` carries for sends of `account_id` (empty: it answers nothing of ours)."""
    if classified.kind == kinds.BOUNCE:
        return await _bounces(db, classified, account_id)
    answer = {kinds.REPLY: fx.REPLY, kinds.AUTO_REPLY: fx.AUTO_REPLY, kinds.UNSUBSCRIBE: fx.UNSUBSCRIBE}.get(
        classified.kind
    )
    if answer is None:
        return []
    match = await _by_refs(db, classified.refs, None, account_id)
    if match is None and classified.from_email:
        match = await _by_address(db, classified.from_email, account_id)
    return [Matched(answer, match)] if match is not None else []


async def _bounces(db: Database, classified: Classified, account_id: str) -> list[Matched]:
    found: list[Matched] = []
    for bounce in classified.bounces:
        match = await _by_refs(db, classified.refs, bounce.email, account_id)
        if match is None:
            match = await _by_address(db, bounce.email, account_id)
        if match is not None:
            found.append(Matched(fx.HARD_BOUNCE if bounce.hard else fx.SOFT_BOUNCE, match, bounce))
    if not classified.bounces and classified.refs:
        # A bounce that names our message but not the recipient: the send's own recipient, counted as soft.
        match = await _by_refs(db, classified.refs, None, account_id)
        if match is not None:
            found.append(Matched(fx.SOFT_BOUNCE, match))
    return found


async def _by_refs(db: Database, refs: Sequence[SendRef], email: str | None, account_id: str) -> Match | None:
    """The first of `refs` the ledger knows (and, for a bounce, that went to `email`)."""
    if not refs:
        return None
    keys = [ref.send_key for ref in refs]
    docs = {
        str(doc["_id"]): doc
        async for doc in db[SENDS].find({"_id": {"$in": keys}}, projection={"email": 1, "account_id": 1})
    }
    for ref in refs:
        doc = docs.get(ref.send_key)
        if doc is None or not isinstance(doc.get("email"), str):
            continue
        if email is not None and str(doc["email"]).lower() != email.lower():
            continue
        account = doc.get("account_id")
        return Match(ref, str(doc["email"]), str(account) if account else account_id, BY_MESSAGE_ID)
    return None


async def _by_address(db: Database, email: str, account_id: str) -> Match | None:
    """This account's latest send to `email` (through the leads holding the address: both reads indexed)."""
    addresses = sorted({email, email.lower()})
    lead_ids: list[Any] = []
    async for doc in db[CAMPAIGN_LEADS].find({"lead_data.email": {"$in": addresses}}, projection={"_id": 1}):
        lead_ids.extend(id_values(doc["_id"]))
    if not lead_ids:
        return None
    best: dict[str, Any] | None = None
    flt = {"lead_id": {"$in": lead_ids}, "account_id": account_id}
    async for doc in db[SENDS].find(flt, projection={"email": 1, "step_order": 1, "recipient_index": 1, "lead_id": 1}):
        if str(doc.get("email", "")).lower() != email.lower():
            continue
        if best is None or (doc.get("step_order") or 0) > (best.get("step_order") or 0):
            best = doc
    if best is None:
        return None
    ref = SendRef(str(best["lead_id"]), int(best.get("step_order") or 1), int(best.get("recipient_index") or 0))
    return Match(ref, str(best["email"]), account_id, BY_ADDRESS)
