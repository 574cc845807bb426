"""What `run-dispatcher --dry-run` reports: one row per thing a real run would do now, and the preview they make.

A row is one lead, or one of its recipients, with an action (send, skip, wait, ...) and what the operator needs
to read it: the account, the subject, when the lead is looked at again, and why it is not sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.send.lead_copy import LeadCopy

# Row actions.
SEND = "send"  # sent now, from `account`
SKIP = "skip"  # this recipient is skipped for good (the reason is recorded)
WAIT = "wait"  # the lead is looked at again at `send_at`
ADVANCE = "advance"  # the step is done: the lead moves to step `step_order`, due at `send_at`
COMPLETE = "complete"
STOP = "stop"
UNSCHEDULE = "unschedule"  # already stopped or completed: only its due time is removed
PAUSE = "pause"  # the campaign pauses (template or sequence error); the lead keeps waiting
FAIL = "fail"  # this recipient cannot be sent to and fails alone
RETRY = "retry"  # this account cannot send the template: the recipient goes to another account
RECORDED = "recorded"  # the ledger already has the outcome: it is recorded, not sent again


@dataclass(frozen=True)
class PreviewRow:
    """What the real run would do now with one lead, or one of its recipients."""

    campaign: str
    lead_id: str
    step_order: int | None = None
    email: str | None = None
    account: str | None = None
    subject: str | None = None
    send_at: datetime | None = None  # SEND: now; WAIT, ADVANCE: when the lead is looked at again
    problem: str | None = None  # why it is not sent: the skip, wait, stop or pause reason
    action: str = SEND
    headers: dict[str, str] | None = None  # SEND: the message's other headers (thread, List-Unsubscribe)
    variant: str | None = None  # SEND: the template variant the message is worded from


@dataclass
class Preview:
    """A dry run's rows, the campaigns whose due leads were not all shown, and the campaigns that would pause."""

    rows: list[PreviewRow] = field(default_factory=list)
    capped: list[tuple[str, int, int]] = field(default_factory=list)  # (campaign, leads shown, leads due)
    paused: dict[str, str] = field(default_factory=dict)  # campaign -> reason

    def count(self, action: str) -> int:
        """How many rows have this action."""
        return sum(1 for row in self.rows if row.action == action)


@dataclass
class CampaignRows:
    """One campaign's rows as the dry run finds them, kept by lead until they are added in due order."""

    campaign: str
    now: datetime
    by_lead: dict[int, list[PreviewRow]] = field(default_factory=dict)  # by lead position, in due order

    def add(self, copy: LeadCopy, action: str, *, index: int | None = None, **values: Any) -> None:
        """Add a row; `values` are PreviewRow fields (account, subject, send_at, problem, headers)."""
        email = copy.lead.recipients[index].email if index is not None else None
        if action == SEND:
            values["send_at"] = self.now
        step = copy.lead.progress.current_step_order
        row = PreviewRow(self.campaign, str(copy.lead.id), step, email, action=action, **values)
        self.by_lead.setdefault(copy.position, []).append(row)

    def invalid(self, position: int, lead_id: str, problem: str) -> None:
        """The row of a lead document that cannot be read: the real run stops it."""
        self.by_lead[position] = [PreviewRow(self.campaign, lead_id, action=STOP, problem=problem)]

    def flush(self, out: Preview) -> None:
        """Add the rows to the preview, lead by lead (each lead's in the order they happen)."""
        out.rows += [row for position in sorted(self.by_lead) for row in self.by_lead[position]]
