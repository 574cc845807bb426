"""The send ledger's states and the one table of moves between them. Pure.

sending -> sent | retry_wait | failed | uncertain; retry_wait -> sending; uncertain -> sent | retry_wait (an
operator's resolve-send). The store and `resolve-send` both build their writes here, so no code path can make
a move the table does not allow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

SENDING = "sending"
SENT = "sent"
RETRY_WAIT = "retry_wait"
FAILED = "failed"
UNCERTAIN = "uncertain"
SETTLED = (SENT, FAILED, UNCERTAIN)

MOVES: dict[str, frozenset[str]] = {
    SENDING: frozenset({SENT, RETRY_WAIT, FAILED, UNCERTAIN}),
    RETRY_WAIT: frozenset({SENDING}),
    UNCERTAIN: frozenset({SENT, RETRY_WAIT}),
    SENT: frozenset(),
    FAILED: frozenset(),
}

CRASHED = (
    "the dispatcher stopped after handing the message to SMTP and before recording the result; "
    "it may have been delivered"
)


class IllegalMove(ValueError):
    """A ledger move the state table does not allow."""

    def __init__(self, current: str, target: str) -> None:
        allowed = ", ".join(sorted(MOVES.get(current, ()))) or "nothing"
        super().__init__(f"a send in state {current!r} cannot become {target!r} (allowed: {allowed})")


def move(
    current: str, target: str, now: datetime, *, error: str | None = None, smtp_code: int | None = None
) -> dict[str, Any]:
    """The `$set` values of moving a ledger entry from `current` to `target`; IllegalMove when not allowed."""
    if target not in MOVES.get(current, frozenset()):
        raise IllegalMove(current, target)
    values: dict[str, Any] = {"state": target, "updated_at": now}
    if error is not None:
        values["last_error"] = error
    if smtp_code is not None:
        values["smtp_code"] = smtp_code
    if target == SENT:
        values["sent_at"] = now
    return values
