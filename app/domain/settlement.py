"""Settle: the lead update, activities and outcome for what a claim did. Pure: one `now`, plain values.

The pipeline applies a `Settlement` in one fenced write per lead (a batch's writes go out together), so a
lead's recipients, its step and its next due time always change together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.domain.models import Campaign, Lead, SequenceStep, recipient_key
from app.domain.planning import Thread, pending_recipients, thread_before, uncertain_hold
from app.domain.scheduling import next_step_due, recipient_due


@dataclass(frozen=True)
class Outcome:
    """What happened to the lead in this claim (for the dispatcher's counters and the demo's progress view)."""

    # sent, failed, uncertain, skipped, retry, no_account, waiting, completed, advanced, inactive, lease_lost,
    # invalid, db_error, paused, reclaimed
    kind: str
    lead_id: Any
    campaign_id: str | None = None
    account_id: str | None = None
    next_due_at: datetime | None = None


@dataclass(frozen=True)
class RecipientResult:
    """The settled outcome of one recipient for the current step."""

    status: str  # sent, failed, uncertain, skipped
    recipient_status: str | None  # new lead_data status, None to leave it
    account_id: str | None = None
    message_id: str | None = None
    error: str | None = None
    smtp_code: int | None = None
    activity: str | None = None  # the activity type when it is not `status` (template_error)
    subject: str | None = None  # of the message sent
    references: tuple[str, ...] = ()  # the thread it replied in, oldest first (empty: it started one)
    variant: str | None = None  # the template variant the message was worded from


# What an activity and a `processed_recipients` entry keep of a recipient's result, when set.
_RESULT_FIELDS = ("account_id", "message_id", "error", "smtp_code", "variant")


@dataclass(frozen=True)
class Settlement:
    """One lead's write: `set` and `unset` paths, the next due time (None: unscheduled), activities, outcome."""

    set: dict[str, Any]
    unset: tuple[str, ...]
    next_due_at: datetime | None
    outcome: Outcome
    activities: list[dict[str, Any]] = field(default_factory=list)
    step_completed: bool = False


@dataclass(frozen=True)
class LeadContext:
    """The claimed lead with its campaign and sequence, as settling needs them."""

    lead: Lead
    campaign: Campaign
    steps: Mapping[int, SequenceStep]
    step: SequenceStep
    threads: Mapping[int, Thread] = field(default_factory=dict)  # `planning.threads_of` the lead document

    def thread_before(self, index: int) -> Thread | None:
        """The recipient's thread as earlier steps left it (None before its first message)."""
        return thread_before(self.threads, index, self.step.step_order)


def step_after(steps: Mapping[int, SequenceStep], step_order: int) -> SequenceStep | None:
    """The next step in order after `step_order` (orders may have gaps)."""
    later = sorted(order for order in steps if order > step_order)
    return steps[later[0]] if later else None


def activity(
    ctx: LeadContext, index: int, kind: str, now: datetime, result: RecipientResult | None = None
) -> dict[str, Any]:
    """The `activities` document of one attempt or decision about one recipient."""
    doc: dict[str, Any] = {
        "campaign_id": ctx.campaign.id,
        "lead_id": ctx.lead.id,
        "step_order": ctx.step.step_order,
        "recipient_index": index,
        "email": ctx.lead.recipients[index].email,
        "type": kind,
        "created_at": now,
    }
    if result is not None:
        for name in _RESULT_FIELDS:
            if getattr(result, name) is not None:
                doc[name] = getattr(result, name)
    return doc


def settle(ctx: LeadContext, results: Sequence[tuple[int, RecipientResult]], now: datetime) -> Settlement:
    """Record settled recipients of the current step and release the lead for what comes next.

    Next: the step's next pending recipient (`min_wait_time` after a send, at once after a skip), or the next
    step after its delay, or completion.
    """
    values: dict[str, Any] = {}
    unset: list[str] = []
    activities = []
    contacted = False
    for index, result in results:
        key = recipient_key(ctx.step.step_order, index)
        values[f"progress.processed_recipients.{key}"] = _entry(ctx, index, result, now)
        if result.recipient_status is not None:
            values[f"lead_data.{index}.status"] = result.recipient_status
        if result.status in ("sent", "uncertain"):
            contacted = True
            values[f"lead_data.{index}.last_contacted_at"] = now
            values[f"lead_data.{index}.last_step"] = ctx.step.step_order
            values["progress.last_sent_at"] = now
            thread = thread_after(ctx, index, result)
            if thread is not None:
                values[f"progress.threads.{index}"] = thread.as_doc()
        if key in ctx.lead.progress.retries:
            unset.append(f"progress.retries.{key}")
        activities.append(activity(ctx, index, result.activity or result.status, now, result))
    settled = {index for index, _ in results}
    remaining = [i for i in pending_recipients(ctx.lead, ctx.step.step_order) if i not in settled]
    last = results[-1][1] if results else None
    if remaining:
        due = recipient_due(now, ctx.campaign.settings.min_wait_time if contacted else 0.0)
        kind = last.status if last else "skipped"
        outcome = Outcome(kind, ctx.lead.id, ctx.campaign.id, last.account_id if last else None, due)
        return Settlement(values, tuple(unset), due, outcome, activities)
    held = _uncertain_until(ctx, results, now)
    if held is not None:
        # The follow-up waits until every uncertain send of the step is resolved (resolve-send makes the lead
        # due at once) or has counted as sent.
        kind = last.status if last else "skipped"
        outcome = Outcome(kind, ctx.lead.id, ctx.campaign.id, last.account_id if last else None, held)
        return Settlement(values, tuple(unset), held, outcome, activities)
    return _advance(ctx, values, unset, activities, now, last)


