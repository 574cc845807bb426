"""A batch's reservations: one send per lead of a batch, spread over free accounts in a few round trips.

The arbiter (`arbiter.py`) reserves one send at a time, trying accounts in turn; a batch instead plans all its
sends at once on the accounts' counters (`assign`), possibly read by a recent plan (`recent_counts.py`) from a
page of accounts kept from one (`recent_accounts.py`), then counts each account's share with one conditional
upsert. Separate from the arbiter because this planning is its own path, with its own caches, and shares with
a single reservation only the writes and the `arbiter.reserved` event, which live here too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from app.domain.models import Campaign
from app.store.account_scan import AccountScan, Candidate, Tally, assign, room, valid_limits, window_open
from app.store.account_usage import AccountUsage, Block, Reservation, reservation_logger, usage_path
from app.store.recent_accounts import RecentAccounts
from app.store.recent_counts import RecentCounts
from app.store.wait_windows import WaitWindows

# Today's counters are read for this many free accounts at a time: most reservations succeed on the first.
USAGE_CHUNK = 16


def reservation_token(owner: str) -> str:
    """A new reservation's token: unique, and naming the dispatcher that holds it."""
    return f"{owner}:{uuid.uuid4().hex}"


def log_reserved(reservation: Reservation, owner: str, windows: WaitWindows, **extra: Any) -> None:
    """Log `arbiter.reserved` with the limits the reservation was made under and when its window ends."""
    limits = reservation.limits
    reservation_logger(reservation, owner).debug(
        "arbiter.reserved",
        day=reservation.day,
        max_daily_sends=limits.max_daily_sends,
        daily_limit=limits.campaign_daily_limit,
        max_hourly_sends=limits.max_hourly_sends,
        hourly_limit=limits.campaign_hourly_limit,
        min_wait_time=limits.min_wait_minutes,
        next_available_at=windows.end(limits, reservation.reserved_at).isoformat(),
        **extra,
    )


