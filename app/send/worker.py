"""Process one claimed lead: the next recipient of its current step, then advance the sequence.

One claim handles one recipient. The lead is then released with `next_due_at` set to when it may continue
(`min_wait_time` later for the next recipient, the next step's delay once every recipient is done, a backoff
after a transient failure, or when an account frees up), so no worker sleeps while holding a lead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pymongo.errors import PyMongoError

from app.domain.health import HealthPolicy
from app.domain.models import (
    Campaign,
    EmailAccount,
    GeneralSettings,
    InvalidDocument,
    Lead,
    SequenceStep,
    Template,
    recipient_key,
)
from app.domain.scheduling import after_minutes, backoff_seconds, next_step_due, recipient_due
from app.domain.stop_policy import SKIP_STATUSES, STOP_LEAD_STATUSES
from app.domain.templating import RenderedEmail, Renderer, TemplateError, build_context
from app.logging import get_logger
from app.store import campaigns as campaign_store
from app.store import leases, ledger, schema
from app.store.arbiter import Arbiter, NoAccountAvailable, Reservation
from app.store.catalog import Catalog, step_after
from app.store.client import Database
from app.store.documents import NotFound
from app.store.leases import Lease, LeaseLost
from app.transport.base import (
    AccountAuthError,
    InvalidHeader,
    OutgoingMessage,
    PermanentSendError,
    Sender,
    SendError,
    TransientSendError,
    make_message_id,
    validate_message,
)

NO_STEPS_RETRY_MINUTES = 10.0
DB_ERROR_RETRY_SECONDS = 5.0
LEASE_MARGIN_SECONDS = 10.0
DURABLE_WRITE_ATTEMPTS = 6
PAUSE_MEMORY_SECONDS = 10.0
T = TypeVar("T")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker retries and which accounts it may use."""

    retry_base_seconds: float = 60.0
    retry_cap_seconds: float = 3600.0
    retry_max_attempts: int = 5
    lease_seconds: float = 120.0
    send_timeout_seconds: float = 30.0
    account_filter: frozenset[str] | None = None
    health: HealthPolicy = field(default_factory=HealthPolicy)


@dataclass(frozen=True)
class Outcome:
    """What happened to the lead in this claim (for the dispatcher's counters and the demo's progress view)."""

    # sent, failed, uncertain, skipped, retry, no_account, waiting, completed, advanced, inactive, lease_lost,
    # invalid, db_error
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


@dataclass(frozen=True)
class _Job:
    """Everything about the claimed lead that the steps below share."""

    lead: Lead
    lease: Lease
    campaign: Campaign
    steps: Mapping[int, SequenceStep]
    step: SequenceStep
    pending: tuple[int, ...]
    log: Any
    suppressed: Mapping[str, str] | None = None  # preloaded for the claimed batch; None: look it up


@dataclass(frozen=True)
class _SendPlan:
    """A recipient that is to be sent now: what `_send` needs (the batch path shares its round trips)."""

    job: _Job
    index: int
    template: Template
    last_account: str | None


@dataclass(frozen=True)
class _Delivery:
    """A message handed to SMTP in the batch path and accepted: what recording it needs."""

    job: _Job
    index: int
    reservation: Reservation
    message: OutgoingMessage
    attempt: ledger.Attempt
    log: Any


def needs_renewal(lease: Lease, now: datetime, send_timeout: float) -> bool:
    """True when the lease might run out during the SMTP exchange, so it must be extended (and checked) first."""
    return (lease.until - now).total_seconds() < send_timeout + LEASE_MARGIN_SECONDS


def pending_recipients(lead: Lead, step_order: int) -> tuple[int, ...]:
    """Indexes of the recipients still to process for this step, in order."""
    done = lead.progress.processed_recipients
    return tuple(i for i in range(len(lead.recipients)) if recipient_key(step_order, i) not in done)


