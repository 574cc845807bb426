"""The send pipeline: one path for every claimed lead, alone or in a batch, first attempt or retry.

    claimed leads --plan--> skip / wait / step done / stop / complete / config error --settle--> lead writes
                        \\--> send: reserve --> compose --> ledger --> SMTP --> classify --> settle --> writes

Decisions are pure (`app/domain/planning.py`, `send/compose.py`, `domain/outcomes.py`,
`domain/settlement.py`) and see one `now` per batch; this module only carries them out, a list at a time, so a
batch of one costs what one lead always cost and a batch of twenty shares its round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from app.domain import planning
from app.domain.gates import GateContext
from app.domain.health import HealthPolicy
from app.domain.models import Campaign, InvalidDocument, Lead, SequenceStep
from app.domain.outcomes import RetryPolicy
from app.domain.planning import LeadPlan, threads_of
from app.domain.settlement import LeadContext, Outcome, RecipientResult, Settlement, advance, settle
from app.domain.templating import Renderer
from app.logging import get_logger
from app.metrics import registry as metrics
from app.send.compose import MAILTO_ONLY, UnsubscribeLinks
from app.send.delivery import Delivery
from app.send.items import SendItem
from app.send.lease_keeper import LeaseKeeper
from app.send.records import Records
from app.store import schema, suppressions
from app.store.arbiter import Arbiter
from app.store.catalog import Catalog
from app.store.client import Database
from app.store.leases import Lease
from app.transport.base import Sender

DB_ERROR_RETRY_SECONDS = 5.0


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class PipelineConfig:
    """How the pipeline retries, which accounts it may use and where unsubscribe requests go."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease_seconds: float = 120.0
    send_timeout_seconds: float = 30.0
    account_filter: frozenset[str] | None = None
    health: HealthPolicy = field(default_factory=HealthPolicy)
    unsubscribe: UnsubscribeLinks = MAILTO_ONLY
    default_domain_limit: int | None = None  # OUTBOUND_DEFAULT_DOMAIN_LIMIT: sends per hour to a domain without a row
    dns_servers: tuple[tuple[str, int], ...] = ()  # OUTBOUND_DNS_SERVERS: for domain limits grouped by MX


@dataclass
class _Claim:
    """One claimed lead on its way through the stages."""

    position: int
    doc: Mapping[str, Any]
    lease: Lease
    lead: Lead | None = None
    campaign: Campaign | None = None
    steps: Mapping[int, SequenceStep] = field(default_factory=dict)
    plan: LeadPlan | None = None

    def context(self) -> LeadContext:
        assert self.lead is not None and self.campaign is not None and self.plan and self.plan.step
        return LeadContext(self.lead, self.campaign, self.steps, self.plan.step, threads_of(self.doc))


class Pipeline:
    """Carries claimed leads through the stages; one instance serves a dispatcher's concurrent batches."""

    def __init__(
        self,
        db: Database,
        *,
        arbiter: Arbiter,
        sender: Sender,
        catalog: Catalog,
        renderer: Renderer,
        config: PipelineConfig,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.config = config
        self.clock = clock
        self.records = Records(db, arbiter)
        self.delivery = Delivery(
            db,
            arbiter=arbiter,
            sender=sender,
            catalog=catalog,
            renderer=renderer,
            config=config,
            pause=self.records.pause,
            clock=lambda: self.clock(),
        )

    def stop(self) -> None:
        """Start nothing new: sends not yet begun are released, those in the SMTP exchange finish."""
        self.delivery.stopping.set()

    def just_paused(self, campaign_id: str) -> bool:
        """True for a few seconds after this pipeline paused the campaign."""
        return self.records.just_paused(campaign_id)

    async def process_batch(
        self, items: Sequence[tuple[Mapping[str, Any], Lease]], suppressed: Mapping[str, str] | None = None
    ) -> list[Outcome]:
        """Carry claimed leads through the pipeline and release each; one outcome per lead, in order."""
        now = self.clock()
        claims = [_Claim(i, doc, lease) for i, (doc, lease) in enumerate(items)]
        outcomes: dict[int, Outcome] = {}
        keeper = LeaseKeeper(
            self.db[schema.CAMPAIGN_LEADS],
            [c.lease for c in claims],
            lease_seconds=self.config.lease_seconds,
            clock=self.clock,
        )
        try:
            writes: list[tuple[_Claim, Settlement]] = []
            async with keeper.kept():
                if suppressed is None:
                    suppressed = await suppressions.load(self.db[schema.SUPPRESSIONS], _emails(items))
                await self._plan(claims, GateContext(now, suppressed))
                sends: list[SendItem] = []
                for claim in claims:
                    await self._route(claim, now, outcomes, writes, sends)
                delivered = await self.delivery.run(sends, now, keeper)
            writes += [(claims[item.position], settlement) for item, settlement in delivered.settled]
            outcomes.update(delivered.outcomes)
            outcomes.update(await self.records.apply(now, [(c.position, c.lease, s) for c, s in writes]))
            await self.records.check_health([o for o in outcomes.values()], self.config.health, now)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.records.release_all([c.lease for c in claims if c.position not in outcomes]))
            raise
        except PyMongoError as exc:
            retry_at = now + timedelta(seconds=DB_ERROR_RETRY_SECONDS)
            get_logger().warning("worker.db_error", error=str(exc), retry_at=retry_at.isoformat())
            left = [c for c in claims if c.position not in outcomes]
            with contextlib.suppress(Exception):
                await self.records.release_all([c.lease for c in left], retry_at)
            for claim in left:
                outcomes[claim.position] = Outcome("db_error", claim.lease.lead_id, next_due_at=retry_at)
        return [outcomes[c.position] for c in claims]

    async def _plan(self, claims: list[_Claim], ctx: GateContext) -> None:
        for claim in claims:
            try:
                claim.lead = Lead.from_doc(claim.doc)
            except InvalidDocument as exc:
                claim.plan = LeadPlan(planning.STOP, reason=f"invalid lead: {exc}")
                get_logger(lead_id=str(claim.lease.lead_id)).error(
                    "worker.invalid_lead", field=exc.field, reason=exc.reason
                )
                continue
            campaign = await self.catalog.campaign(claim.lead.campaign_id)
            if campaign is not None and self.just_paused(campaign.id):
                campaign = None
            claim.campaign = campaign
            claim.steps = await self.catalog.steps(campaign.sequence_id) if campaign else {}
            claim.plan = planning.plan(claim.lead, campaign, claim.steps, ctx)

    async def _route(
        self,
        claim: _Claim,
        now: datetime,
        outcomes: dict[int, Outcome],
        writes: list[tuple[_Claim, Settlement]],
        sends: list[SendItem],
    ) -> None:
        """Turn a plan into a lead write, or hand it to delivery when a recipient is to be sent."""
        plan, lead_id = claim.plan, claim.lease.lead_id
        assert plan is not None
        campaign_id = claim.campaign.id if claim.campaign else None
        log = get_logger(lead_id=str(lead_id), campaign_id=str(campaign_id))
        _count_plan(plan, metrics.campaign_label(campaign_id, claim.campaign.job_id) if claim.campaign else None)
        if plan.action == planning.STOP and plan.skips:
            writes.append((claim, _stopped_after_skips(claim, plan, now)))
            log.info("worker.lead_stopped", reason=plan.reason)
            return
        if claim.lead is None or plan.action in (planning.UNSCHEDULE, planning.COMPLETE, planning.STOP):
            writes.append((claim, _final(claim, plan, now)))
            if plan.action == planning.STOP:
                log.info("worker.lead_stopped", reason=plan.reason)
            elif plan.action == planning.COMPLETE:
                log.info("worker.lead_completed")
            return
        if plan.action == planning.INACTIVE:
            writes.append((claim, _untouched(claim, "inactive", now)))
            return
        if plan.action == planning.CONFIG_ERROR:
            await self.records.pause(claim.lead.campaign_id, plan.reason or "configuration error", now)
            writes.append((claim, _untouched(claim, "paused", now)))
            return
        ctx = claim.context()
        skipped = [(i, RecipientResult("skipped", None, error=reason)) for i, reason in plan.skips]
        if plan.action == planning.WAIT:
            writes.append((claim, _waiting(ctx, skipped, plan, now)))
        elif plan.action == planning.STEP_DONE:
            writes.append((claim, settle(ctx, skipped, now) if skipped else advance(ctx, now)))
        else:
            assert plan.index is not None
            sends.append(SendItem(claim.position, ctx, claim.lease, plan.index, plan.avoid, tuple(skipped)))


