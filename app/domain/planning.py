"""Plan: what a claimed lead needs now, as a value. Pure: the pipeline's stages carry it out.

One claim moves one recipient: the first pending recipient of the current step that every gate admits is
sent; those a gate skips are recorded with their reason in the same write; a deferral releases the lead until
then. A step whose recipients are all done advances the lead, except while one of them is an unresolved
uncertain send: the follow-up ("Re: ...") would reach a person who may never have had the first message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.gates import DEFAULT_GATES, Defer, Gate, GateContext, Skip, judge
from app.domain.models import Campaign, Lead, SequenceStep, recipient_key
from app.domain.stop_policy import STOP_LEAD_STATUSES, lead_stop_reason

# Plan actions.
SEND = "send"
WAIT = "wait"
STEP_DONE = "step_done"
COMPLETE = "complete"
STOP = "stop"
UNSCHEDULE = "unschedule"  # finished or stopped by other means but still scheduled
INACTIVE = "inactive"  # the campaign is not active: hand the lead back untouched
CONFIG_ERROR = "config_error"  # the operator's error: pause the campaign, keep the lead waiting


@dataclass(frozen=True)
class LeadPlan:
    """The decision for one claimed lead. `skips` are recorded whatever the action."""

    action: str
    step: SequenceStep | None = None
    skips: tuple[tuple[int, str], ...] = ()
    index: int | None = None  # SEND: the recipient
    avoid: str | None = None  # SEND: the account that failed last (prefer another)
    until: datetime | None = None  # WAIT
    reason: str | None = None


def pending_recipients(lead: Lead, step_order: int) -> tuple[int, ...]:
    """Indexes of the recipients still to process for this step, in order."""
    done = lead.progress.processed_recipients
    return tuple(i for i in range(len(lead.recipients)) if recipient_key(step_order, i) not in done)


def plan(
    lead: Lead,
    campaign: Campaign | None,
    steps: Mapping[int, SequenceStep],
    ctx: GateContext,
    gates: Sequence[Gate] = DEFAULT_GATES,
) -> LeadPlan:
    """What this lead needs at `ctx.now`."""
    if lead.progress.stopped or lead.progress.completed:
        return LeadPlan(UNSCHEDULE)
    if campaign is None or campaign.status != "active":
        return LeadPlan(INACTIVE)
    step = steps.get(lead.progress.current_step_order)
    if step is None:
        if steps and lead.progress.current_step_order > max(steps):
            return LeadPlan(COMPLETE)
        reason = (
            f"the campaign's sequence {campaign.sequence_id} has no step {lead.progress.current_step_order}: "
            "add it to sequence_steps, then set the campaign active again"
        )
        return LeadPlan(CONFIG_ERROR, reason=reason)
    replied = next((r.status for r in lead.recipients if r.status in STOP_LEAD_STATUSES), None)
    if replied is not None:
        return LeadPlan(STOP, step, reason=replied)
    return _plan_step(lead, campaign, step, ctx, gates)


def _plan_step(lead: Lead, campaign: Campaign, step: SequenceStep, ctx: GateContext, gates: Sequence[Gate]) -> LeadPlan:
    """The current step's next move: the first recipient every gate admits, after recording those skipped."""
    skips: list[tuple[int, str]] = []
    for index in pending_recipients(lead, step.step_order):
        verdict = judge(lead.recipients[index], ctx, gates)
        if isinstance(verdict, Skip):
            skips.append((index, verdict.reason))
            continue
        if isinstance(verdict, Defer):
            return LeadPlan(WAIT, step, tuple(skips), until=verdict.until, reason=verdict.reason)
        return LeadPlan(SEND, step, tuple(skips), index=index, avoid=_last_account(lead, step.step_order, index))
    stop = lead_stop_reason(r.status for r in lead.recipients)
    if stop is not None:
        # Nobody left who may be mailed: record the skips and stop instead of walking the remaining steps.
        return LeadPlan(STOP, step, tuple(skips), reason=stop)
    held = uncertain_hold(lead, step.step_order, campaign.settings.uncertain_after_hours, ctx.now)
    if held is not None:
        reason = f"an uncertain send of step {step.step_order} awaits resolve-send (or counts as sent then)"
        return LeadPlan(WAIT, step, tuple(skips), until=held, reason=reason)
    return LeadPlan(STEP_DONE, step, tuple(skips))


def uncertain_hold(lead: Lead, step_order: int, hours: float, now: datetime) -> datetime | None:
    """Until when an unresolved uncertain send of this step holds the lead back (None: it does not)."""
    times = [
        entry.get("processed_at")
        for i in range(len(lead.recipients))
        if isinstance(entry := lead.progress.processed_recipients.get(recipient_key(step_order, i)), Mapping)
        and entry.get("status") == "uncertain"
    ]
    ends = [t + timedelta(hours=hours) for t in times if isinstance(t, datetime)]
    latest = max(ends, default=None)
    return latest if latest is not None and latest > now else None


def _last_account(lead: Lead, step_order: int, index: int) -> str | None:
    previous: Any = lead.progress.retries.get(recipient_key(step_order, index))
    account = previous.get("account_id") if isinstance(previous, Mapping) else None
    return str(account) if account else None
