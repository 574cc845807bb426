"""The `jobs` collection: scheduled and recurring sends, and the atomic claim of a job's next run.

A job is due when it is active and its `next_run_at` has come. Several dispatchers may see it due at once:
each creates the execution for the run it found (`job_executions` is unique on the job and the run's
scheduled time, so only one lands) and then moves `next_run_at` on with a write that matches the value it
read, so the schedule advances exactly once. The execution comes first: a crash between the two writes
leaves the job due, and the next look finds the execution already there instead of losing the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId

from app.domain.collections import JOBS
from app.store.documents import Collection, get_doc, id_filter
from app.store.leases import EARLIEST

JOB_STATUSES = ("active", "paused", "cancelled", "completed")
# Which statuses each operator action starts from: a cancelled or completed job stays so.
PAUSABLE = ("active",)
RESUMABLE = ("paused",)
CANCELLABLE = ("active", "paused")
DUE_BATCH = 50

__all__ = ["JOBS", "JOB_STATUSES"]


async def insert(coll: Collection, doc: Mapping[str, Any]) -> ObjectId:
    """Store a new job; its `_id`."""
    result = await coll.insert_one(dict(doc))
    return ObjectId(result.inserted_id)


async def get(coll: Collection, job_id: object) -> dict[str, Any]:
    """One job by id (NotFound names it)."""
    return await get_doc(coll, "job", job_id)


async def newest(coll: Collection, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` jobs, newest first."""
    return await coll.find({}, sort=[("created_at", -1), ("_id", -1)], limit=limit).to_list()


async def due(coll: Collection, now: datetime, limit: int = DUE_BATCH) -> list[dict[str, Any]]:
    """Active jobs whose next run has come, earliest first (a range bounded on both sides)."""
    flt = {"next_run_at": {"$gte": EARLIEST, "$lte": now}, "status": "active"}
    return await coll.find(flt, sort=[("next_run_at", 1)], limit=limit).to_list()


async def advance(coll: Collection, job: Mapping[str, Any], next_run_at: datetime | None, now: datetime) -> bool:
    """Move the job's `next_run_at` from the value read in `job` to `next_run_at` (None: no further run).

    True for the one caller whose write matched: the others read a value that has moved on meanwhile.
    """
    update: dict[str, Any] = {"$set": {"last_run_at": now, "updated_at": now}}
    if next_run_at is None:
        update["$unset"] = {"next_run_at": ""}
    else:
        update["$set"]["next_run_at"] = next_run_at
    flt = {"_id": job["_id"], "status": "active", "next_run_at": job.get("next_run_at")}
    result = await coll.update_one(flt, update)
    return result.modified_count == 1


async def set_status(
    coll: Collection, job_id: object, status: str, allowed_from: tuple[str, ...], now: datetime
) -> dict[str, Any] | None:
    """Move a job to `status` when it is in one of `allowed_from`; the job as it was before, or None when it
    was not in such a status (the caller reads it again to say why)."""
    flt = {**id_filter(job_id), "status": {"$in": list(allowed_from)}}
    found: dict[str, Any] | None = await coll.find_one_and_update(flt, {"$set": {"status": status, "updated_at": now}})
    return found


async def complete(coll: Collection, job_id: object, now: datetime) -> None:
    """A one-off job whose execution ended is completed (a paused or cancelled one keeps its status)."""
    await coll.update_one(
        {**id_filter(job_id), "status": "active", "next_run_at": {"$exists": False}},
        {"$set": {"status": "completed", "updated_at": now}},
    )


async def stored_recipients(leads: Collection, filters: tuple[tuple[str, str], ...], limit: int) -> list[Any]:
    """The recipients already in campaigns (not those of jobs) whose fields equal every (key, value).

    The database narrows by exact field values (an address compared lower-case, as it is stored); the caller
    checks each recipient again with the same rule it uses for a file (`job_recipients.select`).
    """
    wanted = {key: value.lower() if key == "email" else value for key, value in filters}
    flt = {"job_id": {"$exists": False}, "lead_data": {"$elemMatch": wanted}}
    found: list[Any] = []
    async for doc in leads.find(flt, {"lead_data": 1}, limit=limit):
        for entry in doc.get("lead_data") or []:
            if isinstance(entry, dict) and isinstance(entry.get("email"), str):
                found.append(entry)
    return found


async def exists(coll: Collection, doc_id: object) -> bool:
    """True when the collection has a document with this id (in either stored form)."""
    return await coll.find_one(id_filter(doc_id), {"_id": 1}) is not None


async def settings_of(coll: Collection, campaign_id: object) -> Mapping[str, Any] | None:
    """A campaign's `settings` (an empty mapping when it has none); None when there is no such campaign."""
    found = await coll.find_one(id_filter(campaign_id), {"settings": 1})
    if found is None:
        return None
    settings = found.get("settings")
    return settings if isinstance(settings, Mapping) else {}


async def forget_next_run(coll: Collection, job_id: ObjectId) -> None:
    """A cancelled job runs no more."""
    await coll.update_one({"_id": job_id}, {"$unset": {"next_run_at": ""}})


async def find(coll: Collection, job_id: ObjectId) -> dict[str, Any] | None:
    """One job by its `_id`, or None (deleted)."""
    found: dict[str, Any] | None = await coll.find_one({"_id": job_id})
    return found
