"""How reservations end: committed once sent, rolled back when certainly not sent, reclaimed when their holder
is gone (`app/store/reclaim.py`). Each writes the counters in `account_usage` and the wait windows in
`email_accounts`, then logs one event per reservation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime, timedelta

from app.domain.limits import account_day
from app.domain.models import id_str
from app.domain.scheduling import next_day_start
from app.logging import get_logger
from app.store import reclaim as reclaim_store
from app.store import schema
from app.store.account_usage import AccountUsage, Reservation, reservation_logger, usage_key
from app.store.client import Database
from app.store.reclaim import GoneCheck, Reclaimed
from app.store.wait_windows import WaitWindows


class ReservationEnds:
    """Commits, rolls back and reclaims the reservations of one dispatcher (`owner`)."""

    def __init__(self, db: Database, *, owner: str, usage: AccountUsage, windows: WaitWindows) -> None:
        self._accounts = db[schema.EMAIL_ACCOUNTS]
        self._usage_docs = db[schema.ACCOUNT_USAGE]
        self._owner = owner
        self._usage = usage
        self._windows = windows

    async def commit(self, reservation: Reservation, now: datetime) -> None:
        """Count one reservation as sent and start its wait at `now`."""
        await self._usage.commit(reservation)
        # Without a wait there is no window to move, and a leftover token is overwritten by the next reservation.
        if reservation.limits.waits:
            await self._windows.move(reservation, now)
        self._log_committed(reservation, now)

    async def commit_many(self, reservations: list[Reservation], now: datetime) -> None:
        """`commit` for several reservations: one write for all the counters, plus one per wait window."""
        if not reservations:
            return
        await self._usage.commit_many(reservations)
        windows = [r for r in reservations if r.limits.waits]
        await asyncio.gather(*(self._windows.move(r, now) for r in windows))
        for reservation in reservations:
            self._log_committed(reservation, now)

    def _log_committed(self, reservation: Reservation, now: datetime) -> None:
        reservation_logger(reservation, self._owner).debug(
            "arbiter.committed", day=reservation.day, committed_at=now.isoformat()
        )

    async def rollback_many(self, reservations: list[Reservation], now: datetime, *, reason: str) -> int:
        """Give back the counts of reservations certainly not sent in one write, and the wait windows they still
        hold in another; return how many counts were given back."""
        if not reservations:
            return 0
        returned = await self._usage.give_back(reservations)
        released = await self._windows.release_many([(r.account.id, r.token) for r in reservations], now)
        for reservation in reservations:
            # Exact for one reservation; for several, known only when all or none landed.
            reservation_logger(reservation, self._owner).info(
                "arbiter.rollback",
                reason=reason,
                day=reservation.day,
                count_returned=_all_or_none(returned, len(reservations)),
                window_released=_all_or_none(released, len(reservations)),
            )
        return returned

    async def reclaim(self, now: datetime, gone: GoneCheck | Collection[str]) -> Reclaimed:
        """Close the open reservations of gone dispatchers in each account's today's and yesterday's counters."""
        # Every counted reservation stamps its account's last_used_at, so accounts unused since the start of
        # their yesterday (at most 3 UTC days back, whatever their zone) hold none: the usage documents are then
        # read by `_id` (no query on a field that would scan every day's).
        since = next_day_start(now) - timedelta(days=3)
        keys = [
            usage_key(id_str(doc["_id"]), day)
            async for doc in self._accounts.find(
                {"last_used_at": {"$gte": since}}, projection={"_id": 1, "timezone": 1}
            )
            for day in _recent_days(doc.get("timezone"), now)
        ]
        found = await reclaim_store.reclaim(self._usage_docs, self._accounts, keys, now, gone, keep=self._owner)
        if found:
            get_logger(owner=self._owner).info(
                "arbiter.reclaimed",
                returned=found.returned,
                in_flight=found.in_flight,
                windows=found.windows,
                gone=sorted(found.owners),
            )
        return found


def _recent_days(timezone: object, now: datetime) -> tuple[str, ...]:
    """An account's yesterday and today in its time zone; around UTC's when the zone is unreadable (the
    account is then skipped by the arbiter, but what it held is still closed)."""
    try:
        zone = timezone if isinstance(timezone, str) else "UTC"
        return (account_day(now - timedelta(days=1), zone), account_day(now, zone))
    except (ValueError, KeyError):
        return tuple(account_day(now + timedelta(days=d), "UTC") for d in (-2, -1, 0, 1))


def _all_or_none(landed: int, total: int) -> bool | None:
    return True if landed == total else False if landed == 0 else None
