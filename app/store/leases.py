"""Leads held by a dispatcher: finding due leads, claiming them with a fenced lease, releasing them.

While a dispatcher holds a lead, `progress.next_due_at` is pushed to the lease expiry, so a crashed
dispatcher's lead simply becomes due again when its lease runs out and any dispatcher picks it up. Every
write made under a lease filters on its `lease_token` (a fencing token) and checks that it matched, so a
dispatcher that lost its lease changes nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, UpdateOne

from app.logging import get_logger
from app.store.documents import Collection as MongoCollection


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


# The oldest date BSON can carry: a range needs a lower bound too, or some servers (SecantusDB) walk every
# index entry below `now`, including those of leads without a due time, before they apply the limit.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)


DUE_FIELDS = {"_id": 1, "progress.next_due_at": 1}


def due_range(now: datetime) -> dict[str, Any]:
    """The `progress.next_due_at` condition of a lead that is due at `now` (bounded on both sides)."""
    return {"$gte": EARLIEST, "$lte": now}


async def find_due(
    coll: MongoCollection,
    now: datetime,
    campaign_id: str,
    limit: int,
    projection: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Up to `limit` due leads of one campaign, oldest due first (index campaign_id + progress.next_due_at).

    Completed and stopped leads carry no `next_due_at`, so equality plus one bounded range is the whole filter:
    extra `$ne` conditions would keep some servers from using the index at all. The claim re-checks them.
    """
    return await _due(coll, campaign_id, due_range(now), limit, projection)


