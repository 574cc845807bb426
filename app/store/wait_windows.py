"""The arbiter's wait-window writes on `email_accounts`: claim, hold, move and release; disable ends them.

An account never sends twice within `min_wait_time` minutes. A reservation claims the account's window
(`next_available_at`, `reservation_token`) with a conditional write; while it is open the window stays closed for
the wait plus the longest a send can take (the hold). A commit moves the window to run from the hand-over, and a
rollback reopens it, in both cases only if this reservation's token still holds it. The commit is where each gap
is drawn: `min_wait_time` plus a random 0..`wait_jitter` minutes (`limits.gap_minutes`), once, so that gaps vary
and none is shorter than the minimum.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

from app.domain.limits import AccountLimits, gap_minutes
from app.domain.scheduling import after_minutes
from app.store import reclaim as reclaim_store
from app.store.account_usage import Reservation
from app.store.documents import Collection, NotFound, id_filter


class WaitWindows:
    """The wait windows of the accounts in `email_accounts`, held `hold_seconds` past the wait while reserved."""

    def __init__(self, accounts: Collection, *, hold_seconds: float, rand: Callable[[], float] = random.random) -> None:
        self._accounts = accounts
        self._hold_seconds = hold_seconds
        self._rand = rand  # draws each gap's random part (uniform 0..1)

    def end(self, limits: AccountLimits, now: datetime) -> datetime:
        """When a reserved account may be reserved again if this reservation is never settled."""
        if not limits.waits:
            return now  # no wait: sends of one account may overlap
        return after_minutes(now, limits.min_wait_minutes + self._hold_seconds / 60.0)

    async def claim(self, raw_id: Any, token: str, limits: AccountLimits, now: datetime) -> bool:
        """Take the account's wait window if it is open; False when another dispatcher took it first."""
        flt: dict[str, Any] = {"_id": raw_id, "status": "active"}
        if limits.waits:
            flt["$or"] = [{"next_available_at": {"$lte": now}}, {"next_available_at": None}]
        # Without a wait there is no window to contend for: racing dispatchers (whose clocks differ by a few
        # milliseconds) must not fail each other's reservations; the update only keeps the rotation order.
        result = await self._accounts.update_one(
            flt,
            {
                "$set": {
                    "next_available_at": self.end(limits, now),
                    "last_used_at": now,
                    "reservation_token": token,
                    # Had the message gone out at once: a waiting lead looks again then, not at the crash hold.
                    "reserved_wait_end": after_minutes(now, limits.min_wait_minutes),
                }
            },
        )
        return result.modified_count == 1

    async def rotate(self, raw_ids: list[Any], now: datetime, *, open_only: bool = False) -> bool:
        """Mark accounts without a wait window as just used (one write keeps the rotation order of them all).

        With `open_only`, only accounts whose window is open are marked, and the answer says whether every one
        of them was still active with its window open (a plan made on a page read earlier checks it so)."""
        if not raw_ids:
            return True
        flt: dict[str, Any] = {"_id": {"$in": raw_ids}, "status": "active"}
        if open_only:
            flt["$or"] = [{"next_available_at": {"$lte": now}}, {"next_available_at": {"$not": {"$type": "date"}}}]
        result = await self._accounts.update_many(flt, {"$set": {"last_used_at": now, "next_available_at": now}})
        return result.matched_count == len(raw_ids)

    async def move(self, reservation: Reservation, now: datetime) -> None:
        """Start a committed reservation's wait at `now`, if the reservation still holds the window: the gap is
        drawn here, once."""
        # The wait runs from when the message was handed over, not from when the account was reserved.
        gap = gap_minutes(reservation.limits, self._rand)
        await self._accounts.update_one(
            {**id_filter(reservation.account.id), "reservation_token": reservation.token},
            {
                "$set": {"next_available_at": after_minutes(now, gap)},
                "$unset": {"reservation_token": "", "reserved_wait_end": ""},
            },
        )

    async def release(self, account_id: str, token: str, now: datetime) -> bool:
        """Reopen the wait window at `now` if our reservation still holds it; False if another has since."""
        return await self.release_many([(account_id, token)], now) == 1

    async def release_many(self, held: list[tuple[str, str]], now: datetime) -> int:
        """Reopen at `now` the wait windows that these (account, token) reservations still hold, in one write;
        return how many were reopened. Tokens are unique, so a window another reservation holds is left alone."""
        return await reclaim_store.reopen_windows(self._accounts, held, now)

    async def disable(self, account_id: str, reason: str) -> None:
        """Take an account out of rotation (status auth_failed, `reason` shown to the operator); its window is no
        longer held by any reservation."""
        result = await self._accounts.update_one(
            id_filter(account_id),
            {
                "$set": {"status": "auth_failed", "disabled_reason": reason},
                "$unset": {"reservation_token": "", "reserved_wait_end": ""},
            },
        )
        if result.matched_count == 0:
            raise NotFound("email account", account_id)
