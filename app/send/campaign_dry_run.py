"""One campaign's part of `run-dispatcher --dry-run`: its due leads claimed as the dispatcher would claim them.

Leads are claimed in batches of the campaign's batch size and planned with the pipeline's gates
(`planning.plan`); sends go to the accounts the arbiter would reserve (read, never written) and are composed as
`send/delivery.py` composes them, in the order `Delivery.run` takes them; a recipient the ledger already settled
is recorded, never sent. A claim's settlement is applied to the lead's copy (`lead_copy.py`), and the leads it
leaves due at once are claimed again after the others, until every lead is sent, waiting or done for now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from app.domain import ledger_states as lstate
from app.domain import planning
from app.domain.gates import GateContext
from app.domain.models import Campaign, InvalidDocument, Lead, SequenceStep, Template
from app.domain.planning import LeadPlan, threads_of
from app.domain.settlement import LeadContext, RecipientResult, Settlement, advance, retry, settle
from app.domain.templating import Renderer
from app.send.compose import MAILTO_ONLY, ComposeError, UnsubscribeLinks, compose, variant_of
from app.send.lead_copy import LeadCopy
from app.send.preview_rows import (
    ADVANCE,
    COMPLETE,
    FAIL,
    PAUSE,
    RECORDED,
    RETRY,
    SEND,
    SKIP,
    STOP,
    UNSCHEDULE,
    WAIT,
    CampaignRows,
    Preview,
)
from app.send.round_outcomes import with_message
from app.store.account_scan import assign
from app.store.capacity import CampaignAccounts, Planned
from app.store.catalog import Catalog
from app.store.ledger import send_id
from app.transport.base import OutgoingMessage, Sender


@dataclass(frozen=True)
class _Claim:
    sim: LeadCopy
    plan: LeadPlan
    ctx: LeadContext

    @property
    def index(self) -> int:
        assert self.plan.index is not None, "a send plan names its recipient"
        return self.plan.index

    @property
    def skipped(self) -> list[tuple[int, RecipientResult]]:
        return [(i, RecipientResult("skipped", None, error=reason)) for i, reason in self.plan.skips]

    @property
    def pin(self) -> str | None:
        thread = self.ctx.thread_before(self.index)
        return thread.account_id if thread is not None else None


@dataclass
class CampaignDryRun:
    """One campaign's due leads, claimed in rounds and batches as the dispatcher would claim them."""

    catalog: Catalog
    renderer: Renderer
    sender: Sender | None
    campaign: Campaign
    steps: Mapping[int, SequenceStep]
    accounts: CampaignAccounts
    planned: Planned
    gates: GateContext
    ledger: Mapping[str, Mapping[str, Any]]
    batch_size: int
    out: Preview
    links: UnsubscribeLinks = MAILTO_ONLY
    held: tuple[str, datetime | None] | None = None  # why, and until when, no more leads are claimed
    rows: CampaignRows = field(init=False)

    def __post_init__(self) -> None:
        self.rows = CampaignRows(self.campaign.name, self.now)

    def flush(self) -> None:
        """Add the rows to the preview, lead by lead (each lead's in the order they happen)."""
        self.rows.flush(self.out)

    async def run(self, docs: list[dict[str, Any]]) -> None:
        active: list[LeadCopy] = []
        for position, doc in enumerate(docs):
            try:
                active.append(LeadCopy(position, doc, Lead.from_doc(doc)))
            except InvalidDocument as exc:
                self.rows.invalid(position, str(doc.get("_id")), f"invalid lead: {exc}")
        while active:
            again: list[LeadCopy] = []
            for start in range(0, len(active), self.batch_size):
                if self.held is not None:
                    # The dispatcher claims no more of the campaign's leads: those not yet claimed keep waiting.
                    for sim in [*active[start:], *again]:
                        self._row(sim, WAIT, send_at=self.held[1], problem=self.held[0])
                    return
                again += await self._batch(active[start : start + self.batch_size])
            active = sorted(again, key=lambda sim: sim.position)

    async def _batch(self, leads: list[LeadCopy]) -> list[LeadCopy]:
        """Plan each lead as the pipeline does; the leads a claim leaves due now are returned for another."""
        again: list[LeadCopy] = []
        claims: list[_Claim] = []
        for sim in leads:
            plan = planning.plan(sim.lead, self.campaign, self.steps, self.gates)
            for index, reason in plan.skips:
                self._row(sim, SKIP, index=index, problem=reason)
            if plan.action == planning.SEND:
                assert plan.step is not None
                claims.append(_Claim(sim, plan, self._context(sim, plan.step)))
            elif self._decided(sim, plan):
                again.append(sim)
        return again + await self._deliver(claims)

    def _decided(self, sim: LeadCopy, plan: LeadPlan) -> bool:
        """Report a plan that sends nothing; True when the lead is due again at once."""
        action = plan.action
        if action == planning.UNSCHEDULE:
            state = "stopped" if sim.lead.progress.stopped else "completed"
            self._row(sim, UNSCHEDULE, problem=f"already {state}: only unscheduled")
        elif action in (planning.COMPLETE, planning.STOP):
            self._row(sim, COMPLETE if action == planning.COMPLETE else STOP, problem=plan.reason)
        elif action == planning.CONFIG_ERROR:
            self._pause(sim, plan.reason or "configuration error")
        elif action in (planning.WAIT, planning.INACTIVE):
            self._row(sim, WAIT, send_at=plan.until, problem=plan.reason or "the campaign is not active")
        else:  # STEP_DONE
            assert plan.step is not None
            claim = _Claim(sim, plan, self._context(sim, plan.step))
            return self._settled(
                claim, settle(claim.ctx, claim.skipped, self.now) if plan.skips else advance(claim.ctx, self.now)
            )
        return False

    async def _deliver(self, claims: list[_Claim]) -> list[LeadCopy]:
        """Template, account, compose and ledger, in the order `Delivery.run` takes them."""
        ready: list[tuple[_Claim, Template]] = []
        for claim in claims:
            template = await self.catalog.template(claim.ctx.step.template_id)
            if isinstance(template, Template):
                ready.append((claim, template))
            else:
                missing = f"template {claim.ctx.step.template_id} not found"
                self._pause(claim.sim, missing if template is None else str(template), claim.index)
        # As `Arbiter.reserve_many`: a follow-up takes its mailbox while that may send, the others share the rest.
        mailboxes = {s.account.id for s in self.accounts.accounts if s.limits is not None}
        wants = [claim.pin if claim.pin in mailboxes else None for claim, _ in ready]
        given = assign(self.accounts.capacities(self.now, len(ready), self.planned), wants)
        slots = [account_id for account_id, pin in zip(given, wants, strict=True) if account_id and pin is None]
        again: list[LeadCopy] = []
        for (claim, template), pin, account_id in zip(ready, wants, given, strict=True):
            if pin is None:
                account_id = _take(slots, claim.plan.avoid)
            if await self._send(claim, template, slots, account_id, pin):
                again.append(claim.sim)
        return again

    async def _send(
        self, claim: _Claim, template: Template, slots: list[str], account_id: str | None, pin: str | None
    ) -> bool:
        """One recipient, from `account_id` (None: none is free; `pin`: the mailbox it waits for): True when the
        lead is due again at once."""
        if account_id is None and pin is not None:
            return self._wait_for_mailbox(claim, pin)
        if account_id is None:
            none = self.accounts.unavailable(self.now, self.planned)
            problem = f"waits for an account: {none.reason}"
            self._row(claim.sim, WAIT, index=claim.index, send_at=none.retry_at, problem=problem)
            # The dispatcher claims none of the campaign's leads before then (`Dispatcher._blocked`).
            self.held = self.held or (problem, none.retry_at)
            return False
        state = self.accounts.state(account_id)
        assert state.limits is not None, "only accounts with valid limits have capacity"
        message = compose(
            self.renderer,
            template,
            campaign=self.campaign,
            lead=claim.sim.lead,
            step_order=claim.ctx.step.step_order,
            index=claim.index,
            account=state.account,
            general=await self.catalog.general_settings(account_id),
            thread=claim.ctx.step.thread,
            previous=claim.ctx.thread_before(claim.index),
            links=self.links,
        )
        if isinstance(message, ComposeError):
            slots.insert(0, account_id)  # the reservation is rolled back
            return self._unsendable(claim, message, account_id, state.account.email)
        entry = self.ledger.get(send_id(claim.sim.lead.id, claim.ctx.step.step_order, claim.index))
        if entry is not None and entry.get("state") in (*lstate.SETTLED, lstate.SENDING):
            slots.insert(0, account_id)
            return self._recorded(claim, entry, message.message)
        self.planned.record(account_id, self.campaign.id, state.limits, self.now)
        if self.sender is not None:
            await self.sender.send(state.account, message)
        outgoing = message.message
        sent = with_message(RecipientResult("sent", "contacted", account_id, outgoing.message_id), outgoing)
        values: dict[str, Any] = {"account": state.account.email, "subject": outgoing.subject}
        values.update(headers=dict(outgoing.headers), variant=variant_of(outgoing))
        return self._done(claim, sent, SEND, **values)

    def _wait_for_mailbox(self, claim: _Claim, pin: str) -> bool:
        """A follow-up whose mailbox is busy waits for it; the campaign's other leads are claimed meanwhile."""
        state = next(s for s in self.accounts.states(self.planned) if s.account.id == pin)
        why = state.blocked(self.now) or "busy"
        problem = f"waits for its mailbox {state.account.email} ({why}), which sent the recipient's first message"
        self._row(claim.sim, WAIT, index=claim.index, send_at=state.free_at(self.now), problem=problem)
        return False

    def _unsendable(self, claim: _Claim, error: ComposeError, account_id: str, email: str) -> bool:
        """A compose error as the pipeline treats it: the template's pauses, the account's retries elsewhere."""
        if error.kind == "template":
            self._pause(claim.sim, error.reason, claim.index)
            return False
        if error.kind == "account":
            fallback = claim.plan.avoid == account_id
            rest = "and no other account can take it now" if fallback else "it goes to another account"
            self._row(claim.sim, RETRY, index=claim.index, account=email, problem=f"{error.reason}; {rest}")
            failed = RecipientResult("failed", None, account_id=account_id, error=error.reason)
            later = retry(claim.ctx, claim.skipped, claim.index, failed, 0, self.now, self.now)
            return not fallback and self._settled(claim, later)
        failed = RecipientResult("failed", "failed", account_id=account_id, error=error.reason, activity="failed")
        return self._done(claim, failed, FAIL, problem=error.reason)

    def _recorded(self, claim: _Claim, entry: Mapping[str, Any], message: OutgoingMessage) -> bool:
        """A recipient the ledger already has: the real run records the outcome and sends nothing."""
        state = str(entry.get("state"))
        problem = f"already {state}: recorded, not sent"
        if state == lstate.SENDING:
            # An attempt that stopped mid-send: it may have been delivered, so it is declared uncertain.
            problem, state = "already sending (an interrupted attempt): declared uncertain, not sent", lstate.UNCERTAIN
        status = {lstate.SENT: "contacted", lstate.UNCERTAIN: "uncertain"}.get(state, "failed")
        result = RecipientResult(state if state in (lstate.SENT, lstate.UNCERTAIN) else "failed", status)
        account_id = str(entry["account_id"]) if entry.get("account_id") else None
        result = with_message(replace(result, account_id=account_id, message_id=message.message_id), message)
        return self._done(claim, result, RECORDED, problem=problem)

    def _done(self, claim: _Claim, result: RecipientResult, action: str, **values: Any) -> bool:
        """Report the claimed recipient's outcome and settle the lead with it (the skips before it too)."""
        self._row(claim.sim, action, index=claim.index, **values)
        return self._settled(claim, settle(claim.ctx, [*claim.skipped, (claim.index, result)], self.now))

    def _settled(self, claim: _Claim, settlement: Settlement) -> bool:
        """Apply a claim's settlement to the lead's copy; report where it leaves the lead; True when due now."""
        sim = claim.sim
        sim.settle(settlement)
        due = settlement.next_due_at
        if settlement.step_completed and due is None:
            self._row(sim, COMPLETE)
            return False
        if settlement.step_completed:
            self._row(sim, ADVANCE, send_at=due)
        if due is not None and due <= self.now:
            return True
        if not settlement.step_completed:
            self._row(sim, WAIT, send_at=due, problem=_why_later(sim.lead, claim.ctx.step, self.campaign))
        return False

    def _pause(self, sim: LeadCopy, reason: str, index: int | None = None) -> None:
        if self.held is None or self.held[1] is not None:  # a pause outlasts a wait for an account
            self.held = (f"held while the campaign is paused: {reason}", None)
        self.out.paused.setdefault(self.campaign.name, reason)
        self._row(sim, PAUSE, index=index, problem=f"campaign would pause: {reason}")

    def _context(self, sim: LeadCopy, step: SequenceStep) -> LeadContext:
        return LeadContext(sim.lead, self.campaign, self.steps, step, threads_of(sim.doc))

    @property
    def now(self) -> datetime:
        return self.gates.now

    def _row(self, sim: LeadCopy, action: str, *, index: int | None = None, **values: Any) -> None:
        """Add a row; `values` are PreviewRow fields (account, subject, send_at, problem)."""
        self.rows.add(sim, action, index=index, **values)


def _take(slots: list[str], avoid: str | None) -> str | None:
    """The next reserved account, another than `avoid` when there is one (as `Delivery._reserve_one`)."""
    for i, account_id in enumerate(slots):
        if account_id != avoid:
            return slots.pop(i)
    return slots.pop(0) if slots else None


def _why_later(lead: Lead, step: SequenceStep, campaign: Campaign) -> str:
    if planning.pending_recipients(lead, step.step_order):
        return f"the next recipient follows the campaign's min_wait_time ({campaign.settings.min_wait_time:g} min)"
    return f"an uncertain send of step {step.step_order} awaits resolve-send (or counts as sent then)"
