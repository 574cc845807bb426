"""Whether a dispatcher is still alive, from its heartbeat: pure, `now` passed in.

Every dispatcher writes a heartbeat (`dispatchers.beat_at`) every `beat_seconds` and marks `stopped_at` when it
exits cleanly. One that missed `GONE_AFTER_BEATS` beats in a row is gone: the reservations it never handed to
SMTP are given back (see `Arbiter.reclaim`). A paused process that resumes after that finds them gone and sends
nothing, so declaring a slow dispatcher gone too early costs a retry, never a limit.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Literal

State = Literal["alive", "gone", "stopped"]

# Beats a dispatcher may miss (a slow database, a busy host) before it is taken for gone.
GONE_AFTER_BEATS = 3
MIN_BEAT_SECONDS = 0.5
MAX_BEAT_SECONDS = 5.0


def beat_seconds(lease_seconds: float) -> float:
    """How often a dispatcher with leases of `lease_seconds` writes its heartbeat.

    A fifth of the lease (between half a second and five seconds), so a crashed dispatcher's reservations come
    back within `reclaim_seconds`, which stays inside one lease period.
    """
    if not math.isfinite(lease_seconds) or lease_seconds <= 0:
        raise ValueError(f"lease_seconds={lease_seconds!r} must be a positive number of seconds")
    return max(MIN_BEAT_SECONDS, min(MAX_BEAT_SECONDS, lease_seconds / 5))


def reclaim_seconds(beat: float) -> float:
    """The longest a gone dispatcher's unsent reservations stay counted: missed beats plus the next reclaim."""
    return (GONE_AFTER_BEATS + 1) * beat


def is_gone(beat_at: datetime | None, stopped_at: datetime | None, now: datetime, beat: float) -> bool:
    """True when the dispatcher stopped cleanly or has missed `GONE_AFTER_BEATS` beats of `beat` seconds.

    A dispatcher never seen (`beat_at` None and not stopped) is not gone: nothing says it died, so what it holds
    keeps counting until the day ends, as for any process that does not beat.
    """
    if stopped_at is not None:
        return True
    if beat_at is None:
        return False
    return now - beat_at > timedelta(seconds=GONE_AFTER_BEATS * beat)


def state(beat_at: datetime | None, stopped_at: datetime | None, now: datetime, beat: float) -> State:
    """What an operator is told about a dispatcher: `stopped` (cleanly), `gone` (missed its beats) or `alive`.

    Unlike `is_gone`, a dispatcher never seen beating is not alive: nothing says it runs.
    """
    if stopped_at is not None:
        return "stopped"
    if beat_at is None or is_gone(beat_at, None, now, beat):
        return "gone"
    return "alive"
