"""Leads held by a dispatcher: finding due leads, claiming them with a fenced lease, releasing them.

While a dispatcher holds a lead, `progress.next_due_at` is pushed to the lease expiry, so a crashed
dispatcher's lead simply becomes due again when its lease runs out and any dispatcher picks it up. Every
write made under a lease filters on its `lease_token` (a fencing token) and checks that it matched, so a
dispatcher that lost its lease changes nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING

from app.db.store import Collection as MongoCollection


class LeaseLost(Exception):
    """This dispatcher no longer holds the lead (its lease expired and another took it); nothing was written."""

    def __init__(self, lead_id: object) -> None:
        super().__init__(f"lease on lead {lead_id} was lost: another dispatcher owns it now; nothing was written")
        self.lead_id = lead_id


@dataclass(frozen=True)
class Lease:
    """A claim on one lead, valid until `until` and only for writes that carry `token`."""

    lead_id: Any
    owner: str
    token: str
    until: datetime
    recipients: int | None = None  # how many recipients the claimed copy had (an import may add more)


async def find_due(coll: MongoCollection, now: datetime, campaign_id: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` due leads of one campaign, oldest due first (index campaign_id + progress.next_due_at).

    Completed and stopped leads carry no `next_due_at`, so equality plus one range is the whole filter: extra
    `$ne` conditions would keep some servers from using the index at all. The claim re-checks them.
    """
    flt = {"campaign_id": campaign_id, "progress.next_due_at": {"$lte": now}}
    cursor = coll.find(flt, sort=[("progress.next_due_at", ASCENDING)], limit=limit)
    return [doc async for doc in cursor]


async def earliest_due(coll: MongoCollection, campaign_ids: Collection[str]) -> datetime | None:
    """When the next lead of these campaigns becomes due (None when nothing is scheduled)."""
    if not campaign_ids:
        return None
    flt = {"campaign_id": {"$in": list(campaign_ids)}, "progress.next_due_at": {"$ne": None}}
    doc = await coll.find_one(flt, sort=[("progress.next_due_at", ASCENDING)], projection={"progress.next_due_at": 1})
    if doc is None:
        return None
    value = doc.get("progress", {}).get("next_due_at")
    return value if isinstance(value, datetime) else None


async def claim(
    coll: MongoCollection, doc: Mapping[str, Any], *, owner: str, now: datetime, lease_seconds: float
) -> Lease | None:
    """Take the lead read as `doc` if it is still due, free and unchanged since it was read.

    A compare-and-set on `progress.version` (bumped by every claim) makes sure the worker never acts on a
    stale copy: if another dispatcher processed the lead in between, the claim fails. None when we lost.
    """
    progress = doc.get("progress")
    version = progress.get("version") if isinstance(progress, Mapping) else None
    until = now + timedelta(seconds=lease_seconds)
    token = uuid.uuid4().hex
    result = await coll.update_one(
        # Stopped or completed leads that are still scheduled are claimed too, so the worker can unschedule them.
        {"_id": doc["_id"], "progress.version": version, "progress.next_due_at": {"$lte": now}},
        {
            "$set": {
                "progress.lease_owner": owner,
                "progress.lease_token": token,
                "progress.lease_until": until,
                "progress.next_due_at": until,
            },
            "$inc": {"progress.version": 1},
        },
    )
    data = doc.get("lead_data")
    count = len(data) if isinstance(data, list) else None
    return Lease(doc["_id"], owner, token, until, count) if result.modified_count == 1 else None


async def fenced_update(coll: MongoCollection, lease: Lease, update: Mapping[str, Any]) -> None:
    """Apply `update` only while `lease` is still ours; raise LeaseLost otherwise.

    It also requires the recipients the worker saw: if an import added one meanwhile, the write fails and the
    lead comes back (at lease expiry) with the newcomer, instead of being completed without it.
    """
    flt: dict[str, Any] = {"_id": lease.lead_id, "progress.lease_token": lease.token}
    if lease.recipients is not None:
        flt["lead_data"] = {"$size": lease.recipients}
    result = await coll.update_one(flt, dict(update))
    if result.matched_count != 1:
        raise LeaseLost(lease.lead_id)


async def renew(coll: MongoCollection, lease: Lease, *, now: datetime, lease_seconds: float) -> Lease:
    """Extend the lease (long work); raise LeaseLost when it is no longer ours."""
    until = now + timedelta(seconds=lease_seconds)
    await fenced_update(coll, lease, {"$set": {"progress.lease_until": until, "progress.next_due_at": until}})
    return dataclasses.replace(lease, until=until)


def release_update(
    next_due_at: datetime | None,
    extra_set: Mapping[str, Any] | None = None,
    extra_unset: Collection[str] = (),
) -> dict[str, Any]:
    """The update that gives the lead back, due again at `next_due_at` (None: nothing more to do)."""
    unset: dict[str, Any] = {"progress.lease_owner": "", "progress.lease_token": "", "progress.lease_until": ""}
    unset.update(dict.fromkeys(extra_unset, ""))
    values: dict[str, Any] = dict(extra_set or {})
    if next_due_at is None:
        unset["progress.next_due_at"] = ""
    else:
        values["progress.next_due_at"] = next_due_at
    update: dict[str, Any] = {"$unset": unset}
    if values:
        update["$set"] = values
    return update


async def release(
    coll: MongoCollection,
    lease: Lease,
    next_due_at: datetime | None,
    extra_set: Mapping[str, Any] | None = None,
    extra_unset: Collection[str] = (),
) -> None:
    """Give the lead back (fenced), due again at `next_due_at`, with `extra_set` applied in the same write."""
    await fenced_update(coll, lease, release_update(next_due_at, extra_set, extra_unset))
