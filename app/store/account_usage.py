"""The arbiter's `account_usage` writes: sends counted under their limits, and the open reservation records.

A send is counted by a conditional upsert whose filter holds the limits, daily and hourly, and the same upsert
records the reservation as open (`open.<key>`: owner, campaign, time, hour, `flown`; see `app/store/reclaim.py`).
Just before its SMTP exchange the holder marks it in flight; commit and rollback close the record, a rollback
also giving the count back, the hour's included. Documents are keyed `_id = "<account_id>:<day>"` (`usage_key`),
the day being the account's own (its `timezone`); each holds the day's hours as `hours.<HH>` (all campaigns) and
`hours_campaigns.<HH>.<campaign id>`, counted by the same upsert whether or not an hourly limit is set, so that a
limit set mid-hour holds at once. Lookups by `_id` stay fast on servers where queries on other fields scan the
whole collection, and that collection grows every day.
"""

from __future__ import annotations

import asyncio
import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.domain.limits import AccountLimits, account_day, account_hour
from app.domain.models import EmailAccount
from app.logging import get_logger
from app.store.documents import Collection
from app.store.reclaim import open_entry, open_path

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Slot:
    """Where a send is counted: the account's own day ("YYYY-MM-DD") and clock hour ("HH") in its time zone."""

    day: str
    hour: str

    @classmethod
    def at(cls, now: datetime, tz: str) -> Slot:
        return _slot_at(now, tz)


# A batch plans every candidate account at one `now`, several times over: convert each (now, zone) once.
@functools.lru_cache(maxsize=1024)
def _slot_at(now: datetime, tz: str) -> Slot:
    return Slot(account_day(now, tz), account_hour(now, tz))


@dataclass(frozen=True)
class Reservation:
    """The right to send one email from `account` for `campaign_id`, counted against `day`'s limits and, when
    `hour` is set, that hour's."""

    token: str
    account: EmailAccount
    campaign_id: str
    day: str
    reserved_at: datetime
    limits: AccountLimits
    hour: str | None = None


@dataclass(frozen=True)
class Block:
    """One account's share of a batch reservation: where it is counted, its limits and one token per send."""

    account_id: str
    slot: Slot
    limits: AccountLimits
    tokens: list[str]


def usage_key(account_id: str, day: str) -> str:
    """The `_id` of an account's `account_usage` document for one of its days."""
    return f"{account_id}:{day}"


def hour_paths(campaign_id: str, hour: str) -> tuple[str, str]:
    """The hourly counters of a send: `hours.<HH>` (all campaigns) and `hours_campaigns.<HH>.<campaign id>`."""
    return f"hours.{hour}", f"hours_campaigns.{hour}.{usage_path(campaign_id).partition('.')[2]}"


def limit_filter(limits: AccountLimits, campaign_id: str, hour: str, k: int) -> dict[str, Any]:
    """The part of a counting upsert's filter that leaves room for `k` more sends under every limit set; a
    counter not yet in the document reads as 0."""
    day_path, (hour_path, campaign_hour_path) = usage_path(campaign_id), hour_paths(campaign_id, hour)
    caps = (
        ("sent", limits.max_daily_sends),
        (day_path, limits.campaign_daily_limit),
        (hour_path, limits.max_hourly_sends),
        (campaign_hour_path, limits.campaign_hourly_limit),
    )
    return {path: {"$not": {"$gt": cap - k}} for path, cap in caps if cap is not None}


