"""The `job_executions` collection: one run of a job, its state and, read from its leads, its counts.

States: pending -> running -> completed | failed | cancelled (pending -> failed when the recipients cannot be
read). An execution's recipients are the leads of the campaign document that shares its `_id`, one lead per
recipient: the pipeline sends them and records each one's outcome in the lead, so the counts are one
aggregation over those leads and can never disagree with what was sent.

A pending execution is materialised by one dispatcher at a time, under a lease (`lease_owner`,
`lease_token`, `lease_until`): a dispatcher that dies while materialising leaves it to the next one.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.domain import ledger_states as lstate
from app.domain.collections import ACTIVITIES, CAMPAIGN_LEADS, CAMPAIGNS, JOB_EXECUTIONS, SENDS, SEQUENCE_STEPS
from app.store.client import Database
from app.store.documents import Collection, get_doc
from app.store.execution_counts import STATUS_PATH as STATUS_PATH
from app.store.execution_counts import Counts as Counts
from app.store.execution_counts import counts as counts
from app.store.execution_counts import execution_ref as execution_ref
from app.store.execution_counts import outcomes as outcomes
from app.store.leases import EARLIEST
from app.store.ledger import send_id

__all__ = ["JOB_EXECUTIONS"]

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
OPEN = (PENDING, RUNNING)
EXECUTION_STATES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED)
OPEN_BATCH = 100
LEAD_CHUNK = 1000
DUPLICATE_KEY = 11000


async def create(
    coll: Collection, job_id: ObjectId, scheduled_for: datetime, now: datetime, trigger: str
) -> ObjectId | None:
    """A pending execution of the job's run at `scheduled_for`; None when that run has one already."""
    doc = {
        "job_id": job_id,
        "scheduled_for": scheduled_for,
        "trigger": trigger,  # schedule or run-now
        "state": PENDING,
        "created_at": now,
    }
    try:
        result = await coll.insert_one(doc)
    except DuplicateKeyError:
        return None
    return ObjectId(result.inserted_id)


async def get(coll: Collection, execution_id: object) -> dict[str, Any]:
    """One execution by id (NotFound names it)."""
    return await get_doc(coll, "job execution", execution_id)


async def of_job(coll: Collection, job_id: ObjectId, limit: int) -> list[dict[str, Any]]:
    """The job's executions, newest scheduled first."""
    return await coll.find({"job_id": job_id}, sort=[("scheduled_for", -1), ("_id", -1)], limit=limit).to_list()


async def of_job_before(
    coll: Collection, job_id: ObjectId, before: datetime | None, limit: int
) -> list[dict[str, Any]]:
    """A page of the job's executions, newest scheduled first, scheduled before `before` (None: from the newest).

    A job has one execution per scheduled time (the job_run index is unique), so that time alone marks a page's
    end; the range is bounded on both sides on that index.
    """
    upper = {"$lt": before} if before is not None else {}
    flt = {"job_id": job_id, "scheduled_for": {"$gte": EARLIEST, **upper}}
    return await coll.find(flt, sort=[("scheduled_for", -1)], limit=limit).to_list()


async def take_pending(coll: Collection, owner: str, now: datetime, lease_seconds: float) -> dict[str, Any] | None:
    """Lease one pending execution nobody is materialising (or whose materialiser's lease ran out).

    The candidates are read by the `state` index and each is taken by `_id`: a findAndModify by state alone
    would scan the whole collection on some servers (SecantusDB), and it grows by an execution per run.
    """
    free = {"$or": [{"lease_until": {"$exists": False}}, {"lease_until": {"$lte": now}}]}
    lease = {
        "lease_owner": owner,
        "lease_token": uuid.uuid4().hex,
        "lease_until": now + timedelta(seconds=lease_seconds),
    }
    candidates = await coll.find({"state": PENDING, **free}, {"_id": 1}, sort=[("scheduled_for", 1)], limit=5).to_list()
    for candidate in candidates:
        found: dict[str, Any] | None = await coll.find_one_and_update(
            {"_id": candidate["_id"], "state": PENDING, **free}, {"$set": lease}, return_document=True
        )
        if found is not None:
            return found
    return None


async def start(coll: Collection, execution: Mapping[str, Any], total: int, now: datetime) -> bool:
    """pending -> running with its number of recipients, fenced on the materialiser's lease token."""
    result = await coll.update_one(
        {"_id": execution["_id"], "state": PENDING, "lease_token": execution.get("lease_token")},
        {
            "$set": {"state": RUNNING, "started_at": now, "counts": Counts(total=total, pending=total).as_doc()},
            "$unset": {"lease_owner": "", "lease_token": "", "lease_until": ""},
        },
    )
    return result.modified_count == 1


async def fail_pending(coll: Collection, execution: Mapping[str, Any], error: str, now: datetime) -> bool:
    """pending -> failed with the reason (its recipients could not be read), fenced on the lease token."""
    result = await coll.update_one(
        {"_id": execution["_id"], "state": PENDING, "lease_token": execution.get("lease_token")},
        {
            "$set": {"state": FAILED, "error": error, "started_at": now, "finished_at": now},
            "$unset": {"lease_owner": "", "lease_token": "", "lease_until": ""},
        },
    )
    return result.modified_count == 1


async def running(coll: Collection, limit: int = OPEN_BATCH) -> list[dict[str, Any]]:
    """Running executions, oldest first."""
    return await coll.find({"state": RUNNING}, sort=[("scheduled_for", 1)], limit=limit).to_list()


async def finish(coll: Collection, execution_id: ObjectId, state: str, counts: Counts, now: datetime) -> bool:
    """running -> completed or failed, with the final counts."""
    result = await coll.update_one(
        {"_id": execution_id, "state": RUNNING},
        {"$set": {"state": state, "counts": counts.as_doc(), "finished_at": now}},
    )
    return result.modified_count == 1


