"""Gates: small rules that admit a recipient for sending now, skip them for good, or defer them. Pure.

Each gate is a function of the recipient and plain context; the first one that objects decides. Adding a
rule (sending windows, per-domain limits) is a new gate here, not a new branch in the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.domain.models import Recipient
from app.domain.sending_windows import Schedule, describe_opening, next_open
from app.domain.stop_policy import skip_reason


@dataclass(frozen=True)
class Skip:
    """Never mail this recipient for this step; `reason` is recorded."""

    reason: str


@dataclass(frozen=True)
class Defer:
    """Not now: look at the lead again at `until`."""

    until: datetime
    reason: str


@dataclass(frozen=True)
class GateContext:
    """What gates may look at besides the recipient: suppressed values (an address or a bare domain), the time
    and the campaign's sending window (`planning.plan` sets it per campaign)."""

    now: datetime
    suppressed: Mapping[str, str] = field(default_factory=dict)
    schedule: Schedule | None = None


Gate = Callable[[Recipient, GateContext], Skip | Defer | None]


def suppression_keys(email: str) -> tuple[str, str]:
    """The `suppressions.value`s that block an address: the address itself and its domain."""
    lowered = email.lower()
    return lowered, lowered.rpartition("@")[2]


def stop_policy_gate(recipient: Recipient, _: GateContext) -> Skip | None:
    """A recipient who replied, bounced or unsubscribed is never mailed again."""
    reason = skip_reason(recipient.status, recipient.email)
    return Skip(reason) if reason else None


def suppression_gate(recipient: Recipient, ctx: GateContext) -> Skip | None:
    """An address or domain on the suppression list is never mailed."""
    for value in suppression_keys(recipient.email):
        if value in ctx.suppressed:
            return Skip(f"suppressed ({ctx.suppressed[value]}): {value}")
    return None


def sending_window_gate(recipient: Recipient, ctx: GateContext) -> Defer | None:
    """Outside the campaign's sending window (in the recipient's zone when the schedule says so), wait for it."""
    if ctx.schedule is None:
        return None
    tz = ctx.schedule.zone_for(recipient.fields)
    opens = next_open(ctx.now, ctx.schedule, tz)
    if opens <= ctx.now:
        return None
    return Defer(opens, f"waiting for the sending window (opens {describe_opening(opens, tz)})")


DEFAULT_GATES: tuple[Gate, ...] = (stop_policy_gate, suppression_gate, sending_window_gate)


def judge(recipient: Recipient, ctx: GateContext, gates: Sequence[Gate] = DEFAULT_GATES) -> Skip | Defer | None:
    """The first objection of `gates` to mailing `recipient` now, or None when every gate admits them."""
    for gate in gates:
        verdict = gate(recipient, ctx)
        if verdict is not None:
            return verdict
    return None