def count_op(block: Block, campaign_id: str, entries: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (filter, update) of the upsert counting one account's share: the filter leaves room for all of it under
    every limit; the update counts it in the day's and the hour's counters and sets `entries` (the open
    reservation records by field path)."""
    k, slot = len(block.tokens), block.slot
    hour_path, campaign_hour_path = hour_paths(campaign_id, slot.hour)
    flt = {"_id": usage_key(block.account_id, slot.day), **limit_filter(block.limits, campaign_id, slot.hour, k)}
    update = {
        "$inc": {"sent": k, usage_path(campaign_id): k, hour_path: k, campaign_hour_path: k},
        "$set": entries,
        "$setOnInsert": {"account_id": block.account_id, "day": slot.day, "committed": 0},
    }
    return flt, update


def usage_path(campaign_id: str) -> str:
    """The `account_usage.campaigns.<id>` field of a campaign; refuses ids that would break the dotted path."""
    if not campaign_id or "." in campaign_id or campaign_id.startswith("$") or "\0" in campaign_id:
        raise ValueError(
            f"campaign id {campaign_id!r} cannot key account_usage.campaigns: "
            "a campaign _id must not be empty, contain '.', or start with '$'"
        )
    return f"campaigns.{campaign_id}"


def reservation_logger(reservation: Reservation, owner: str) -> Any:
    """A logger bound to one reservation of `owner`."""
    return get_logger(
        account_id=reservation.account.id,
        campaign_id=reservation.campaign_id,
        owner=owner,
        token=reservation.token,
    )


class AccountUsage:
    """The `account_usage` writes of one dispatcher (`owner`)."""

    def __init__(self, usage: Collection, *, owner: str, marks_in_flight: bool) -> None:
        self._usage = usage
        self._owner = owner
        self._marks_in_flight = marks_in_flight

    def _open_entry(self, campaign_id: str, now: datetime, hour: str) -> dict[str, Any]:
        return {**open_entry(self._owner, campaign_id, now, flown=not self._marks_in_flight), "hour": hour}

    async def count_send(
        self, account_id: str, slot: Slot, campaign_id: str, limits: AccountLimits, token: str, now: datetime
    ) -> bool:
        """Count one send against its day's and hour's limits and record it as open; False when a limit is already
        reached.

        The limits sit in the upsert's filter: when the day's document exists but does not match, the upsert
        tries to insert a second one and the unique `_id` refuses it.
        """
        flt, update = self._count(Block(account_id, slot, limits, [token]), campaign_id, now)
        # The first refusal may come from a racing first insert of the day; by the second the document exists.
        for _ in range(2):
            try:
                await self._usage.update_one(flt, update, upsert=True)
            except DuplicateKeyError:
                continue
            return True
        return False

    async def count_blocks(self, blocks: list[Block], campaign_id: str, now: datetime) -> list[str]:
        """Count each account's share of sends, and record each of its reservations as open, with one conditional
        upsert each, in one round trip; return the accounts whose share was counted (a refused one had reached a
        limit meanwhile)."""
        if not blocks:  # every window was taken by a racing dispatcher: nothing to count
            return []
        ops = [UpdateOne(*self._count(block, campaign_id, now), upsert=True) for block in blocks]
        refused: set[int] = set()
        try:
            await self._usage.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            refused = {int(e["index"]) for e in errors}
        return [block.account_id for i, block in enumerate(blocks) if i not in refused]

    def _count(self, block: Block, campaign_id: str, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        """The upsert counting one account's share and recording each of its reservations as open."""
        entries = {open_path(t): self._open_entry(campaign_id, now, block.slot.hour) for t in block.tokens}
        return count_op(block, campaign_id, entries)

    async def uncount(self, reservation: Reservation) -> bool:
        """Give one counted send back (never below zero) and close its record; False when there was nothing to
        give back (already returned)."""
        result = await self._usage.update_one(*_give_back(reservation))
        return result.modified_count == 1

    async def give_back(self, reservations: list[Reservation]) -> int:
        """Give back the counts of reservations whose emails were certainly not sent, their hours' included, in
        one write; return how many were given back (one already returned is not given back twice)."""
        ops = [UpdateOne(*_give_back(r)) for r in reservations]
        return (await self._usage.bulk_write(ops, ordered=False)).modified_count

    async def commit(self, reservation: Reservation) -> None:
        """Record one reservation's send as committed and close its record."""
        await self._usage.update_one(
            {"_id": usage_key(reservation.account.id, reservation.day)},
            {"$inc": {"committed": 1}, "$unset": _open_fields([reservation])},
        )

    async def commit_many(self, reservations: list[Reservation]) -> None:
        """`commit` for several reservations, in one write."""
        await self._usage.bulk_write(
            [
                UpdateOne({"_id": key}, {"$inc": {"committed": len(group)}, "$unset": _open_fields(group)})
                for key, group in _by_key(reservations).items()
            ],
            ordered=False,
        )

    async def mark_in_flight(self, reservations: list[Reservation]) -> list[bool]:
        """Mark reservations as handed to SMTP, just before their SMTP exchange; one round trip for all.

        False for a reservation that was returned meanwhile (its holder was taken for gone): its email must not be
        sent, and the reservation must not be rolled back (it already was) nor committed. A True one keeps its
        count and the long hold of its wait window until commit or rollback, whatever happens to its holder.
        """
        if not reservations:
            return []
        # A reclaim returns all of a gone holder's unflown reservations in a document at once, so the tokens of
        # one document usually land or fail together; one at a time only after a reclaim took some of them.
        by_key = _by_key(reservations)
        ops = [UpdateOne(_flight_filter(key, group), _flight_update(group)) for key, group in by_key.items()]
        result = await self._usage.bulk_write(ops, ordered=False)
        if result.matched_count == len(ops):
            return [True] * len(reservations)
        landed = await asyncio.gather(
            *(
                self._usage.update_one(_flight_filter(usage_key(r.account.id, r.day), [r]), _flight_update([r]))
                for r in reservations
            )
        )
        # Re-marking an entry already in flight matches without modifying it; a missing entry matches nothing.
        flags = [res.matched_count == 1 for res in landed]
        for reservation, ok in zip(reservations, flags, strict=True):
            if not ok:
                reservation_logger(reservation, self._owner).warning(
                    "arbiter.returned_before_send", reason="the reservation was reclaimed; the email is not sent"
                )
        return flags

    async def read(self, account_id: str, day: str) -> dict[str, Any]:
        """An account's counters for one of its days ("YYYY-MM-DD"); zeros when it has not sent that day."""
        if not _DAY.match(day):
            raise ValueError(f"day={day!r} must be a date written YYYY-MM-DD (the account's own day)")
        doc = await self._usage.find_one({"_id": usage_key(account_id, day)}, projection={"_id": 0})
        return {"account_id": account_id, "day": day, "sent": 0, "committed": 0, "campaigns": {}, **(doc or {})}


def _by_key(reservations: list[Reservation]) -> dict[str, list[Reservation]]:
    """Reservations grouped by their `account_usage` document."""
    by_key: dict[str, list[Reservation]] = {}
    for r in reservations:
        by_key.setdefault(usage_key(r.account.id, r.day), []).append(r)
    return by_key


def _give_back(r: Reservation) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (filter, update) returning one open reservation's counts (its day's, and its hour's when it was
    counted in one) and closing its record; it matches nothing once the record is gone (committed, rolled back or
    reclaimed), and never takes a counter below zero."""
    paths = ["sent", usage_path(r.campaign_id), *(hour_paths(r.campaign_id, r.hour) if r.hour else ())]
    flt = {"_id": usage_key(r.account.id, r.day), open_path(r.token): {"$exists": True}}
    flt.update({p: {"$gt": 0} for p in paths})
    return flt, {"$inc": {p: -1 for p in paths}, "$unset": {open_path(r.token): ""}}


def _flight_filter(key: str, group: list[Reservation]) -> dict[str, Any]:
    return {"_id": key, **{open_path(r.token): {"$exists": True} for r in group}}


def _flight_update(group: list[Reservation]) -> dict[str, Any]:
    return {"$set": {f"{open_path(r.token)}.flown": True for r in group}}


def _open_fields(group: list[Reservation]) -> dict[str, str]:
    """The `$unset` of the open records of `group`."""
    return {open_path(r.token): "" for r in group}