async def reopen(coll: Collection, execution_id: ObjectId, counts: Counts) -> bool:
    """completed or failed -> running again (its dead letters were requeued)."""
    result = await coll.update_one(
        {"_id": execution_id, "state": {"$in": [COMPLETED, FAILED, RUNNING]}},
        {"$set": {"state": RUNNING, "counts": counts.as_doc()}, "$unset": {"finished_at": ""}},
    )
    return result.modified_count == 1


async def cancel_open(coll: Collection, job_id: ObjectId, now: datetime) -> list[ObjectId]:
    """Cancel the job's pending and running executions; the ids of those cancelled."""
    ids = [doc["_id"] async for doc in coll.find({"job_id": job_id, "state": {"$in": list(OPEN)}}, {"_id": 1})]
    if ids:
        await coll.update_many(
            {"_id": {"$in": ids}, "state": {"$in": list(OPEN)}},
            {"$set": {"state": CANCELLED, "finished_at": now}},
        )
    return ids


async def open_of_job(coll: Collection, job_id: ObjectId) -> list[ObjectId]:
    """The ids of the job's running executions (those whose campaigns a pause or resume changes)."""
    return [doc["_id"] async for doc in coll.find({"job_id": job_id, "state": RUNNING}, {"_id": 1})]


async def insert_leads(leads: Collection, docs: list[dict[str, Any]]) -> None:
    """Insert an execution's leads; those already there (a materialiser that died midway) are left as they are.

    The leads' unique index on (campaign_id, recipient address) refuses a second copy of a recipient.
    """
    for start in range(0, len(docs), LEAD_CHUNK):
        try:
            await leads.insert_many(docs[start : start + LEAD_CHUNK], ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise


async def count_leads(leads: Collection, execution_id: object) -> int:
    """How many recipients the execution has."""
    return await leads.count_documents(execution_ref(execution_id))


async def unfinished(leads: Collection, execution_id: object) -> int:
    """The execution's leads still to be sent (neither completed nor stopped)."""
    flt = {**execution_ref(execution_id), "progress.completed": {"$ne": True}, "progress.stopped": {"$ne": True}}
    return await leads.count_documents(flt)


async def requeue_dead(db: Database, execution_id: object, now: datetime) -> list[dict[str, Any]]:
    """Make the execution's dead letters due again, each with a fresh retry budget; the requeued recipients.

    A dead letter's ledger entry is `failed`: the server refused the message, so it was not delivered and the
    entry can go (the next attempt starts a new one under the same key and Message-ID). The entry goes first:
    a crash before the lead is reset leaves it a dead letter, to requeue again. Each requeue is written to
    `activities` with the error it ended with.
    """
    leads, sends = db[CAMPAIGN_LEADS], db[SENDS]
    flt = {
        **execution_ref(execution_id),
        f"{STATUS_PATH}.status": "failed",
        "lead_data.0.status": "failed",
        "progress.completed": True,
    }
    dead = await leads.find(flt, {"lead_data": 1, STATUS_PATH: 1, "campaign_id": 1}).to_list()
    if not dead:
        return []
    await sends.delete_many({"_id": {"$in": [send_id(d["_id"], 1, 0) for d in dead]}, "state": lstate.FAILED})
    await leads.update_many(
        {"_id": {"$in": [d["_id"] for d in dead]}, **flt},
        {
            "$set": {"progress.completed": False, "progress.next_due_at": now, "lead_data.0.status": "not_contacted"},
            "$unset": {STATUS_PATH: "", "progress.retries": "", "progress.completed_at": ""},
        },
    )
    requeued = [_requeued(d, now) for d in dead]
    await db[ACTIVITIES].insert_many([dict(r) for r in requeued])
    return requeued


def _requeued(lead: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    entry = lead["progress"]["processed_recipients"]["step_1_recipient_0"]
    return {
        "campaign_id": lead["campaign_id"],
        "lead_id": lead["_id"],
        "step_order": 1,
        "recipient_index": 0,
        "email": lead["lead_data"][0].get("email"),
        "type": "requeued",
        "error": entry.get("error"),
        "created_at": now,
    }


async def open_campaign(db: Database, campaign: Mapping[str, Any], sequence_step: Mapping[str, Any]) -> None:
    """Write an execution's campaign (as a draft) and its job's one-step sequence, unless they are there."""
    await db[CAMPAIGNS].update_one({"_id": campaign["_id"]}, {"$setOnInsert": dict(campaign)}, upsert=True)
    key = {"sequence_id": sequence_step["sequence_id"], "step_order": sequence_step["step_order"]}
    with contextlib.suppress(DuplicateKeyError):  # another runner wrote it first
        await db[SEQUENCE_STEPS].update_one(key, {"$setOnInsert": dict(sequence_step)}, upsert=True)


async def set_campaigns(db: Database, ids: list[ObjectId], status: str, only_from: tuple[str, ...]) -> None:
    """Move the campaigns of these executions to `status` from one of `only_from`."""
    if ids:
        await db[CAMPAIGNS].update_many(
            {"_id": {"$in": ids}, "status": {"$in": list(only_from)}}, {"$set": {"status": status}}
        )


async def held_reason(db: Database, execution_id: ObjectId) -> str | None:
    """Why a running execution's sends are held: its campaign was paused by the pipeline (a template error, say),
    with that reason; None when it is not paused or was paused with its job."""
    found = await db[CAMPAIGNS].find_one({"_id": execution_id, "status": "paused"}, {"paused_reason": 1})
    reason = found.get("paused_reason") if found else None
    return str(reason) if reason else None