@dataclass
class DueWindow:
    """Where one campaign's oldest due leads are, so that most due queries read a narrow index range.

    A due query bounded only by `now` costs, on servers that read the whole range before applying the limit
    (SecantusDB), time in proportion to every due lead of the campaign. This keeps the due time of the oldest
    lead it last found (`lo`) and how wide a range held a batch (`span`), and asks for
    [lo - slack, min(now, lo + span)] instead, widening when that holds too few. The whole range is read again
    when the window comes back empty and every `full_every` scans, so a lead written with an older due time
    (another dispatcher's clock, an operator's reset) waits at most that long. On MongoDB both are the same
    bounded index scan that stops at the limit.
    """

    lo: datetime | None = None
    span: timedelta = timedelta(minutes=1)
    scans: int = 0
    slack: timedelta = timedelta(seconds=5)
    full_every: int = 25
    widen_times: int = 3

    async def find(self, coll: MongoCollection, now: datetime, campaign_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` due leads (`_id` and due time), oldest due first, as `find_due` would return them."""
        self.scans += 1
        if self.lo is not None and self.scans % self.full_every != 0:
            span = self.span
            for _ in range(self.widen_times + 1):
                upper = min(now, self.lo + span)
                found = await _due(coll, campaign_id, {"$gte": self.lo - self.slack, "$lte": upper}, limit)
                if len(found) >= limit or (found and upper >= now):
                    return self._moved(found, limit, span)
                if upper >= now:
                    break
                span *= 4
        found = await _due(coll, campaign_id, due_range(now), limit)
        return self._moved(found, limit, self.span)

    def _moved(self, found: list[dict[str, Any]], limit: int, span: timedelta) -> list[dict[str, Any]]:
        times = [t for t in (_due_time(doc) for doc in found) if t is not None]
        self.lo = times[0] if times else None
        # A full batch tells how wide a range holds one: start there next time (a little wider).
        self.span = max(timedelta(seconds=1), 2 * (times[-1] - times[0])) if len(times) >= limit else span
        return found


async def _due(
    coll: MongoCollection,
    campaign_id: str,
    due: Mapping[str, Any],
    limit: int,
    projection: Mapping[str, Any] | None = DUE_FIELDS,
) -> list[dict[str, Any]]:
    """Leads of one campaign with `next_due_at` in the range `due`, oldest due first (None: whole documents)."""
    cursor = coll.find(
        {"campaign_id": campaign_id, "progress.next_due_at": dict(due)},
        projection=projection,
        sort=[("progress.next_due_at", ASCENDING)],
        limit=limit,
    )
    return [doc async for doc in cursor]


def _due_time(doc: Mapping[str, Any]) -> datetime | None:
    progress = doc.get("progress")
    value = progress.get("next_due_at") if isinstance(progress, Mapping) else None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


async def earliest_due(coll: MongoCollection, campaign_ids: Collection[str], horizon: datetime) -> datetime | None:
    """When the next lead of these campaigns becomes due, if that is before `horizon` (else None).

    One bounded index range per campaign: the dispatcher never sleeps past its poll interval anyway, so
    nothing scheduled later needs reading.
    """
    times = []
    for campaign_id in campaign_ids:
        times += [_due_time(doc) for doc in await _due(coll, campaign_id, due_range(horizon), 1)]
    return min((t for t in times if t is not None), default=None)


async def claim_many(
    coll: MongoCollection, lead_ids: Collection[Any], *, owner: str, now: datetime, lease_seconds: float
) -> list[tuple[dict[str, Any], Lease]]:
    """Take those of `lead_ids` that are still due and free, in two round trips, and read them as claimed.

    One update takes them all under one fencing token (each lead is still fenced on its own: another claim
    replaces the token); the read that follows returns the documents as they are now ours, so the worker never
    acts on a copy read before the claim. Leads another dispatcher took first are simply not returned.
    """
    if not lead_ids:
        return []
    until = now + timedelta(seconds=lease_seconds)
    token = uuid.uuid4().hex
    ids = list(lead_ids)
    update = _claim_update(owner, token, until)
    # Not find_one_and_update for a single lead: SecantusDB answers findAndModify some 20x slower than these two.
    docs: list[dict[str, Any]] = []
    result = await coll.update_many({"_id": {"$in": ids}, "progress.next_due_at": {"$lte": now}}, update)
    if result.modified_count:
        docs = [doc async for doc in coll.find({"_id": {"$in": ids}, "progress.lease_token": token})]
    if len(docs) < result.modified_count:
        # Taken over before they were read back (this process stalled past the lease): said, never acted on.
        get_logger(owner=owner).warning(
            "worker.lease_lost",
            reason="claimed leads were taken by another dispatcher before they were read back",
            leads=result.modified_count - len(docs),
        )
    claimed = []
    for doc in docs:
        data = doc.get("lead_data")
        count = len(data) if isinstance(data, list) else None
        claimed.append((doc, Lease(doc["_id"], owner, token, until, count)))
    return claimed


def _claim_update(owner: str, token: str, until: datetime) -> dict[str, Any]:
    """Hold the lead until `until` under `token`; it becomes due again then if the holder vanishes."""
    return {
        "$set": {
            "progress.lease_owner": owner,
            "progress.lease_token": token,
            "progress.lease_until": until,
            "progress.next_due_at": until,
        },
        "$inc": {"progress.version": 1},
    }


def _fence(lease: Lease) -> dict[str, Any]:
    flt: dict[str, Any] = {"_id": lease.lead_id, "progress.lease_token": lease.token}
    if lease.recipients is not None:
        flt["lead_data"] = {"$size": lease.recipients}
    return flt


async def fenced_update(coll: MongoCollection, lease: Lease, update: Mapping[str, Any]) -> None:
    """Apply `update` only while `lease` is still ours; raise LeaseLost otherwise.

    It also requires the recipients the worker saw: if an import added one meanwhile, the write fails and the
    lead comes back (at lease expiry) with the newcomer, instead of being completed without it.
    """
    result = await coll.update_one(_fence(lease), dict(update))
    if result.matched_count != 1:
        raise LeaseLost(lease.lead_id)


async def release_many(coll: MongoCollection, releases: Sequence[tuple[Lease, Mapping[str, Any]]]) -> list[bool]:
    """Apply several fenced release updates (from `release_update`) in one round trip; True where it landed.

    Each update also records `progress.released_by` (the lease token), so that when fewer than all matched,
    one read tells which did: a lead whose lease was lost keeps another token there, or ours unreleased.
    """
    if not releases:
        return []
    ops = []
    for lease, update in releases:
        marked = {key: dict(value) for key, value in update.items()}
        marked.setdefault("$set", {})["progress.released_by"] = lease.token
        ops.append(UpdateOne(_fence(lease), marked))
    result = await coll.bulk_write(ops, ordered=False)
    if result.matched_count == len(ops):
        return [True] * len(ops)
    ids = [lease.lead_id for lease, _ in releases]
    seen: dict[Any, Mapping[str, Any]] = {}
    async for doc in coll.find(
        {"_id": {"$in": ids}}, projection={"progress.released_by": 1, "progress.lease_token": 1}
    ):
        progress = doc.get("progress")
        seen[doc["_id"]] = progress if isinstance(progress, Mapping) else {}
    landed = []
    for lease, _ in releases:
        progress = seen.get(lease.lead_id, {})
        landed.append(progress.get("released_by") == lease.token and progress.get("lease_token") != lease.token)
    return landed


async def renew(coll: MongoCollection, lease: Lease, *, now: datetime, lease_seconds: float) -> Lease:
    """Extend the lease (long work); raise LeaseLost when it is no longer ours."""
    until = now + timedelta(seconds=lease_seconds)
    await fenced_update(coll, lease, {"$set": {"progress.lease_until": until, "progress.next_due_at": until}})
    return dataclasses.replace(lease, until=until)


async def renew_many(
    coll: MongoCollection, held: Sequence[Lease], *, now: datetime, lease_seconds: float
) -> list[Lease | None]:
    """Extend several leases in one round trip (a batch still at work); each renewed lease, None where it was lost.

    When fewer than all matched, one read of the fenced leads tells which are still ours.
    """
    if not held:
        return []
    until = now + timedelta(seconds=lease_seconds)
    update = {"$set": {"progress.lease_until": until, "progress.next_due_at": until}}
    result = await coll.bulk_write([UpdateOne(_fence(lease), update) for lease in held], ordered=False)
    if result.matched_count == len(held):
        return [dataclasses.replace(lease, until=until) for lease in held]
    # Still ours: the token and the recipients the batch saw (an import that added one makes the lead lost too).
    flt = {"_id": {"$in": [lease.lead_id for lease in held]}, "$or": [_fence(lease) for lease in held]}
    ours = {doc["_id"] async for doc in coll.find(flt, projection={"_id": 1})}
    return [dataclasses.replace(lease, until=until) if lease.lead_id in ours else None for lease in held]


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
    """Give one lead back (a batch of one of `release_many`); raise LeaseLost when it is no longer ours."""
    landed = await release_many(coll, [(lease, release_update(next_due_at, extra_set, extra_unset))])
    if not landed[0]:
        raise LeaseLost(lease.lead_id)
