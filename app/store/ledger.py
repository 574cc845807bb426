"""The send ledger (`sends`): one document per (lead, step, recipient) that makes sending idempotent.

States: sending -> sent | retry_wait | failed | uncertain; retry_wait -> sending. A recipient is handed to SMTP
only by the attempt that moved its document to `sending` with its own token. A document found in `sending` by
anyone else belongs to an attempt that died between handing the message to SMTP and recording the result: it
may have been delivered (RFC 1047), so it becomes `uncertain` and is never retried automatically.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateMany
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from app.domain import ledger_states as lstate
from app.domain.ledger_states import SETTLED
from app.store.documents import Collection

_MAX_RACES = 5


def send_id(lead_id: object, step_order: int, recipient_index: int) -> str:
    """The ledger key of one (lead, step, recipient)."""
    return f"{lead_id}:{step_order}:{recipient_index}"


@dataclass(frozen=True)
class Attempt:
    """This process now owns the send and may hand it to SMTP exactly once."""

    send_id: str
    token: str
    message_id: str
    attempts: int


@dataclass(frozen=True)
class Settled:
    """The send already has an outcome (or was just declared uncertain); it must not be sent again."""

    send_id: str
    state: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class NewSend:
    """A send this process wants to start; see `start_many`."""

    lead_id: Any
    step_order: int
    recipient_index: int
    campaign_id: str
    email: str
    message_id: str
    account_id: str
    variant: str | None = None  # the template variant the message is worded from (`send/compose.variant_of`)

    @property
    def key(self) -> str:
        return send_id(self.lead_id, self.step_order, self.recipient_index)


def _new_entry(s: NewSend, token: str, now: datetime) -> dict[str, Any]:
    """The ledger document of a first attempt, in `sending` under `token`."""
    return {
        "_id": s.key,
        "lead_id": s.lead_id,
        "step_order": s.step_order,
        "recipient_index": s.recipient_index,
        "campaign_id": s.campaign_id,
        "email": s.email,
        "message_id": s.message_id,
        "account_id": s.account_id,
        "attempts": 1,
        "state": lstate.SENDING,
        "token": token,
        "created_at": now,
        "updated_at": now,
        **({"variant": s.variant} if s.variant is not None else {}),
    }


async def start_attempt(
    coll: Collection, s: NewSend, now: datetime, known: dict[str, Any] | None = None
) -> Attempt | Settled:
    """Move this recipient's send to `sending` for us, or report that it must not be sent.

    `known` is the ledger document the caller has just read (None: the caller saw none), saving a round trip.
    A retry keeps the entry's Message-ID and takes `s.variant` (the variant it is worded from).
    """
    token = uuid.uuid4().hex
    doc: dict[str, Any] | None = known
    for race in range(_MAX_RACES):
        if race > 0:
            doc = await coll.find_one({"_id": s.key})
        if doc is None:
            try:
                await coll.insert_one(_new_entry(s, token, now))
                return Attempt(s.key, token, s.message_id, 1)
            except DuplicateKeyError:
                continue  # a racing dispatcher inserted it first: read what it wrote
        state = doc.get("state")
        if state in SETTLED:
            return Settled(s.key, str(state), doc)
        if state == lstate.SENDING:
            return await _declare_uncertain(coll, doc, now)
        taken = await _take_over(coll, doc, s, token, now)
        if taken is not None:
            return taken
    raise RuntimeError(f"send {s.key}: could not settle a race in {_MAX_RACES} tries")


async def _take_over(coll: Collection, doc: dict[str, Any], s: NewSend, token: str, now: datetime) -> Attempt | None:
    """Move an entry waiting for a retry to `sending` under `token`; None when another attempt changed it first."""
    worded = {"variant": s.variant} if s.variant is not None else {}
    result = await coll.update_one(
        {"_id": s.key, "state": doc.get("state"), "token": doc.get("token")},
        {
            "$set": {"state": lstate.SENDING, "token": token, "account_id": s.account_id, "updated_at": now, **worded},
            "$inc": {"attempts": 1},
        },
    )
    if result.modified_count != 1:
        return None
    return Attempt(s.key, token, str(doc["message_id"]), int(doc.get("attempts", 0)) + 1)


async def start_many(coll: Collection, sends: list[NewSend], now: datetime) -> list[Attempt | Settled]:
    """`start_attempt` for several sends, with one insert for all those that have no ledger entry yet.

    Entries that already exist (a retry, a race, a crash's leftover) go through `start_attempt`, which reads
    them and decides, so the outcome of each is exactly what `start_attempt` alone would give.
    """
    if not sends:
        return []
    docs = [_new_entry(s, uuid.uuid4().hex, now) for s in sends]
    refused: set[int] = set()
    try:
        await coll.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            await _forget(coll, docs)
            raise
        refused = {int(e["index"]) for e in errors}
    except PyMongoError:
        # The server may have applied the insert before the error reached us: those entries carry our tokens
        # and were never handed to SMTP, so they are ours to remove (else they would turn "uncertain").
        await _forget(coll, docs)
        raise
    # The entries that were there already, read in one round trip; each then goes the way `start_attempt` decides.
    known: dict[str, dict[str, Any]] = {}
    if refused:
        known = {d["_id"]: d async for d in coll.find({"_id": {"$in": [sends[i].key for i in sorted(refused)]}})}
    results: list[Attempt | Settled] = []
    for i, (s, doc) in enumerate(zip(sends, docs, strict=True)):
        if i not in refused:
            results.append(Attempt(s.key, str(doc["token"]), s.message_id, 1))
        else:
            results.append(await start_attempt(coll, s, now, known=known.get(s.key)))
    return results


async def _forget(coll: Collection, docs: list[dict[str, Any]]) -> None:
    """Best effort: delete entries this process inserted (by token) and never handed to SMTP."""
    with contextlib.suppress(PyMongoError):
        await coll.delete_many(
            {
                "_id": {"$in": [d["_id"] for d in docs]},
                "token": {"$in": [d["token"] for d in docs]},
                "state": lstate.SENDING,
            }
        )


async def _declare_uncertain(coll: Collection, doc: dict[str, Any], now: datetime) -> Settled:
    # The attempt that owned it died (or lost its lease) after it may have handed the message to SMTP.
    await coll.update_one(
        {"_id": doc["_id"], "state": lstate.SENDING, "token": doc.get("token")},
        {"$set": lstate.move(lstate.SENDING, lstate.UNCERTAIN, now, error=lstate.CRASHED)},
    )
    fresh = await coll.find_one({"_id": doc["_id"]}) or doc
    return Settled(str(doc["_id"]), str(fresh.get("state")), fresh)


@dataclass(frozen=True)
class Finish:
    """How one attempt ended: the ledger state it moves to from `sending`, with the server's words."""

    attempt: Attempt
    state: str
    error: str | None = None
    smtp_code: int | None = None


async def finish_many(coll: Collection, finishes: list[Finish], now: datetime) -> list[bool]:
    """Record several attempts' outcomes in one round trip (each fenced on its token); True where recorded.

    Safe to repeat after a database error: an outcome already recorded reads back as recorded.
    """
    if not finishes:
        return []
    result = await coll.bulk_write(_finish_ops(finishes, now), ordered=False)
    if result.modified_count == len(finishes):
        return [True] * len(finishes)
    ids = [f.attempt.send_id for f in finishes]
    seen = {
        doc["_id"]: (doc.get("token"), doc.get("state"))
        async for doc in coll.find({"_id": {"$in": ids}}, projection={"token": 1, "state": 1})
    }
    return [seen.get(f.attempt.send_id) == (f.attempt.token, f.state) for f in finishes]


def _finish_ops(finishes: list[Finish], now: datetime) -> list[UpdateMany]:
    """One write per kind of outcome: attempts that end the same way (a round's sends, mostly) share one
    `update_many`, which costs a document server much less than a statement per entry.

    Each entry is still fenced on its own token: tokens are drawn at random per attempt, so an entry whose `_id`
    is among the group's and whose token is among the group's tokens holds its own attempt's token."""
    groups: dict[tuple[str, str | None, int | None], list[Attempt]] = {}
    for f in finishes:
        groups.setdefault((f.state, f.error, f.smtp_code), []).append(f.attempt)
    return [
        UpdateMany(
            {
                "_id": {"$in": [a.send_id for a in attempts]},
                "token": {"$in": [a.token for a in attempts]},
                "state": lstate.SENDING,
            },
            {"$set": lstate.move(lstate.SENDING, state, now, error=error, smtp_code=smtp_code)},
        )
        for (state, error, smtp_code), attempts in groups.items()
    ]