class Worker:
    """Processes claimed leads; one instance is shared by a dispatcher's concurrent tasks."""

    def __init__(
        self,
        db: Database,
        *,
        arbiter: Arbiter,
        sender: Sender,
        catalog: Catalog,
        renderer: Renderer,
        config: WorkerConfig,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.leads = db[schema.CAMPAIGN_LEADS]
        self.sends = db[schema.SENDS]
        self.activities = db[schema.ACTIVITIES]
        self.suppressions = db[schema.SUPPRESSIONS]
        self.arbiter = arbiter
        self.sender = sender
        self.catalog = catalog
        self.renderer = renderer
        self.config = config
        self.clock = clock
        # Campaigns this worker just paused for their error rate, until the caches have seen the new status
        # (after that the database decides, so an operator's reactivation takes effect).
        self._paused: dict[str, float] = {}

    def just_paused(self, campaign_id: str) -> bool:
        """True for a few seconds after this worker paused the campaign."""
        paused_at = self._paused.get(campaign_id)
        return paused_at is not None and time.monotonic() - paused_at < PAUSE_MEMORY_SECONDS

    async def process(
        self, doc: Mapping[str, Any], lease: Lease, suppressed: Mapping[str, str] | None = None
    ) -> Outcome:
        """Handle one claimed lead and release it; never raises for a lead-level problem."""
        log = _lead_log(doc, lease)

        async def work() -> Outcome:
            planned = await self._process(doc, lease, log, suppressed)
            if isinstance(planned, _SendPlan):
                return await self._send(planned.job, planned.index, planned.template, planned.last_account)
            return planned

        return await self._guarded(lease, log, work())

    async def process_batch(
        self, items: Sequence[tuple[Mapping[str, Any], Lease]], suppressed: Mapping[str, str] | None = None
    ) -> list[Outcome]:
        """Handle a claimed batch of leads (the same outcomes as `process` for each, in order).

        Leads whose next move is a first attempt at one recipient share their database writes: accounts are
        reserved, ledger entries taken, sends recorded, leads released and activities written a batch at a
        time. Everything else (skips, retries, failures, races) takes the one-lead path.
        """
        if len(items) == 1:
            return [await self.process(items[0][0], items[0][1], suppressed)]
        logs = [_lead_log(doc, lease) for doc, lease in items]
        planned = await asyncio.gather(
            *(
                self._guarded(lease, log, self._process(doc, lease, log, suppressed))
                for (doc, lease), log in zip(items, logs, strict=True)
            )
        )
        outcomes: list[Outcome | None] = [p if isinstance(p, Outcome) else None for p in planned]
        plans = [(i, p) for i, p in enumerate(planned) if isinstance(p, _SendPlan)]
        batched = await self._send_batch([(i, p) for i, p in plans if p.last_account is None])
        for i, outcome in batched.items():
            outcomes[i] = outcome
        rest = [(i, p) for i, p in plans if i not in batched]
        singles = await asyncio.gather(
            *(
                self._guarded(p.job.lease, p.job.log, self._send(p.job, p.index, p.template, p.last_account))
                for _, p in rest
            )
        )
        for (i, _), outcome in zip(rest, singles, strict=True):
            outcomes[i] = outcome
        return [
            o if isinstance(o, Outcome) else Outcome("db_error", items[i][1].lead_id) for i, o in enumerate(outcomes)
        ]

    async def _guarded(self, lease: Lease, log: Any, work: Awaitable[T]) -> T | Outcome:
        """Run `work` for one lead: a paused campaign, a lost lease or a database error become its outcome."""
        try:
            outcome = await work
            if isinstance(outcome, Outcome) and outcome.kind in ("failed", "retry") and outcome.campaign_id:
                paused = await campaign_store.check_campaign(
                    self.db, outcome.campaign_id, self.config.health, self.clock()
                )
                if paused:
                    # Leads of it already claimed here are handed back untouched instead of failing too.
                    self._paused[outcome.campaign_id] = time.monotonic()
            return outcome
        except asyncio.CancelledError:
            # Shutdown past the grace period: hand the lead back now rather than at lease expiry.
            with contextlib.suppress(Exception):
                await asyncio.shield(leases.release(self.leads, lease, self.clock()))
            raise
        except LeaseLost:
            return _lease_lost(log, lease.lead_id)
        except PyMongoError as exc:
            return await self._db_error(lease, log, exc)

    async def _db_error(self, lease: Lease, log: Any, exc: PyMongoError) -> Outcome:
        # Give the lead back for a retry shortly; if even that fails, the lease expiry brings it back.
        retry_at = after_minutes(self.clock(), DB_ERROR_RETRY_SECONDS / 60.0)
        log.warning("worker.db_error", error=str(exc), retry_at=retry_at.isoformat())
        with contextlib.suppress(Exception):
            await leases.release(self.leads, lease, retry_at)
        return Outcome("db_error", lease.lead_id, next_due_at=retry_at)

    async def _process(
        self, doc: Mapping[str, Any], lease: Lease, log: Any, suppressed: Mapping[str, str] | None
    ) -> Outcome | _SendPlan:
        try:
            lead = Lead.from_doc(doc)
        except InvalidDocument as exc:
            return await self._stop_invalid(lease, exc, log)
        if lead.progress.stopped or lead.progress.completed:
            # Stopped or finished by other means (an operator, older data) but still scheduled: unschedule it.
            await leases.release(self.leads, lease, None)
            return Outcome("skipped", lead.id, lead.campaign_id)
        campaign = await self.catalog.campaign(lead.campaign_id)
        if campaign is None or campaign.status != "active" or self.just_paused(campaign.id):
            # Paused meanwhile: give it back as it was; the dispatcher only claims leads of active campaigns.
            await leases.release(self.leads, lease, self.clock())
            return Outcome("inactive", lead.id, lead.campaign_id)
        steps = await self.catalog.steps(campaign.sequence_id)
        step = steps.get(lead.progress.current_step_order)
        if step is None:
            return await self._no_step(lead, lease, campaign, steps, log)
        if any(r.status in STOP_LEAD_STATUSES for r in lead.recipients):
            return await self._stop_replied(lead, lease, log)
        job = _Job(lead, lease, campaign, steps, step, pending_recipients(lead, step.step_order), log, suppressed)
        if not job.pending:
            return await self._finish_step(job, self.clock())
        return await self._recipient(job, job.pending[0])

    async def _stop_invalid(self, lease: Lease, exc: InvalidDocument, log: Any) -> Outcome:
        log.error("worker.invalid_lead", field=exc.field, reason=exc.reason)
        await leases.release(
            self.leads, lease, None, {"progress.stopped": True, "progress.stop_reason": f"invalid lead: {exc}"}
        )
        return Outcome("invalid", lease.lead_id)

    async def _stop_replied(self, lead: Lead, lease: Lease, log: Any) -> Outcome:
        log.info("worker.lead_stopped", reason="a recipient replied")
        await leases.release(self.leads, lease, None, {"progress.stopped": True, "progress.stop_reason": "replied"})
        return Outcome("skipped", lead.id, lead.campaign_id)

    async def _no_step(
        self, lead: Lead, lease: Lease, campaign: Campaign, steps: Mapping[int, SequenceStep], log: Any
    ) -> Outcome:
        now = self.clock()
        if steps and lead.progress.current_step_order > max(steps):
            await self._complete(lead, lease, now, log)
            return Outcome("completed", lead.id, lead.campaign_id)
        # A sequence without this step is a configuration error: keep the lead, retry later, say why.
        retry_at = after_minutes(now, NO_STEPS_RETRY_MINUTES)
        log.error(
            "worker.sequence_error",
            sequence_id=campaign.sequence_id,
            step_order=lead.progress.current_step_order,
            reason="the campaign's sequence has no such step; add it to sequence_steps",
            retry_at=retry_at.isoformat(),
        )
        await leases.release(self.leads, lease, retry_at)
        return Outcome("waiting", lead.id, lead.campaign_id, next_due_at=retry_at)

    async def _complete(self, lead: Lead, lease: Lease, now: datetime, log: Any) -> None:
        await leases.release(self.leads, lease, None, {"progress.completed": True, "progress.completed_at": now})
        log.info("worker.lead_completed")

    async def _finish_step(self, job: _Job, now: datetime) -> Outcome:
        """Every recipient of the step is done: move to the next step (after its delay) or complete."""
        update, due = self._step_release(job, now, {}, ())
        await leases.fenced_update(self.leads, job.lease, update)
        self._log_step_done(job)
        return Outcome("advanced" if due else "completed", job.lead.id, job.campaign.id, next_due_at=due)

    def _step_release(
        self, job: _Job, now: datetime, extra: Mapping[str, Any], unset: Collection[str]
    ) -> tuple[dict[str, Any], datetime | None]:
        """The release that moves the lead to its next step (due after that step's delay) or completes it."""
        values = dict(extra)
        nxt = step_after(job.steps, job.step.step_order)
        if nxt is None:
            values.update({"progress.completed": True, "progress.completed_at": now})
            return leases.release_update(None, values, unset), None
        due = next_step_due(now, nxt.delay_minutes)
        values["progress.current_step_order"] = nxt.step_order
        return leases.release_update(due, values, unset), due

    def _log_step_done(self, job: _Job) -> None:
        nxt = step_after(job.steps, job.step.step_order)
        job.log.info("worker.step_completed", step_order=job.step.step_order, next_step=nxt and nxt.step_order)
        if nxt is None:
            job.log.info("worker.lead_completed")

    async def _recipient(self, job: _Job, index: int) -> Outcome | _SendPlan:
        recipient = job.lead.recipients[index]
        if recipient.status in SKIP_STATUSES:
            reason = f"recipient is {recipient.status}"
            return await self._record(job, index, RecipientResult("skipped", None, error=reason))
        suppressed = await self._suppression(recipient.email, job.suppressed)
        if suppressed is not None:
            return await self._record(job, index, RecipientResult("skipped", None, error=suppressed))
        template = await self.catalog.template(job.step.template_id)
        if not isinstance(template, Template):
            reason = f"template {job.step.template_id} not found" if template is None else str(template)
            job.log.error("worker.template_error", template_id=job.step.template_id, reason=reason)
            return await self._record(job, index, RecipientResult("failed", "failed", error=reason))
        previous = job.lead.progress.retries.get(recipient_key(job.step.step_order, index))
        last_account = previous.get("account_id") if isinstance(previous, Mapping) else None
        return _SendPlan(job, index, template, str(last_account) if last_account else None)

    async def _suppression(self, email: str, known: Mapping[str, str] | None) -> str | None:
        """Why this address must not be mailed (suppressed address or domain), or None."""
        if known is None:
            known = await load_suppressions(self.suppressions, [email])
        for value in suppression_keys(email):
            if value in known:
                return f"suppressed ({known[value]}): {value}"
        return None

    async def _reserve(self, job: _Job, last_account: str | None) -> Reservation | NoAccountAvailable:
        now = self.clock()
        only = self.config.account_filter
        # After a failure, prefer a different account; fall back to the same one if it is the only one free.
        exclude: Collection[str] = (last_account,) if last_account else ()
        result = await self.arbiter.reserve(job.campaign, now, exclude=exclude, only=only)
        if isinstance(result, NoAccountAvailable) and exclude:
            result = await self.arbiter.reserve(job.campaign, now, only=only)
        return result

    async def _send(
        self,
        job: _Job,
        index: int,
        template: Template,
        last_account: str | None,
        reserved: Reservation | None = None,
    ) -> Outcome:
        reservation = reserved or await self._reserve(job, last_account)
        if isinstance(reservation, NoAccountAvailable):
            await leases.release(self.leads, job.lease, reservation.retry_at)
            return _waiting_for_account(job, reservation)
        log = job.log.bind(account_id=reservation.account.id, step_order=job.step.step_order, recipient_index=index)
        try:
            prepared = await self._prepare(job, index, template, reservation, log)
        except BaseException:
            # Nothing reached SMTP: give the reservation back so the account's counters stay exact.
            with contextlib.suppress(Exception):
                await asyncio.shield(self.arbiter.rollback(reservation, self.clock(), reason="interrupted"))
            raise
        if isinstance(prepared, RecipientResult):
            # Settled without sending (render failed, or another attempt already has an outcome).
            await self.arbiter.rollback(reservation, self.clock(), reason=prepared.error or "not sent")
            return await self._record(job, index, prepared)
        job, message, attempt = prepared
        return await self._deliver(job, index, reservation, message, attempt, log)

    async def _send_batch(self, plans: list[tuple[int, _SendPlan]]) -> dict[int, Outcome]:
        """Send first attempts of several leads with shared round trips; {position: outcome} for those it took.

        Plans it does not take (no account reserved for them in the batch, a database error before anything was
        sent) are left to the one-lead path, which reserves on its own and says why no account is free.
        """
        if len(plans) < 2:
            return {}
        groups: dict[str, list[tuple[int, _SendPlan]]] = {}
        for i, plan in plans:
            groups.setdefault(plan.job.campaign.id, []).append((i, plan))
        done: dict[int, Outcome] = {}
        for group in groups.values():
            campaign = group[0][1].job.campaign
            try:
                reservations = await self.arbiter.reserve_many(
                    campaign, self.clock(), len(group), only=self.config.account_filter
                )
            except PyMongoError as exc:
                # Whatever was counted before the error stays counted (as after a crash); the limits hold.
                get_logger(campaign_id=campaign.id).warning("worker.db_error", error=str(exc), phase="reserve_many")
                continue
            done.update(await self._deliver_batch(list(zip(group, reservations, strict=False))))
            done.update(await self._starved(group[len(reservations) :]))
        return done

    async def _starved(self, plans: list[tuple[int, _SendPlan]]) -> dict[int, Outcome]:
        """Plans the batch found no account for: try one at a time until no account is free, then the rest wait
        (one write for all of them) until the time the arbiter gives, with its reason."""
        done: dict[int, Outcome] = {}
        for n, (i, plan) in enumerate(plans):
            job = plan.job
            found = await self._guarded(job.lease, job.log, self._reserve(job, None))
            if isinstance(found, Outcome):  # a database error or a lost lease, already handled
                done[i] = found
            elif isinstance(found, Reservation):
                done[i] = await self._guarded(
                    job.lease, job.log, self._send(job, plan.index, plan.template, None, reserved=found)
                )
            else:
                done.update(await self._wait_for_account(plans[n:], found))
                break
        return done

    async def _wait_for_account(
        self, plans: list[tuple[int, _SendPlan]], unavailable: NoAccountAvailable
    ) -> dict[int, Outcome]:
        releases = [(plan.job.lease, leases.release_update(unavailable.retry_at)) for _, plan in plans]
        try:
            landed = await leases.release_many(self.leads, releases)
        except PyMongoError as exc:
            return {i: await self._db_error(plan.job.lease, plan.job.log, exc) for i, plan in plans}
        done: dict[int, Outcome] = {}
        for (i, plan), ok in zip(plans, landed, strict=True):
            job = plan.job
            done[i] = _waiting_for_account(job, unavailable) if ok else _lease_lost(job.log, job.lead.id)
        return done

    async def _deliver_batch(self, paired: list[tuple[tuple[int, _SendPlan], Reservation]]) -> dict[int, Outcome]:
        """Compose, take the ledger entries, send and record the reserved plans of one campaign."""
        done: dict[int, Outcome] = {}
        ready: list[tuple[int, _Job, int, Reservation, OutgoingMessage, Any]] = []
        for (i, plan), reservation in paired:
            job, index = plan.job, plan.index
            log = job.log.bind(account_id=reservation.account.id, step_order=job.step.step_order, recipient_index=index)
            try:
                message = await self._compose(job, index, plan.template, reservation, log)
            except PyMongoError as exc:
                done[i] = await self._guarded(
                    job.lease, log, self._rollback(reservation, await self._db_error(job.lease, log, exc))
                )
                continue
            if isinstance(message, RecipientResult):
                done[i] = await self._guarded(job.lease, job.log, self._unsent(job, index, reservation, message))
                continue
            if needs_renewal(job.lease, self.clock(), self.config.send_timeout_seconds):
                renewed = await self._guarded(job.lease, job.log, self._renew(job))
                if isinstance(renewed, Outcome):
                    done[i] = await self._guarded(job.lease, job.log, self._rollback(reservation, renewed))
                    continue
                job = renewed
            ready.append((i, job, index, reservation, message, log))
        if not ready:
            return done
        new = [
            ledger.NewSend(
                job.lead.id,
                job.step.step_order,
                index,
                job.campaign.id,
                job.lead.recipients[index].email,
                message.message_id,
                reservation.account.id,
            )
            for _, job, index, reservation, message, _ in ready
        ]
        try:
            attempts = await ledger.start_many(self.sends, new, self.clock())
        except PyMongoError as exc:
            for i, job, _, reservation, _, log in ready:
                with contextlib.suppress(Exception):
                    await self.arbiter.rollback(reservation, self.clock(), reason=f"database error: {exc}")
                done[i] = await self._db_error(job.lease, log, exc)
            return done
        to_send: list[tuple[int, _Delivery]] = []
        for (i, job, index, reservation, message, log), attempt in zip(ready, attempts, strict=True):
            if isinstance(attempt, ledger.Settled):
                done[i] = await self._guarded(
                    job.lease, log, self._unsent(job, index, reservation, _from_ledger(attempt.doc))
                )
                continue
            if attempt.message_id != message.message_id:
                message = dataclasses.replace(message, message_id=attempt.message_id)
            to_send.append((i, _Delivery(job, index, reservation, message, attempt, log)))
        done.update(await self._send_all(to_send))
        return done

    async def _send_all(self, deliveries: list[tuple[int, _Delivery]]) -> dict[int, Outcome]:
        """Hand the messages to SMTP concurrently, then record the accepted ones together and settle the rest."""
        errors: list[Exception | None] = [None] * len(deliveries)
        finished = [False] * len(deliveries)

        async def send(n: int, d: _Delivery) -> None:
            try:
                await self.sender.send(d.reservation.account, d.message)
            except Exception as exc:
                errors[n] = exc
            finished[n] = True

        try:
            await asyncio.gather(*(send(n, d) for n, (_, d) in enumerate(deliveries)))
        except asyncio.CancelledError:
            # Stopped mid-send: those still in the SMTP exchange may have gone out; say so before giving up.
            for n, (_, d) in enumerate(deliveries):
                if not finished[n]:
                    await asyncio.shield(self._interrupted(d.job, d.reservation, d.attempt))
            raise
        done: dict[int, Outcome] = {}
        accepted = [(i, d) for n, (i, d) in enumerate(deliveries) if errors[n] is None]
        for n, (i, d) in enumerate(deliveries):
            exc = errors[n]
            if exc is not None:
                work = self._send_failed(d.job, d.index, d.reservation, d.attempt, d.message, exc, d.log)
                done[i] = await self._guarded(d.job.lease, d.log, work)
        done.update(await self._record_sent(accepted))
        return done

    async def _record_sent(self, accepted: list[tuple[int, _Delivery]]) -> dict[int, Outcome]:
        """Record accepted sends: ledger, counters, lead releases and activities, one round trip each."""
        if not accepted:
            return {}
        now = self.clock()
        deliveries = [d for _, d in accepted]
        log = get_logger(batch=len(deliveries))
        done: dict[int, Outcome] = {}
        try:
            # The messages are out: recording them must survive a database blip, or they would turn "uncertain".
            recorded = await _durably(lambda: ledger.finish_sent(self.sends, [d.attempt for d in deliveries], now), log)
            try:
                await self.arbiter.commit_many([d.reservation for d in deliveries], now)
            except PyMongoError as exc:
                # A lost commit only leaves the sends counted as reserved (commit is not idempotent: no retry).
                log.warning("worker.db_error", error=str(exc), phase="commit_many")
            settled = []
            for (i, d), ok in zip(accepted, recorded, strict=True):
                d.log.info(
                    "worker.sent", to=d.message.to_email, message_id=d.message.message_id, attempt=d.attempt.attempts
                )
                if not ok:
                    d.log.warning("worker.lease_lost", reason="the send was declared uncertain by another dispatcher")
                    done[i] = Outcome("lease_lost", d.job.lead.id)
                    continue
                result = RecipientResult("sent", "contacted", d.reservation.account.id, d.message.message_id)
                settled.append((i, d, result, *self._settlement(d.job, d.index, result, now)))
            landed = await leases.release_many(self.leads, [(d.job.lease, update) for _, d, _, update, _, _ in settled])
            activities = [activity for (_, _, _, _, _, activity), ok in zip(settled, landed, strict=True) if ok]
            if activities:
                await self.activities.insert_many(activities, ordered=False)
        except PyMongoError as exc:
            for i, d in accepted:
                if i not in done:
                    done[i] = await self._db_error(d.job.lease, d.log, exc)
            return done
        for (i, d, result, _, outcome, _), ok in zip(settled, landed, strict=True):
            if ok:
                self._log_settled(d.job, d.index, result, outcome)
                done[i] = outcome
            else:
                done[i] = _lease_lost(d.log, d.job.lead.id)
        return done

    async def _unsent(self, job: _Job, index: int, reservation: Reservation, result: RecipientResult) -> Outcome:
        """Settled without sending (render failed, or another attempt already has an outcome)."""
        await self.arbiter.rollback(reservation, self.clock(), reason=result.error or "not sent")
        return await self._record(job, index, result)

    async def _renew(self, job: _Job) -> _Job:
        lease = await leases.renew(self.leads, job.lease, now=self.clock(), lease_seconds=self.config.lease_seconds)
        return _replace_lease(job, lease)

    async def _rollback(self, reservation: Reservation, outcome: Outcome) -> Outcome:
        await self.arbiter.rollback(reservation, self.clock(), reason=f"not sent: {outcome.kind}")
        return outcome

    async def _prepare(
        self,
        job: _Job,
        index: int,
        template: Template,
        reservation: Reservation,
        log: Any,
    ) -> RecipientResult | tuple[_Job, OutgoingMessage, ledger.Attempt]:
        """Render, re-check the lease and take the ledger entry; a RecipientResult when it must not be sent."""
        message = await self._compose(job, index, template, reservation, log)
        if isinstance(message, RecipientResult):
            return message
        if needs_renewal(job.lease, self.clock(), self.config.send_timeout_seconds):
            lease = await leases.renew(self.leads, job.lease, now=self.clock(), lease_seconds=self.config.lease_seconds)
            job = _replace_lease(job, lease)
        attempt = await ledger.start_attempt(
            self.sends,
            lead_id=job.lead.id,
            step_order=job.step.step_order,
            recipient_index=index,
            campaign_id=job.campaign.id,
            email=job.lead.recipients[index].email,
            message_id=message.message_id,
            account_id=reservation.account.id,
            now=self.clock(),
        )
        if isinstance(attempt, ledger.Settled):
            return _from_ledger(attempt.doc)
        if attempt.message_id != message.message_id:
            # A retry keeps the Message-ID of the first attempt, whichever account sends it now.
            message = dataclasses.replace(message, message_id=attempt.message_id)
        return job, message, attempt

    async def _compose(
        self,
        job: _Job,
        index: int,
        template: Template,
        reservation: Reservation,
        log: Any,
    ) -> OutgoingMessage | RecipientResult:
        """Render and build the message, or say why this recipient cannot be sent (it then fails)."""
        account = reservation.account
        general = await self.catalog.general_settings(account.id)
        context = build_context(
            campaign=job.campaign,
            lead=job.lead,
            recipient_index=index,
            step_order=job.step.step_order,
            account=account,
            general=general,
        )
        try:
            rendered = self.renderer.render(template, context)
        except TemplateError as exc:
            log.error("worker.template_error", template_id=template.id, reason=str(exc), available=exc.available)
            return RecipientResult("failed", "failed", account_id=account.id, error=f"template error: {exc}")
        try:
            message = outgoing_message(job.lead, job.step.step_order, index, account, general, rendered)
        except (InvalidHeader, ValueError) as exc:
            log.error("worker.template_error", template_id=template.id, reason=f"invalid header: {exc}")
            return RecipientResult("failed", "failed", account_id=account.id, error=f"invalid header: {exc}")
        return message

    async def _deliver(
        self,
        job: _Job,
        index: int,
        reservation: Reservation,
        message: OutgoingMessage,
        attempt: ledger.Attempt,
        log: Any,
    ) -> Outcome:
        account = reservation.account
        try:
            await self.sender.send(account, message)
        except asyncio.CancelledError:
            # Stopped mid-send: it may have gone out. Record that honestly before giving up the task.
            await asyncio.shield(self._interrupted(job, reservation, attempt))
            raise
        except Exception as exc:
            return await self._send_failed(job, index, reservation, attempt, message, exc, log)
        now = self.clock()
        # The message is out: recording it must survive a database blip, or it would turn into "uncertain".
        recorded = await _durably(lambda: ledger.finish(self.sends, attempt, "sent", now), log)
        # Not retried: commit is not idempotent, and a lost commit only leaves the send counted as reserved.
        await self.arbiter.commit(reservation, now)
        log.info("worker.sent", to=message.to_email, message_id=message.message_id, attempt=attempt.attempts)
        if not recorded:
            raise LeaseLost(job.lead.id)
        return await self._record(job, index, RecipientResult("sent", "contacted", account.id, message.message_id))

    async def _send_failed(
        self,
        job: _Job,
        index: int,
        reservation: Reservation,
        attempt: ledger.Attempt,
        message: OutgoingMessage,
        exc: Exception,
        log: Any,
    ) -> Outcome:
        """Settle a send that raised, by the failure's class."""
        if isinstance(exc, AccountAuthError):
            return await self._auth_failed(job, index, reservation, attempt, exc, log)
        if isinstance(exc, PermanentSendError):
            return await self._bounced(job, index, reservation, attempt, exc, log)
        if isinstance(exc, TransientSendError | SendError):
            if exc.uncertain:
                # The connection died after the message data went out: it may have been accepted.
                return await self._in_doubt(job, index, reservation, attempt, message, exc, log)
            return await self._transient(job, index, reservation, attempt, exc, log)
        # An unexpected error after the message may have reached the server: never risk sending it twice.
        log.error("worker.smtp_error", error=repr(exc), exc_info=exc)
        return await self._in_doubt(job, index, reservation, attempt, message, exc, log)

    async def _in_doubt(
        self,
        job: _Job,
        index: int,
        reservation: Reservation,
        attempt: ledger.Attempt,
        message: OutgoingMessage,
        exc: Exception,
        log: Any,
    ) -> Outcome:
        """The message may or may not have been delivered: count it, never retry it, list it for the operator."""
        now = self.clock()
        error = f"delivery uncertain: {exc}"
        log.error("worker.smtp_error", error=error, outcome="uncertain", action="see list-uncertain")
        await _durably(lambda: ledger.finish(self.sends, attempt, "uncertain", now, error=error), log)
        await self.arbiter.commit(reservation, now)
        result = RecipientResult("uncertain", "uncertain", reservation.account.id, message.message_id, error=error)
        return await self._record(job, index, result)

    async def _interrupted(self, job: _Job, reservation: Reservation, attempt: ledger.Attempt) -> None:
        now = self.clock()
        await ledger.finish(self.sends, attempt, "uncertain", now, error="dispatcher stopped during the SMTP exchange")
        await self.arbiter.commit(reservation, now)
        with contextlib.suppress(LeaseLost):
            await leases.release(self.leads, job.lease, now)

    async def _transient(
        self,
        job: _Job,
        index: int,
        reservation: Reservation,
        attempt: ledger.Attempt,
        exc: SendError,
        log: Any,
    ) -> Outcome:
        now = self.clock()
        await self.arbiter.rollback(reservation, now, reason=str(exc))
        log.warning("worker.smtp_error", error=str(exc), smtp_code=exc.code, attempt=attempt.attempts, retryable=True)
        return await self._retry_or_give_up(job, index, attempt, exc, now, reservation.account.id, immediate=False)

    async def _auth_failed(
        self,
        job: _Job,
        index: int,
        reservation: Reservation,
        attempt: ledger.Attempt,
        exc: SendError,
        log: Any,
    ) -> Outcome:
        now = self.clock()
        await self.arbiter.rollback(reservation, now, reason=str(exc))
        with contextlib.suppress(NotFound):  # deleted meanwhile: nothing left to take out of rotation
            await self.arbiter.disable(reservation.account.id, f"authentication failed: {exc}")
        log.error(
            "worker.account_error",
            error=str(exc),
            smtp_code=exc.code,
            action="account taken out of rotation; fix its credentials, then run reset-account-limits",
        )
        return await self._retry_or_give_up(job, index, attempt, exc, now, reservation.account.id, immediate=True)

    async def _retry_or_give_up(
        self,
        job: _Job,
        index: int,
        attempt: ledger.Attempt,
        exc: SendError,
        now: datetime,
        account_id: str,
        *,
        immediate: bool,
    ) -> Outcome:
        if attempt.attempts >= self.config.retry_max_attempts:
            reason = f"gave up after {attempt.attempts} attempts; last error: {exc}"
            await ledger.finish(self.sends, attempt, "failed", now, error=reason, smtp_code=exc.code)
            result = RecipientResult(
                "failed", "failed", account_id, attempt.message_id, error=reason, smtp_code=exc.code
            )
            return await self._record(job, index, result)
        await ledger.finish(self.sends, attempt, "retry_wait", now, error=str(exc), smtp_code=exc.code)
        key = recipient_key(job.step.step_order, index)
        marker = {"account_id": account_id, "attempts": attempt.attempts, "error": str(exc), "at": now}
        delay = (
            0.0
            if immediate
            else backoff_seconds(
                attempt.attempts, base=self.config.retry_base_seconds, cap=self.config.retry_cap_seconds
            )
        )
        due = after_minutes(now, delay / 60.0)
        await leases.release(self.leads, job.lease, due, {f"progress.retries.{key}": marker})
        await self._activity(job, index, "retry", now, account_id, attempt.message_id, str(exc), exc.code)
        return Outcome("retry", job.lead.id, job.campaign.id, next_due_at=due)

    async def _bounced(
        self,
        job: _Job,
        index: int,
        reservation: Reservation,
        attempt: ledger.Attempt,
        exc: SendError,
        log: Any,
    ) -> Outcome:
        now = self.clock()
        await self.arbiter.rollback(reservation, now, reason=str(exc))
        await ledger.finish(self.sends, attempt, "failed", now, error=str(exc), smtp_code=exc.code)
        email = job.lead.recipients[index].email
        await self.suppressions.update_one(
            {"value": email.lower()},
            {"$setOnInsert": {"value": email.lower(), "reason": "hard_bounce", "detail": str(exc), "created_at": now}},
            upsert=True,
        )
        log.warning("worker.smtp_error", error=str(exc), smtp_code=exc.code, retryable=False, suppressed=email)
        result = RecipientResult(
            "failed", "bounced", reservation.account.id, attempt.message_id, error=str(exc), smtp_code=exc.code
        )
        return await self._record(job, index, result)

    async def _record(self, job: _Job, index: int, result: RecipientResult) -> Outcome:
        """Write the recipient's outcome and release the lead for its next recipient or step (one fenced write)."""
        update, outcome, activity = self._settlement(job, index, result, self.clock())
        await leases.fenced_update(self.leads, job.lease, update)
        await self.activities.insert_one(activity)
        self._log_settled(job, index, result, outcome)
        return outcome

    def _settlement(
        self, job: _Job, index: int, result: RecipientResult, now: datetime
    ) -> tuple[dict[str, Any], Outcome, dict[str, Any]]:
        """For one settled recipient: the lead's release update, the outcome and the `activities` document."""
        recipient = job.lead.recipients[index]
        key = recipient_key(job.step.step_order, index)
        entry: dict[str, Any] = {
            "processed_at": now,
            "email": recipient.email,
            "template_id": job.step.template_id,
            "status": result.status,
        }
        for name in ("account_id", "message_id", "error", "smtp_code"):
            if getattr(result, name) is not None:
                entry[name] = getattr(result, name)
        values: dict[str, Any] = {f"progress.processed_recipients.{key}": entry}
        if result.recipient_status is not None:
            values[f"lead_data.{index}.status"] = result.recipient_status
        if result.status in ("sent", "uncertain"):
            values.update(
                {
                    f"lead_data.{index}.last_contacted_at": now,
                    f"lead_data.{index}.last_step": job.step.step_order,
                    "progress.last_sent_at": now,
                }
            )
        unset = [f"progress.retries.{key}"] if key in job.lead.progress.retries else []
        if _remaining(job, index):
            wait = job.campaign.settings.min_wait_time if result.status in ("sent", "uncertain") else 0.0
            due: datetime | None = recipient_due(now, wait)
            update = leases.release_update(due, values, unset)
        else:
            update, due = self._step_release(job, now, values, unset)
        outcome = Outcome(result.status, job.lead.id, job.campaign.id, result.account_id, due)
        activity = self._activity_doc(
            job,
            index,
            _activity_type(result),
            now,
            result.account_id,
            result.message_id,
            result.error,
            result.smtp_code,
        )
        return update, outcome, activity

    def _log_settled(self, job: _Job, index: int, result: RecipientResult, outcome: Outcome) -> None:
        recipient = job.lead.recipients[index]
        remaining = _remaining(job, index)
        if not remaining:
            self._log_step_done(job)
        log = job.log.bind(account_id=result.account_id, step_order=job.step.step_order, recipient_index=index)
        if result.recipient_status is not None:
            log.info("worker.status_updated", email=recipient.email, status=result.recipient_status)
        log.info(
            "worker.recipient_processed",
            email=recipient.email,
            outcome=result.status,
            next_due_at=outcome.next_due_at.isoformat() if outcome.next_due_at else None,
            remaining=len(remaining),
            error=result.error,
        )

    async def _activity(
        self,
        job: _Job,
        index: int,
        kind: str,
        now: datetime,
        account_id: str | None,
        message_id: str | None,
        error: str | None,
        smtp_code: int | None,
    ) -> None:
        await self.activities.insert_one(
            self._activity_doc(job, index, kind, now, account_id, message_id, error, smtp_code)
        )

    def _activity_doc(
        self,
        job: _Job,
        index: int,
        kind: str,
        now: datetime,
        account_id: str | None,
        message_id: str | None,
        error: str | None,
        smtp_code: int | None,
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "campaign_id": job.campaign.id,
            "lead_id": job.lead.id,
            "step_order": job.step.step_order,
            "recipient_index": index,
            "email": job.lead.recipients[index].email,
            "type": kind,
            "created_at": now,
        }
        for name, value in (("account_id", account_id), ("message_id", message_id), ("error", error)):
            if value is not None:
                doc[name] = value
        if smtp_code is not None:
            doc["smtp_code"] = smtp_code
        return doc


async def _durably(write: Callable[[], Awaitable[T]], log: Any) -> T:
    """Run a write that records a send, retrying database errors with backoff (bounded) before giving up."""
    for attempt in range(1, DURABLE_WRITE_ATTEMPTS + 1):
        try:
            return await write()
        except PyMongoError as exc:
            if attempt == DURABLE_WRITE_ATTEMPTS:
                raise
            delay = min(2.0, 0.05 * 2**attempt)
            log.warning("worker.db_error", error=str(exc), attempt=attempt, retry_in=delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def _lease_lost(log: Any, lead_id: Any) -> Outcome:
    log.warning("worker.lease_lost", reason="lease expired and another dispatcher took the lead")
    return Outcome("lease_lost", lead_id)


def _waiting_for_account(job: _Job, unavailable: NoAccountAvailable) -> Outcome:
    job.log.info("worker.waiting_for_account", retry_at=unavailable.retry_at.isoformat(), reason=unavailable.reason)
    return Outcome("no_account", job.lead.id, job.campaign.id, next_due_at=unavailable.retry_at)


def _remaining(job: _Job, index: int) -> list[int]:
    """The step's other recipients still to process once `index` is settled."""
    return [i for i in job.pending if i != index]


def _lead_log(doc: Mapping[str, Any], lease: Lease) -> Any:
    return get_logger(lead_id=str(lease.lead_id), campaign_id=str(doc.get("campaign_id")))


def _activity_type(result: RecipientResult) -> str:
    if result.status == "failed" and result.error and result.error.startswith("template error"):
        return "template_error"
    return result.status


def _from_ledger(doc: Mapping[str, Any]) -> RecipientResult:
    """The recipient outcome a settled ledger document stands for (used after a crash or a race)."""
    state = str(doc.get("state"))
    recipient_status = {"sent": "contacted", "uncertain": "uncertain"}.get(state, "failed")
    return RecipientResult(
        state if state in ("sent", "uncertain") else "failed",
        recipient_status,
        str(doc.get("account_id")) if doc.get("account_id") else None,
        str(doc.get("message_id")) if doc.get("message_id") else None,
        error=doc.get("last_error"),
        smtp_code=doc.get("smtp_code"),
    )


def outgoing_message(
    lead: Lead,
    step_order: int,
    index: int,
    account: EmailAccount,
    general: GeneralSettings | None,
    rendered: RenderedEmail,
) -> OutgoingMessage:
    """The message for one recipient, header values checked (InvalidHeader / ValueError when unsafe)."""
    recipient = lead.recipients[index]
    message = OutgoingMessage(
        message_id=make_message_id(lead.id, step_order, index, account.email.rpartition("@")[2]),
        from_email=account.email,
        from_name=(general.sender_name if general and general.sender_name else account.sender_name),
        to_email=recipient.email,
        to_name=display_name(recipient.fields),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
    )
    validate_message(message)
    return message


def display_name(fields: Mapping[str, Any]) -> str | None:
    name = fields.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    parts = [fields.get("first_name"), fields.get("last_name")]
    joined = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return joined or None


def _replace_lease(job: _Job, lease: Lease) -> _Job:
    return dataclasses.replace(job, lease=lease)


def suppression_keys(email: str) -> tuple[str, str]:
    """The `suppressions.value`s that block an address: the address itself and its domain."""
    lowered = email.lower()
    return lowered, lowered.rpartition("@")[2]


async def load_suppressions(coll: Any, emails: Collection[str]) -> dict[str, str]:
    """Suppressed values (address or domain) among `emails`, with their reasons, in one query."""
    values = sorted({key for email in emails for key in suppression_keys(email)})
    if not values:
        return {}
    return {
        str(doc["value"]): str(doc.get("reason", "listed"))
        async for doc in coll.find({"value": {"$in": values}}, projection={"value": 1, "reason": 1})
    }
