"""Plan: what a claimed lead needs now, as a value. Pure: the pipeline's stages carry it out.

One claim moves one recipient: the first pending recipient of the current step that every gate admits is
sent; those a gate skips are recorded with their reason in the same write; a deferral releases the lead until
then. A step whose recipients are all done advances the lead, except while one of them is an unresolved
uncertain send: the follow-up ("Re: ...") would reach a person who may never have had the first message.

A follow-up joins its recipient's thread (`threading_for`): what the earlier sends left is read back from
`progress.threads` (`threads_of`), so a later step needs no query of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from app.domain.gates import DEFAULT_GATES, Defer, Gate, GateContext, Skip, judge
from app.domain.models import Campaign, Lead, SequenceStep, recipient_key
from app.domain.stop_policy import STOP_LEAD_STATUSES, lead_stop_reason
from app.domain.templating import reply_subject

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
            f"add it (outbound step add --campaign-id {campaign.id} ...), "
            f"then run outbound campaign resume {campaign.id}"
        )
        return LeadPlan(CONFIG_ERROR, reason=reason)
    if campaign.settings.stop_on_reply == "lead":
        replied = next((r.status for r in lead.recipients if r.status in STOP_LEAD_STATUSES), None)
        if replied is not None:
            return LeadPlan(STOP, step, reason=replied)
    return _plan_step(lead, campaign, step, replace(ctx, schedule=campaign.settings.schedule), gates)


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
    stop = lead_stop_reason((r.status for r in lead.recipients), stop_on_reply=campaign.settings.stop_on_reply)
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


@dataclass(frozen=True)
class Thread:
    """What a recipient's earlier messages leave for its follow-ups: `progress.threads.<recipient index>`.

    `account_id` is the recipient's mailbox, the account that sent its first message: its follow-ups come from
    it while it may send for the campaign. `message_ids` is the thread, oldest first; `subject` and `step_order`
    are those of its latest message.
    """

    account_id: str
    subject: str
    message_ids: tuple[str, ...]
    step_order: int

    def as_doc(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "account_id": self.account_id,
            "subject": self.subject,
            "message_ids": list(self.message_ids),
            "step_order": self.step_order,
        }


def threads_of(doc: Mapping[str, Any]) -> dict[int, Thread]:
    """The recipients' threads recorded in a lead document, by recipient index (unreadable entries left out)."""
    progress = doc.get("progress")
    found = progress.get("threads") if isinstance(progress, Mapping) else None
    if not isinstance(found, Mapping):
        return {}
    threads: dict[int, Thread] = {}
    for key, entry in found.items():
        thread = _thread(entry)
        if thread is not None and str(key).isdigit():
            threads[int(key)] = thread
    return threads


def thread_before(threads: Mapping[int, Thread], index: int, step_order: int) -> Thread | None:
    """Recipient `index`'s thread as the steps before `step_order` left it (None before its first message)."""
    thread = threads.get(index)
    return thread if thread is not None and thread.step_order < step_order else None


def _thread(entry: Any) -> Thread | None:
    if not isinstance(entry, Mapping):
        return None
    account, subject, step = entry.get("account_id"), entry.get("subject"), entry.get("step_order")
    ids = entry.get("message_ids")
    if not (isinstance(account, str) and account and isinstance(subject, str) and subject):
        return None
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        return None
    if isinstance(step, bool) or not isinstance(step, int):
        return None
    return Thread(account, subject, tuple(ids), step)


@dataclass(frozen=True)
class Threading:
    """How one message joins its recipient's thread: `references` is the thread so far, oldest first (empty: it
    starts a new one), `subject` the reply subject to use when the template has none of its own."""

    references: tuple[str, ...] = ()
    subject: str | None = None

    def headers(self) -> dict[str, str]:
        """`In-Reply-To` (the latest message) and `References` (the whole thread), or none for a new thread."""
        if not self.references:
            return {}
        return {"In-Reply-To": self.references[-1], "References": " ".join(self.references)}


NEW_THREAD = Threading()


def threading_for(step_order: int, thread: bool | None, has_subject: bool, previous: Thread | None) -> Threading | str:
    """Whether a step's message replies in the recipient's thread, or why it cannot be sent (the template's).

    A step replies when its template has no subject of its own, or when its `thread` is true; `thread` false
    starts a new thread. A reply without a subject of its own is "Re: <the previous subject>". `previous` is the
    recipient's thread as earlier steps left it.
    """
    replies = thread if thread is not None else not has_subject
    if replies and previous is not None:
        return Threading(previous.message_ids, reply_subject(previous.subject))
    if has_subject:
        return NEW_THREAD
    need = "give its template a subject (a `subject` field or a first body line 'Subject: ...')"
    if not replies:
        return f"step {step_order} has thread: false, which starts a new thread: {need}"
    return (
        f"step {step_order}'s template has no subject, and there is no earlier message of this recipient "
        f"to reply to (a first step never has one): {need}"
    )