def _count_plan(plan: LeadPlan, campaign_label: str | None) -> None:
    """The metrics of a plan: recipients skipped for good, and a wait for the sending window to open."""
    for _ in plan.skips:
        metrics.current().email("skipped", campaign_label, None)
    if plan.action == planning.WAIT and metrics.waits_for_window(plan.reason):
        metrics.current().refused(metrics.WINDOW_CLOSED)


def _final(claim: _Claim, plan: LeadPlan, now: datetime) -> Settlement:
    values: dict[str, Any] = {}
    kind = "skipped"
    if plan.action == planning.COMPLETE:
        values = {"progress.completed": True, "progress.completed_at": now}
        kind = "completed"
    elif plan.action == planning.STOP:
        values = {"progress.stopped": True, "progress.stopped_reason": plan.reason}
        kind = "invalid" if claim.lead is None else "skipped"
    campaign_id = claim.campaign.id if claim.campaign else None
    return Settlement(values, (), None, Outcome(kind, claim.lease.lead_id, campaign_id))


def _stopped_after_skips(claim: _Claim, plan: LeadPlan, now: datetime) -> Settlement:
    ctx = claim.context()
    base = settle(ctx, [(i, RecipientResult("skipped", None, error=r)) for i, r in plan.skips], now)
    values = {
        k: v for k, v in base.set.items() if not k.startswith(("progress.current_step_order", "progress.completed"))
    }
    values.update({"progress.stopped": True, "progress.stopped_reason": plan.reason})
    outcome = Outcome("skipped", ctx.lead.id, ctx.campaign.id)
    return Settlement(values, base.unset, None, outcome, base.activities)


def _untouched(claim: _Claim, kind: str, now: datetime) -> Settlement:
    """Hand the lead back as it was, due now (the dispatcher only claims leads of active campaigns)."""
    campaign_id = claim.lead.campaign_id if claim.lead else None
    return Settlement({}, (), now, Outcome(kind, claim.lease.lead_id, campaign_id, next_due_at=now))


def _waiting(ctx: LeadContext, skipped: list[tuple[int, RecipientResult]], plan: LeadPlan, now: datetime) -> Settlement:
    base = settle(ctx, skipped, now) if skipped else None
    due = plan.until or now
    outcome = Outcome("waiting", ctx.lead.id, ctx.campaign.id, next_due_at=due)
    if base is None:
        return Settlement({}, (), due, outcome)
    return Settlement(base.set, base.unset, due, outcome, base.activities)


def _emails(items: Sequence[tuple[Mapping[str, Any], Lease]]) -> list[str]:
    found = []
    for doc, _ in items:
        for r in doc.get("lead_data") or []:
            if isinstance(r, dict) and isinstance(r.get("email"), str):
                found.append(r["email"])
    return found
