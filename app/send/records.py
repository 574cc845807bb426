"""Record: apply a batch's settlements to the leads (one fenced bulk write), then their activities (one insert).

A lead whose lease was lost gets none of the batch's writes and its activities are not written: its new holder
decides for it. Campaign pauses (configuration errors, error rate) are remembered briefly so leads of it
already claimed here are handed back untouched instead of failing too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from app.domain.health import HealthPolicy
from app.domain.settlement import Outcome, Settlement
from app.logging import get_logger
from app.store import campaigns as campaign_store
from app.store import leases, schema
from app.store.arbiter import Arbiter
from app.store.client import Database
from app.store.leases import Lease

PAUSE_MEMORY_SECONDS = 10.0


class Records:
    """The pipeline's last stage: lead releases, activities and campaign health, a batch at a time."""

    def __init__(self, db: Database, arbiter: Arbiter) -> None:
        self.db = db
        self.leads = db[schema.CAMPAIGN_LEADS]
        self.activities = db[schema.ACTIVITIES]
        self.arbiter = arbiter
        self._paused: dict[str, float] = {}

    def just_paused(self, campaign_id: str) -> bool:
        """True for a few seconds after this process paused the campaign."""
        paused_at = self._paused.get(campaign_id)
        return paused_at is not None and time.monotonic() - paused_at < PAUSE_MEMORY_SECONDS

    async def pause(self, campaign_id: str, reason: str, now: datetime) -> None:
        """Pause a campaign for the operator's error (a template, a sequence): its leads wait, nothing fails."""
        self._paused[campaign_id] = time.monotonic()
        await campaign_store.pause(self.db, campaign_id, reason, now)

    async def apply(self, now: datetime, writes: Sequence[tuple[int, Lease, Settlement]]) -> dict[int, Outcome]:
        """Release each lead with its settlement; {position: outcome}, `lease_lost` where the fence refused."""
        if not writes:
            return {}
        releases = [(lease, leases.release_update(s.next_due_at, s.set, s.unset)) for _, lease, s in writes]
        landed = await leases.release_many(self.leads, releases)
        activities = [doc for (_, _, s), ok in zip(writes, landed, strict=True) if ok for doc in s.activities]
        if activities:
            await self.activities.insert_many(activities, ordered=False)
        done: dict[int, Outcome] = {}
        for (position, lease, settlement), ok in zip(writes, landed, strict=True):
            log = get_logger(lead_id=str(lease.lead_id), campaign_id=str(settlement.outcome.campaign_id))
            if not ok:
                log.warning("worker.lease_lost", reason="lease expired and another dispatcher took the lead")
                done[position] = Outcome("lease_lost", lease.lead_id)
                continue
            _log_settled(log, settlement)
            done[position] = settlement.outcome
        return done

    async def release_all(self, held: Sequence[Lease], due: datetime | None = None) -> None:
        """Give leads back untouched, due at `due` (None: now), e.g. on a database error or a stop."""
        if held:
            when = due or datetime.now(tz=held[0].until.tzinfo)
            await leases.release_many(self.leads, [(lease, leases.release_update(when)) for lease in held])

    async def check_health(self, outcomes: Sequence[Outcome], policy: HealthPolicy, now: datetime) -> None:
        """Pause campaigns whose recent attempts mostly fail (once per campaign per batch, only after failures)."""
        failing = {o.campaign_id for o in outcomes if o.kind in ("failed", "retry") and o.campaign_id}
        for campaign_id in sorted(failing):
            if await campaign_store.check_campaign(self.db, campaign_id, policy, now):
                self._paused[campaign_id] = time.monotonic()


def _log_settled(log: Any, settlement: Settlement) -> None:
    """One DEBUG line per recipient settled; the step's completion at INFO."""
    due = settlement.outcome.next_due_at.isoformat() if settlement.outcome.next_due_at else None
    for doc in settlement.activities:
        log.debug(
            "worker.recipient_processed",
            account_id=doc.get("account_id"),
            step_order=doc.get("step_order"),
            recipient_index=doc["recipient_index"],
            email=doc["email"],
            outcome=doc["type"],
            next_due_at=due,
            error=doc.get("error"),
        )
    if settlement.step_completed:
        log.info("worker.step_completed", next_due_at=due)
