"""Today's counters of the accounts as a batch reservation last saw them, kept a few seconds to plan the next one.

A batch reservation (`Arbiter.reserve_many`) reads the counters of its candidate accounts only to plan how many
sends each can take; the conditional upsert that counts them holds the limits in its filter, whatever the plan
said. So a plan may start from counters read a few seconds ago, kept current with this dispatcher's own counts:

- counters too low (another dispatcher counted sends meanwhile) can only get an account's share refused by the
  upsert, as a racing dispatcher would; the refused account is forgotten here, and its sends are reserved one at
  a time from fresh reads;
- counters too high (a rollback or a reclaim gave sends back, an operator reset the day) can only make an account
  look full: the planner then reads them afresh before it leaves any send without an account.

Only the counters the plan reads (day, campaign, hour, campaign hour) are kept current; the open records are
not, and nothing here decides why an account is unavailable nor when it will be free (`reserve` reads those).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from app.store.account_scan import Candidate, Counts
from app.store.account_usage import usage_key

# The dispatcher's setting: as long as a campaign is cached (`Catalog`); a plan that stale costs at most a
# refused upsert.
RECENT_SECONDS = 5.0


class RecentCounts:
    """Counters by (account day, hour, campaign), each good for `ttl` seconds after it was read."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._items: dict[tuple[str, str, str], tuple[float, Counts]] = {}

    def get(self, candidates: Iterable[Candidate], now: datetime, campaign_id: str) -> dict[str, Counts] | None:
        """The counters of every candidate, or None when one of them is missing or too old."""
        tick = self._clock()
        found: dict[str, Counts] = {}
        for candidate in candidates:
            hit = self._items.get(_key(candidate, now, campaign_id))
            if hit is None or tick - hit[0] >= self.ttl:
                return None
            found[candidate.id] = hit[1]
        return found

    def put(self, candidates: Iterable[Candidate], now: datetime, campaign_id: str, read: Mapping[str, Counts]) -> None:
        """Remember counters just read (an account without a document for its day has sent nothing yet)."""
        if self.ttl <= 0:
            return
        tick = self._clock()
        if len(self._items) > 4096:  # a day's and an hour's keys go stale: drop what has expired
            self._items = {k: v for k, v in self._items.items() if tick - v[0] < self.ttl}
        for candidate in candidates:
            self._items[_key(candidate, now, campaign_id)] = (tick, read.get(candidate.id, Counts()))

    def counted(
        self,
        by_id: Mapping[str, Candidate],
        shares: Mapping[str, int],
        refused: Iterable[str],
        now: datetime,
        campaign_id: str,
    ) -> None:
        """This dispatcher's upserts: add the shares counted, forget the accounts whose share was refused."""
        for account_id, k in shares.items():
            key = _key(by_id[account_id], now, campaign_id)
            hit = self._items.get(key)
            if hit is not None:
                c = hit[1]
                more = dataclasses.replace(
                    c, sent=c.sent + k, campaign=c.campaign + k, hour=c.hour + k, campaign_hour=c.campaign_hour + k
                )
                self._items[key] = (hit[0], more)
        for account_id in refused:
            self._items.pop(_key(by_id[account_id], now, campaign_id), None)


def _key(candidate: Candidate, now: datetime, campaign_id: str) -> tuple[str, str, str]:
    slot = candidate.slot(now)
    return usage_key(candidate.id, slot.day), slot.hour, campaign_id