def _uncertain_until(
    ctx: LeadContext, results: Sequence[tuple[int, RecipientResult]], now: datetime
) -> datetime | None:
    """Until when uncertain sends of this step (earlier ones and this claim's) hold the lead back."""
    hours = ctx.campaign.settings.uncertain_after_hours
    if hours <= 0:
        return None
    ends = [now + timedelta(hours=hours) for _, r in results if r.status == "uncertain"]
    earlier = uncertain_hold(ctx.lead, ctx.step.step_order, hours, now)
    if earlier is not None:
        ends.append(earlier)
    return max(ends, default=None)


def advance(ctx: LeadContext, now: datetime) -> Settlement:
    """Every recipient of the step is done: the next step after its delay, or completion."""
    return _advance(ctx, {}, [], [], now, None)


def _advance(
    ctx: LeadContext,
    values: dict[str, Any],
    unset: list[str],
    activities: list[dict[str, Any]],
    now: datetime,
    last: RecipientResult | None,
) -> Settlement:
    nxt = step_after(ctx.steps, ctx.step.step_order)
    account = last.account_id if last else None
    if nxt is None:
        values.update({"progress.completed": True, "progress.completed_at": now})
        kind = last.status if last else "completed"
        outcome = Outcome(kind, ctx.lead.id, ctx.campaign.id, account, None)
        return Settlement(values, tuple(unset), None, outcome, activities, step_completed=True)
    due = next_step_due(now, nxt.delay_minutes)
    values["progress.current_step_order"] = nxt.step_order
    kind = last.status if last else "advanced"
    outcome = Outcome(kind, ctx.lead.id, ctx.campaign.id, account, due)
    return Settlement(values, tuple(unset), due, outcome, activities, step_completed=True)


def thread_after(ctx: LeadContext, index: int, result: RecipientResult) -> Thread | None:
    """The recipient's thread once this send landed (an uncertain one too: it counts as sent, and its follow-up
    waits until it is resolved). The mailbox stays the account of the recipient's first message."""
    if not (result.message_id and result.subject and result.account_id):
        return None
    earlier = ctx.thread_before(index)
    mailbox = earlier.account_id if earlier is not None else result.account_id
    ids = (*result.references, result.message_id)
    return Thread(mailbox, result.subject, ids, ctx.step.step_order)


def retry_marker(account_id: str, attempts: int, error: str, now: datetime) -> dict[str, Any]:
    """What a lead keeps about a recipient's failed attempt: the next attempt prefers another account."""
    return {"account_id": account_id, "attempts": attempts, "error": error, "at": now}


def _entry(ctx: LeadContext, index: int, result: RecipientResult, now: datetime) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "processed_at": now,
        "email": ctx.lead.recipients[index].email,
        "template_id": ctx.step.template_id,
        "status": result.status,
    }
    for name in _RESULT_FIELDS:
        if getattr(result, name) is not None:
            entry[name] = getattr(result, name)
    return entry


def release(
    ctx: LeadContext,
    skipped: Sequence[tuple[int, RecipientResult]],
    due: datetime,
    outcome: Outcome,
    now: datetime,
    extra: Mapping[str, Any] | None = None,
    extra_activities: Sequence[dict[str, Any]] = (),
) -> Settlement:
    """Record the skips (if any) and give the lead back due at `due`, its step unchanged."""
    values: dict[str, Any] = {}
    unset: tuple[str, ...] = ()
    activities: list[dict[str, Any]] = []
    if skipped:
        base = settle(ctx, skipped, now)
        values, unset, activities = dict(base.set), base.unset, list(base.activities)
        # Skips alone never move the step here: the lead still has this recipient to send.
        for name in ("progress.current_step_order", "progress.completed", "progress.completed_at"):
            values.pop(name, None)
    values.update(extra or {})
    return Settlement(values, unset, due, outcome, activities + list(extra_activities))


def retry(
    ctx: LeadContext,
    skipped: Sequence[tuple[int, RecipientResult]],
    index: int,
    result: RecipientResult,
    attempts: int,
    due: datetime,
    now: datetime,
) -> Settlement:
    """A failed attempt to be tried again at `due`, preferably on another account."""
    key = recipient_key(ctx.step.step_order, index)
    marker = retry_marker(result.account_id or "", attempts, result.error or "", now)
    outcome = Outcome("retry", ctx.lead.id, ctx.campaign.id, result.account_id, due)
    return release(
        ctx,
        skipped,
        due,
        outcome,
        now,
        {f"progress.retries.{key}": marker},
        [activity(ctx, index, "retry", now, result)],
    )
