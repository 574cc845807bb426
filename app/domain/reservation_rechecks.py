"""When to look again at an account held by an open reservation, pure: `now` passed in.

A reservation counts against its account's limits, and holds its wait window, from the moment it is made, but
it may still be given back: rolled back by its holder, or reclaimed when its holder is gone. A limit filled, or
a window held, only by such reservations is therefore looked at again sooner than its reset. Separate from
`limits.py` (which limits apply and whether there is room) because these times follow from the reservations'
lifecycle and the dispatchers' liveness, not from any limit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.domain.liveness import MAX_BEAT_SECONDS, reclaim_seconds

# A window held by a live reservation is looked at again this long after its send should have ended.
HELD_WINDOW_MARGIN_SECONDS = 1.0
# By then a reservation not yet in flight has flown, been rolled back, or (its holder gone) been reclaimed,
# whatever lease its holder runs with.
UNSENT_RECHECK_SECONDS = reclaim_seconds(MAX_BEAT_SECONDS)


def unsent_recheck(
    since: datetime,
    now: datetime,
    *,
    horizon_seconds: float = UNSENT_RECHECK_SECONDS,
    margin_seconds: float = HELD_WINDOW_MARGIN_SECONDS,
) -> datetime:
    """When to look again at a limit filled by reservations not yet in flight, the oldest made at `since`.

    By `since + horizon_seconds` each has flown, been rolled back or been reclaimed; never sooner than a margin
    from `now`, so a slow holder is polled, not spun on.
    """
    return max(since + timedelta(seconds=horizon_seconds), now + timedelta(seconds=margin_seconds))


def held_window_end(
    next_available_at: datetime | None,
    reserved_wait_end: datetime | None,
    now: datetime,
    *,
    margin_seconds: float = HELD_WINDOW_MARGIN_SECONDS,
) -> datetime | None:
    """When a wait window held by an open reservation can really end, for a waiting lead's retry time.

    While reserved, the window stays closed until the holder's crash hold ends (`next_available_at`), but a live
    holder moves it to its hand-over plus the wait when it commits. `reserved_wait_end` (reservation time plus the
    wait; None when no reservation holds the window) is therefore the earliest end: look again a margin after it,
    and every margin while the send lasts, never later than the hold.
    """
    if next_available_at is None or reserved_wait_end is None:
        return next_available_at
    expected = max(reserved_wait_end, now) + timedelta(seconds=margin_seconds)
    return min(next_available_at, expected)
