"""Suppressing one address or `@domain`: it is never mailed again, in any campaign.

The dispatcher checks every recipient against the list before every send; the value is normalised the way
that check compares it (`app/domain/suppression_entries.py`). An existing entry is kept as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.domain.suppression_entries import (
    MAX_REASON_CHARS,
    InvalidEntry,
    check_reason,
    display_value,
    suppression_value,
)
from app.ops.errors import OpError
from app.store import schema, suppressions
from app.store.client import Database


@dataclass(frozen=True)
class Suppressed:
    """The entry as stored and shown (`@domain` for a domain), and whether it is new (else it was listed)."""

    value: str
    kind: str
    reason: str
    added: bool


def checked_value(email: str) -> str:
    """The stored form of an address or `@domain`; OpError naming the field `email` otherwise."""
    try:
        return suppression_value(email)
    except InvalidEntry as exc:
        raise OpError("invalid", f"email: {exc}") from None


def checked_reason(reason: str) -> str:
    """The reason as recorded: one line of 1 to MAX_REASON_CHARS characters; OpError naming `reason` otherwise."""
    try:
        return check_reason(reason)
    except InvalidEntry:
        raise OpError(
            "invalid", f"reason: say why in one line of at most {MAX_REASON_CHARS} characters, e.g. complaint"
        ) from None


async def suppress_address(db: Database, email: str, reason: str, now: datetime, *, detail: str = "api") -> Suppressed:
    """Put an address or `@domain` on the suppression list (`detail` records where it came from)."""
    stored, why = checked_value(email), checked_reason(reason)
    added = await suppressions.add(db[schema.SUPPRESSIONS], [(stored, why, detail)], now)
    return Suppressed(display_value(stored), "address" if "@" in stored else "domain", why, bool(added))
