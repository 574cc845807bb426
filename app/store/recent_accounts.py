"""The page of least recently used accounts a batch reservation last read, kept a moment for the next one.

A batch reservation (`Arbiter.reserve_many`) reads the campaign's free accounts, least recently used first, to
plan its sends. For accounts without a wait window the page changes only by this dispatcher's own rotation
(followed here: the accounts just used move to the end), by other dispatchers' rotation (which only changes
the order), and by an operator or another dispatcher pausing or disabling an account, or a reservation of
another campaign taking its window. The next plan may start from that page for `ttl` seconds because the
rotation write that precedes its counts is conditional on every planned account being active with its window
open: when one is not, nothing is counted and the plan starts again from a fresh read. So a stale page costs
at most one write more; it never gets a send counted on an account a fresh read would have left out.

Only pages of accounts without a wait window are kept: their windows are claimed one by one, by a write of
their own, and a page would be stale after every send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable

from app.store.account_scan import Candidate


class RecentAccounts:
    """Pages of candidates by (campaign, accounts allowed), each good for `ttl` seconds after it was read."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._pages: dict[tuple[str, frozenset[str] | None], tuple[float, int, list[Candidate]]] = {}

    def get(self, campaign_id: str, only: Collection[str] | None, limit: int) -> list[Candidate] | None:
        """The first `limit` candidates of a recent page read with at least that limit, or None."""
        hit = self._pages.get(_key(campaign_id, only))
        if hit is None or self._clock() - hit[0] >= self.ttl or hit[1] < limit:
            return None
        return hit[2][:limit]

    def put(self, campaign_id: str, only: Collection[str] | None, limit: int, page: list[Candidate]) -> None:
        """Keep a page just read with `limit`, if every account on it can be reserved without a wait window."""
        if self.ttl <= 0 or any(c.limits is None or c.limits.waits for c in page):
            self._pages.pop(_key(campaign_id, only), None)
            return
        self._pages[_key(campaign_id, only)] = (self._clock(), limit, list(page))

    def used(self, account_ids: Iterable[str]) -> None:
        """Accounts just counted are now the most recently used: they go to the end of every page."""
        last = set(account_ids)
        for key, (read_at, limit, page) in self._pages.items():
            self._pages[key] = (
                read_at,
                limit,
                [c for c in page if c.id not in last] + [c for c in page if c.id in last],
            )

    def clear(self) -> None:
        """Forget every page (an account was found paused, disabled or busy, or was just disabled here)."""
        self._pages.clear()


def _key(campaign_id: str, only: Collection[str] | None) -> tuple[str, frozenset[str] | None]:
    return campaign_id, None if only is None else frozenset(only)
