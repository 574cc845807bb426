"""Per-domain throttles: slots taken atomically in `domain_usage`, one bulk write per batch, given back unused.

Each (bucket, UTC day) has one usage document: `count` (sends that day) and `hours.HH` (sends in that hour).
A slot is one conditional upsert that adds 1 to both only while the hour (and the day, when the row has
`max_per_day`) has room; when it has none, the upsert's insert collides with the existing document on the
unique (bucket, day) index and the slot is refused. All the batch's slots go in one unordered bulk write,
so a full domain defers its own recipients and nobody else's; refused slots are tried once more, since the
first sends of a day racing in two processes may both try to insert.

A slot whose message was not handed to SMTP is given back (`give_back`). A slot taken before a crash or a
database error in the middle of a batch stays counted: the limit then errs toward fewer sends.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from app.domain.domain_limits import (
    Bucket,
    DomainLimit,
    bucket_for,
    mx_provider,
    needs_mx,
    next_slot,
    usage_day,
    usage_hour,
)
from app.domain.models import InvalidDocument
from app.logging import get_logger
from app.store import schema
from app.store.client import Database

RELOAD_SECONDS = 5.0  # `domain_limits` is read again at most this often
DUPLICATE_KEY = 11000

MxHosts = Callable[[Iterable[str]], Awaitable[Mapping[str, tuple[str, ...]]]]


@dataclass(frozen=True)
class DomainSlot:
    """One send counted in `bucket` on `day` at `hour` (UTC): what `give_back` returns."""

    bucket: str
    day: str
    hour: str


@dataclass(frozen=True)
class SlotDecision:
    """For one recipient: the slot taken, or when to try again (both None: no limit applies)."""

    slot: DomainSlot | None = None
    wait_until: datetime | None = None
    reason: str = ""


class DomainSlots:
    """Takes and returns per-domain slots; `domain_limits` is cached so a batch without limits costs nothing."""

    def __init__(
        self,
        db: Database,
        *,
        default_limit: int | None = None,
        mx_hosts: MxHosts | None = None,
        reload_seconds: float = RELOAD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rows = db[schema.DOMAIN_LIMITS]
        self.usage = db[schema.DOMAIN_USAGE]
        self.default_limit = default_limit
        self.mx_hosts = mx_hosts
        self.reload_seconds = reload_seconds
        self._clock = clock
        self._limits: dict[str, DomainLimit] = {}
        self._loaded_at: float | None = None

    async def limits(self) -> dict[str, DomainLimit]:
        """The `domain_limits` rows by domain, read again every `reload_seconds`; malformed rows are logged."""
        tick = self._clock()
        if self._loaded_at is not None and tick - self._loaded_at < self.reload_seconds:
            return self._limits
        found: dict[str, DomainLimit] = {}
        async for doc in self.rows.find({}):
            try:
                limit = DomainLimit.from_doc(doc)
            except InvalidDocument as exc:
                get_logger().warning("store.invalid_document", collection=exc.collection, reason=str(exc))
                continue
            found[limit.domain] = limit
        self._limits, self._loaded_at = found, tick
        return found

    async def reserve(self, domains: Sequence[str], now: datetime) -> list[SlotDecision]:
        """A decision per recipient domain (in order), all slots in one bulk write."""
        limits = await self.limits()
        if not limits and self.default_limit is None:
            return [SlotDecision() for _ in domains]
        providers = await self._providers(domains, limits)
        buckets = [bucket_for(d, limits, self.default_limit, providers) for d in domains]
        day, hour = usage_day(now), usage_hour(now)
        wanted = [(i, b) for i, b in enumerate(buckets) if b is not None and _has_room_at_all(b.limit)]
        refused = await self._take([b for _, b in wanted], day, hour)
        if refused:
            again = await self._take([wanted[j][1] for j in refused], day, hour)
            refused = [refused[j] for j in again]
        out: list[SlotDecision] = []
        granted = {i for j, (i, _) in enumerate(wanted) if j not in set(refused)}
        for i, bucket in enumerate(buckets):
            if bucket is None:
                out.append(SlotDecision())
            elif i in granted:
                out.append(SlotDecision(DomainSlot(bucket.key, day, hour)))
            else:
                out.append(SlotDecision(wait_until=next_slot(now), reason=_full(bucket)))
        return out

    async def give_back(self, slots: Sequence[DomainSlot]) -> None:
        """Return slots whose messages were not handed to SMTP, in one write."""
        if not slots:
            return
        writes = [
            UpdateOne({"bucket": s.bucket, "day": s.day}, {"$inc": {"count": -1, f"hours.{s.hour}": -1}}) for s in slots
        ]
        await self.usage.bulk_write(writes, ordered=False)

    async def _providers(self, domains: Sequence[str], limits: Mapping[str, DomainLimit]) -> dict[str, str | None]:
        if self.mx_hosts is None or not needs_mx(limits):
            return {}
        asked = set(domains) | {limit.domain for limit in limits.values() if limit.group_by_mx}
        hosts = await self.mx_hosts(asked)
        return {domain: mx_provider(found) for domain, found in hosts.items()}

    async def _take(self, buckets: Sequence[Bucket], day: str, hour: str) -> list[int]:
        """One unordered bulk write of conditional upserts; the positions refused (their bucket was full)."""
        if not buckets:
            return []
        writes = [_slot_write(b, day, hour) for b in buckets]
        try:
            await self.usage.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return sorted(int(e["index"]) for e in errors)
        return []


def _has_room_at_all(limit: DomainLimit) -> bool:
    # A limit of 0 takes no slot: the upsert would insert a first counter without looking at its condition.
    return limit.max_per_hour > 0 and (limit.max_per_day is None or limit.max_per_day > 0)


def _slot_write(bucket: Bucket, day: str, hour: str) -> UpdateOne:
    room: dict[str, Any] = {f"hours.{hour}": {"$not": {"$gte": bucket.limit.max_per_hour}}}
    if bucket.limit.max_per_day is not None:
        room["count"] = {"$not": {"$gte": bucket.limit.max_per_day}}
    return UpdateOne(
        {"bucket": bucket.key, "day": day, **room},
        {"$inc": {"count": 1, f"hours.{hour}": 1}},
        upsert=True,
    )


def _full(bucket: Bucket) -> str:
    limit = bucket.limit
    per_day = f", {limit.max_per_day} a day" if limit.max_per_day is not None else ""
    name = "the default domain limit" if limit.domain == "*" else f"the limit of {limit.domain}"
    return f"{bucket.key} has had its sends for now ({name}: {limit.max_per_hour} an hour{per_day})"
