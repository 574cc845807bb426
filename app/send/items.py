"""What the delivery stages pass along: a claimed lead's recipient to send now, and what became of each."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.domain.settlement import LeadContext, Outcome, RecipientResult, Settlement
from app.store.leases import Lease


@dataclass(frozen=True)
class SendItem:
    """A claimed lead whose plan is to send one recipient now (with the skips recorded before it)."""

    position: int
    ctx: LeadContext
    lease: Lease
    index: int
    avoid: str | None
    skipped: tuple[tuple[int, RecipientResult], ...] = ()

    @property
    def pin(self) -> str | None:
        """The recipient's mailbox, for a follow-up (None for its first message)."""
        thread = self.ctx.thread_before(self.index)
        return thread.account_id if thread is not None else None


@dataclass
class Delivered:
    """Settlements to write, and outcomes already final (a lost lease)."""

    settled: list[tuple[SendItem, Settlement]] = field(default_factory=list)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