class BatchReservations:
    """Reserves a batch's sends for one dispatcher (`owner`), with the arbiter's reads, writes and caches."""

    def __init__(
        self,
        *,
        owner: str,
        reads: AccountScan,
        usage: AccountUsage,
        windows: WaitWindows,
        recent: RecentCounts,
        pages: RecentAccounts,
    ) -> None:
        self._owner = owner
        self._reads = reads
        self._usage = usage
        self._windows = windows
        self._recent = recent
        self._pages = pages

    async def reserve_many(
        self, campaign: Campaign, now: datetime, pins: Sequence[str | None], *, only: Collection[str] | None = None
    ) -> list[Reservation | None]:
        """One reservation per item of `pins`, in order, None where none is free now (see
        `Arbiter.reserve_many`)."""
        if not pins:
            return []
        pinned = await self._reads.mailboxes(campaign, [p for p in pins if p is not None], only, now)
        mailboxes = {c.id for c in pinned}
        wants = [p if p in mailboxes else None for p in pins]
        free_wanted = wants.count(None)
        others: list[Candidate] = []
        kept = False
        if free_wanted:
            # A kept page serves first attempts only: a follow-up's mailbox may have a wait window to claim.
            others, kept = await self._page(campaign, only, free_wanted + USAGE_CHUNK, now, keep=not pinned)
        candidates = others + [c for c in pinned if c.id not in {o.id for o in others}]
        accounts = await self._assign(candidates, wants, campaign.id, now)
        plan = {a: accounts.count(a) for a in dict.fromkeys(a for a in accounts if a is not None)}
        if not plan:
            return [None] * len(pins)
        given = await self._count_shares(campaign, plan, {c.id: c for c in candidates}, now, check_open=kept)
        if given is None:  # the kept page was stale (an account paused, disabled or busy): read afresh
            self._pages.clear()
            return await self.reserve_many(campaign, now, pins, only=only)
        return [given[a].pop() if a is not None and given.get(a) else None for a in accounts]

    async def _page(
        self, campaign: Campaign, only: Collection[str] | None, limit: int, now: datetime, *, keep: bool
    ) -> tuple[list[Candidate], bool]:
        """The least recently used free accounts, from a page kept from a recent plan when there is one (True),
        else read now (see `app/store/recent_accounts.py`)."""
        page = self._pages.get(campaign.id, only, limit) if keep else None
        if page is not None:
            return page, True
        page = await self._reads.scan(campaign, window_open(now), (), only, Tally(), now=now, limit=limit)
        if keep:
            self._pages.put(campaign.id, only, limit, page)
        return page, False

    async def _assign(
        self, candidates: list[Candidate], wants: list[str | None], campaign_id: str, now: datetime
    ) -> list[str | None]:
        """The account of each wanted send (`assign`), planned on the counters a recent plan left when that gives
        every send an account, else on counters read now (see `app/store/recent_counts.py`)."""
        counts = self._recent.get(candidates, now, campaign_id)
        if counts is not None:
            accounts = assign(room(candidates, counts, now, len(wants)), wants)
            if None not in accounts:
                return accounts
        counts = await self._reads.counts_for(candidates, now, usage_path(campaign_id))
        self._recent.put(candidates, now, campaign_id, counts)
        return assign(room(candidates, counts, now, len(wants)), wants)

    async def _count_shares(
        self,
        campaign: Campaign,
        plan: dict[str, int],
        by_id: Mapping[str, Candidate],
        now: datetime,
        *,
        check_open: bool = False,
    ) -> dict[str, list[Reservation]] | None:
        """Count each planned account's share (its wait window first where it has one); the reservations made.

        With `check_open` (a plan on a kept page, accounts without a wait window only) the rotation goes first
        and nothing is counted (None) unless every planned account was still active with its window open."""
        # One token per reservation; the first of an account's share also holds its wait window.
        tokens = {account_id: [reservation_token(self._owner) for _ in range(k)] for account_id, k in plan.items()}
        plan, waits = await self._claim_windows(plan, by_id, tokens, now)
        plain = [by_id[a].row.raw_id for a in plan if a not in waits]
        blocks = [Block(a, by_id[a].slot(now), valid_limits(by_id[a]), tokens[a]) for a in plan]
        if check_open:
            if not await self._windows.rotate(plain, now, open_only=True):
                return None
            counted = await self._usage.count_blocks(blocks, campaign.id, now)
        else:
            counted, _ = await asyncio.gather(
                self._usage.count_blocks(blocks, campaign.id, now), self._windows.rotate(plain, now)
            )
        self._pages.used(counted)
        for account_id in plan:
            if account_id not in counted and account_id in waits:
                await self._windows.release(account_id, tokens[account_id][0], now)
        refused = [a for a in tokens if a not in counted]
        self._recent.counted(by_id, {a: len(tokens[a]) for a in counted}, refused, now, campaign.id)
        given: dict[str, list[Reservation]] = {}
        for account_id in counted:
            candidate, slot = by_id[account_id], by_id[account_id].slot(now)
            for token in tokens[account_id]:
                reservation = Reservation(
                    token, candidate.row.account, campaign.id, slot.day, now, valid_limits(candidate), slot.hour
                )
                log_reserved(reservation, self._owner, self._windows, block=plan[account_id])
                given.setdefault(account_id, []).append(reservation)
        return given

    async def _claim_windows(
        self, plan: dict[str, int], by_id: Mapping[str, Candidate], tokens: Mapping[str, list[str]], now: datetime
    ) -> tuple[dict[str, int], list[str]]:
        """Claim the wait windows of the planned accounts that have one, at once; return the plan without the
        accounts whose window a racing dispatcher took, and the accounts with a window."""
        waits = [a for a in plan if valid_limits(by_id[a]).waits]
        taken = await asyncio.gather(
            *(self._windows.claim(by_id[a].row.raw_id, tokens[a][0], valid_limits(by_id[a]), now) for a in waits)
        )
        return {a: k for a, k in plan.items() if a not in waits or taken[waits.index(a)]}, waits
