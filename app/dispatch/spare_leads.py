"""Due leads a scan read but did not claim, kept a moment to serve the next claim of their campaign.

A scan reads a few times more due leads than it claims (so that racing dispatchers rarely fight over one lead)
and shuffles them. The ones it leaves are still the campaign's oldest due leads a moment later, so the next
claim can take them without reading the due range again. Nothing is trusted from the copy: the claim takes a
lead only if it is still due and free, and reads it back as claimed. The spare leads serve a claim only when
they can fill it, only for `ttl` seconds, and not after a claim got fewer than it asked for (another dispatcher
is taking them): then the due range is read again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# About as long as a batch takes to go out: a lead that falls due meanwhile waits at most one batch more.
SPARE_SECONDS = 1.0


class SpareLeads:
    """Per campaign: the due leads (`_id` and due time, in the scan's shuffled order) left by its last scan."""

    def __init__(self, ttl: float = SPARE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._left: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def take(self, campaign_id: str, limit: int) -> list[dict[str, Any]] | None:
        """`limit` spare leads of the campaign for a claim, or None when there are too few or they are too old."""
        kept = self._left.get(campaign_id)
        if kept is None or self._clock() - kept[0] >= self.ttl or len(kept[1]) < limit:
            self._left.pop(campaign_id, None)
            return None
        taken, rest = kept[1][:limit], kept[1][limit:]
        self._left[campaign_id] = (kept[0], rest)
        return taken

    def keep(self, campaign_id: str, left: list[dict[str, Any]]) -> None:
        """Remember the leads a scan read and did not try to claim."""
        self._left[campaign_id] = (self._clock(), left)

    def drop(self, campaign_id: str) -> None:
        """Forget the campaign's spare leads (a claim got fewer than it asked for)."""
        self._left.pop(campaign_id, None)
