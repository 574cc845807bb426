"""How many failed logins are allowed, and how long a client waits once over: pure arithmetic on failure times.

Counted per email (one account guessed at from many places) and per client address (many accounts tried from
one place); the failures are stored in the database, so every web process counts the same ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class Limit:
    """At most `max_failures` failed logins per `window` for one key (an email or a client address)."""

    kind: str
    max_failures: int
    window: timedelta = WINDOW

    def key(self, value: str) -> str:
        """The stored key of `value` under this limit: `email:ann@example.com`, `address:192.0.2.7`."""
        return f"{self.kind}:{value}"


EMAIL_LIMIT = Limit("email", 5)
ADDRESS_LIMIT = Limit("address", 20)
LIMITS = (EMAIL_LIMIT, ADDRESS_LIMIT)


def retry_after(failures: Sequence[datetime], limit: Limit, now: datetime) -> int | None:
    """Seconds until one more attempt is allowed, or None when it is allowed now.

    `failures` are the times of failed attempts (any order; only the `max_failures` most recent matter). Once
    `max_failures` lie inside the window, the next attempt waits until the oldest of them leaves it.
    """
    recent = sorted((t for t in failures if now - limit.window < t <= now), reverse=True)
    if len(recent) < limit.max_failures:
        return None
    frees_at = recent[limit.max_failures - 1] + limit.window
    return max(1, math.ceil((frees_at - now).total_seconds()))
