"""The account arbiter: reserve a sending account for one email under its limits, then commit or roll back.

Limits, with seed 001's names: an account sends at most `email_campaign_settings.max_daily_sends` per day
across all campaigns (under a warm-up `ramp`, that day's effective limit), at most the lower of the campaign's and
the account's `daily_limit` per day for one campaign, at most `max_hourly_sends` per clock hour and the campaign's
`settings.hourly_limit` per hour for it, and never twice within `min_wait_time` minutes (the larger of the
account's and the campaign's; plus a random `settings.wait_jitter` drawn at commit). Days and hours are the
account's own (`email_accounts.timezone`); see `app/domain/limits.py`.

Every write is a conditional `update_one` aimed at one document and checked by its result, so any number of
dispatchers on any number of machines can race without exceeding a limit. A reservation counts as a send the
moment it is made, and the same upsert records it as open (`account_usage.open.<key>`: owner, campaign, time,
`flown`), so a crash can never leave a count without its record. Just before its SMTP exchange the holder marks
it in flight (`mark_in_flight`); commit and rollback close it. When its holder is gone (`Arbiter.reclaim`), an
open reservation that never flew gives its count and wait window back at once; one that flew may have been
delivered, so it keeps its count and the long hold. `mark_in_flight` is fenced on the record, so a holder that
was only paused and finds its reservation returned sends nothing.

The reads live in `account_scan.py` (settings in `account_settings.py`), the `account_usage` writes in
`account_usage.py`, the wait-window writes in `wait_windows.py`, commit, rollback and reclaim in
`reservation_ends.py`, a batch's reservations in `batch_reservations.py`; this module decides which account to
reserve for one send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from app.domain.limits import LIMIT_RACED, TAKEN, next_reset
from app.domain.models import Campaign
from app.domain.scheduling import after_minutes
from app.logging import get_logger
from app.metrics import registry as metrics
from app.store import schema
from app.store.account_scan import RECHECK_SECONDS as RECHECK_SECONDS
from app.store.account_scan import AccountScan, Blocked, Candidate, Counts, Tally, blocked, chunks, window_open
from app.store.account_scan import NoAccountAvailable as NoAccountAvailable
from app.store.account_usage import AccountUsage
from app.store.account_usage import Reservation as Reservation
from app.store.account_usage import usage_key as usage_key
from app.store.account_usage import usage_path as usage_path
from app.store.batch_reservations import USAGE_CHUNK as USAGE_CHUNK
from app.store.batch_reservations import BatchReservations, log_reserved, reservation_token
from app.store.client import Database
from app.store.recent_accounts import RecentAccounts
from app.store.recent_counts import RecentCounts
from app.store.reclaim import GoneCheck, Reclaimed
from app.store.reclaim import open_entry as open_entry
from app.store.reclaim import open_path as open_path
from app.store.reservation_ends import ReservationEnds
from app.store.wait_windows import WaitWindows


class Arbiter:
    """Reserves sending accounts for one dispatcher (`owner`), sharing limits with every other dispatcher."""

    def __init__(
        self,
        db: Database,
        *,
        owner: str,
        settings_ttl: float = 30.0,
        hold_seconds: float = 0.0,
        marks_in_flight: bool = False,
        plan_seconds: float = 0.0,
    ) -> None:
        self._accounts = db[schema.EMAIL_ACCOUNTS]
        self._owner = owner
        # Limits change rarely; caching them for `settings_ttl` seconds saves a round trip on most reservations.
        self._reads = AccountScan(db, settings_ttl=settings_ttl)
        # A dispatcher's batch reservations may plan on counters read up to `plan_seconds` ago (0: always read).
        self._recent = RecentCounts(plan_seconds)
        self._pages = RecentAccounts(plan_seconds)
        # While a reservation is open, an account with a wait window stays closed for the wait plus the
        # longest a send can take: if the holder crashes mid-send, its message may still reach the server
        # late, and the next send must not land inside the wait after it.
        self._windows = WaitWindows(self._accounts, hold_seconds=hold_seconds)
        # Only a holder that calls mark_in_flight before every SMTP exchange (and sends nothing when it says
        # False) may have its reservations returned when it is gone; any other holder's are recorded as possibly
        # in flight from the start, and keep counting as if a crash caught them mid-send.
        self._usage = AccountUsage(db[schema.ACCOUNT_USAGE], owner=owner, marks_in_flight=marks_in_flight)
        self._settle = ReservationEnds(db, owner=owner, usage=self._usage, windows=self._windows)
        self._batch = BatchReservations(
            owner=owner,
            reads=self._reads,
            usage=self._usage,
            windows=self._windows,
            recent=self._recent,
            pages=self._pages,
        )

    async def reserve(
        self,
        campaign: Campaign,
        now: datetime,
        *,
        exclude: Collection[str] = (),
        only: Collection[str] | None = None,
        pin: str | None = None,
    ) -> Reservation | NoAccountAvailable:
        """Reserve the least recently used account that may send for `campaign` at `now`.

        `exclude` leaves accounts out (e.g. one that just failed), `only` restricts to some. `pin` names the
        account that must send (a recipient's mailbox): while it may send for the campaign the answer is that
        account or when it is next free, never another; once it may not (paused, disabled, out of rotation, no
        longer assigned), any account. The reservation counts against today's limits at once and starts the
        account's wait window; a rollback gives both back.
        """
        if pin is not None:
            tally = Tally()
            pinned = await self._reads.mailboxes(campaign, [pin], only, now)
            if pinned:
                # Busy: the recipient waits for its mailbox (not "exhausted": other accounts may well be free).
                return await self._first_free(pinned, campaign, now, tally) or tally.unavailable(now)
        path = usage_path(campaign.id)
        tally = Tally()
        # The least recently used few usually include a free account; the rest are read only when they do not.
        for limit in (USAGE_CHUNK, 0):
            invalid_before = len(tally.invalid)
            page = await self._reads.scan(campaign, window_open(now), exclude, only, tally, now=now, limit=limit)
            reservation = await self._first_free([c for c in page if c.id not in tally.tried], campaign, now, tally)
            if reservation is not None:
                return reservation
            # A short first page (valid and malformed documents together) already held every open account.
            if len(page) + len(tally.invalid) - invalid_before < limit:
                break
        # Only when nothing is free are the waiting accounts read: their windows and counts give the retry time.
        waiting = await self._reads.scan(campaign, {"next_available_at": {"$gt": now}}, exclude, only, tally, now=now)
        counts = await self._reads.counts_for(waiting, now, path)
        for candidate in waiting:
            tally.add(blocked(candidate, counts.get(candidate.id, Counts()), now), candidate.id)
        return self._unavailable(campaign, now, tally)

    async def _first_free(
        self, candidates: list[Candidate], campaign: Campaign, now: datetime, tally: Tally
    ) -> Reservation | None:
        """Try `candidates` in order, reading their counts a chunk at a time; tally why each was passed over."""
        path = usage_path(campaign.id)
        for chunk in chunks(candidates, USAGE_CHUNK):
            counts = await self._reads.counts_for(chunk, now, path)
            for candidate in chunk:
                outcome = await self._try(candidate, counts.get(candidate.id, Counts()), campaign, now)
                if isinstance(outcome, Reservation):
                    return outcome
                tally.add(outcome, candidate.id)
        return None

    async def reserve_many(
        self, campaign: Campaign, now: datetime, pins: Sequence[str | None], *, only: Collection[str] | None = None
    ) -> list[Reservation | None]:
        """Reserve one send per item of `pins` for `campaign` in a few round trips; in order, None where none is
        free now (`reserve` then says why). An item names the account that must send it (a recipient's mailbox,
        as `reserve`'s `pin`) or None; the rest are spread over the least recently used free accounts (several per
        account only when it has no wait window and its limits leave room).

        Each account's share is counted with one conditional upsert whose filter leaves room for all of it, so
        the limits hold exactly as for `reserve`. Fewer come back when fewer are free or a racing dispatcher got
        there first. Items without a pin cost no round trip of their own (see `app/store/batch_reservations.py`).
        """
        return await self._batch.reserve_many(campaign, now, pins, only=only)

    async def _try(
        self,
        candidate: Candidate,
        counts: Counts,
        campaign: Campaign,
        now: datetime,
    ) -> Reservation | Blocked:
        """Reserve one candidate, or say why not and when it could be free."""
        outcome = blocked(candidate, counts, now)
        limits = candidate.limits
        if outcome.reason or limits is None:
            return outcome
        slot = candidate.slot(now)
        reservation = Reservation(
            reservation_token(self._owner), candidate.row.account, campaign.id, slot.day, now, limits, slot.hour
        )
        token = reservation.token
        if limits.waits:
            # The window first: a send may only be counted by whoever holds it.
            if not await self._windows.claim(candidate.row.raw_id, token, limits, now):
                return Blocked(TAKEN, after_minutes(now, limits.min_wait_minutes))
            counted = await self._usage.count_send(candidate.id, slot, campaign.id, limits, token, now)
        else:
            # Without a window the account write only keeps the rotation order: do both at once.
            active, counted = await asyncio.gather(
                self._windows.claim(candidate.row.raw_id, token, limits, now),
                self._usage.count_send(candidate.id, slot, campaign.id, limits, token, now),
            )
            if not active:  # paused or disabled meanwhile: give the count back
                if counted:
                    await self._usage.uncount(reservation)
                return Blocked(TAKEN, now + timedelta(seconds=RECHECK_SECONDS))
        if not counted:
            await self._windows.release(candidate.row.account.id, token, now)
            return Blocked(LIMIT_RACED, next_reset(limits, now))
        log_reserved(reservation, self._owner, self._windows)
        return reservation

    async def mark_in_flight(self, reservations: list[Reservation]) -> list[bool]:
        """Mark reservations as handed to SMTP, just before their SMTP exchange; one round trip for all.

        False for a reservation that was returned meanwhile (its holder was taken for gone): its email must not be
        sent, and the reservation must not be rolled back (it already was) nor committed. A True one keeps its
        count and the long hold of its wait window until commit or rollback, whatever happens to its holder.
        """
        return await self._usage.mark_in_flight(reservations)

    async def commit_many(self, reservations: list[Reservation], now: datetime) -> None:
        """`commit` for several reservations: one write for all the counters, plus one per wait window."""
        await self._settle.commit_many(reservations, now)

    async def commit(self, reservation: Reservation, now: datetime) -> None:
        """Record that the reserved email was sent (or must be treated as sent). Call once per reservation."""
        await self._settle.commit(reservation, now)

    async def rollback(self, reservation: Reservation, now: datetime, *, reason: str) -> None:
        """Give back a reservation whose email was certainly not sent: its count, and its wait window if unused.

        Call at most once per reservation, and never after commit. One already returned (by an earlier rollback
        or by `reclaim`) is not given back twice.
        """
        await self.rollback_many([reservation], now, reason=reason)

    async def rollback_many(self, reservations: list[Reservation], now: datetime, *, reason: str) -> int:
        """`rollback` for several reservations: one write for the counts, one for the wait windows they still
        hold. Return how many counts were given back."""
        return await self._settle.rollback_many(reservations, now, reason=reason)

    async def reclaim(self, now: datetime, gone: GoneCheck | Collection[str]) -> Reclaimed:
        """Close the open reservations of dispatchers that are gone (see `app/store/reclaim.py`).

        Looks at today's and yesterday's counters. `gone` is the set of gone owners, or an async check given the
        owners holding open reservations (never this arbiter's own) that returns those known to be gone. Run by
        every dispatcher on each heartbeat; racing runs return each reservation once.
        """
        return await self._settle.reclaim(now, gone)

    async def disable(self, account_id: str, reason: str) -> None:
        """Take an account out of rotation (status auth_failed) with the reason an operator will see."""
        if not reason.strip():
            raise ValueError("disable() needs a reason the operator can act on, e.g. the SMTP auth error")
        await self._windows.disable(account_id, reason)
        self._pages.clear()
        get_logger(account_id=account_id, owner=self._owner).warning("arbiter.disabled", reason=reason)

    async def usage(self, account_id: str, day: str) -> dict[str, Any]:
        """An account's counters for one of its days ("YYYY-MM-DD"); zeros when it has not sent that day."""
        return await self._usage.read(account_id, day)

    def _unavailable(self, campaign: Campaign, now: datetime, tally: Tally) -> NoAccountAvailable:
        result = tally.unavailable(now)
        # Counted under the reason that held back the most accounts (none at all: the campaign has no account).
        main = tally.reasons.most_common(1)
        metrics.current().refused(main[0][0] if main else metrics.NO_ACCOUNT)
        get_logger(campaign_id=campaign.id, owner=self._owner).info(
            "arbiter.exhausted", retry_at=result.retry_at.isoformat(), reason=result.reason
        )
        return result
