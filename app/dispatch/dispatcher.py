"""The dispatcher loop: find due leads, claim them, hand them to a bounded pool of workers, stop cleanly.

A scan never blocks on a full pool: it claims only as many leads as there are free workers, and whatever it
leaves behind is found again by the next scan. Between scans it sleeps until the earliest next due time or the
poll interval, whichever comes first, and wakes early when a worker finishes. After a scan that took every due
lead with room to spare it waits `GATHER_SECONDS` before the next, so that a trickle is claimed a few at a time.

Beside the loop, a heartbeat task beats and reclaims what gone dispatchers left open (`heartbeat.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from app.dispatch.heartbeat import DispatcherHeartbeat
from app.dispatch.options import DispatcherOptions as DispatcherOptions
from app.dispatch.options import DispatcherStats as DispatcherStats
from app.dispatch.options import default_owner as default_owner
from app.dispatch.spare_leads import SpareLeads
from app.domain.models import Campaign
from app.domain.scheduling import sleep_seconds
from app.domain.settlement import Outcome
from app.logging import get_logger
from app.metrics import registry as metrics
from app.send.pipeline import Pipeline, utcnow
from app.store import leases, schema, suppressions
from app.store.catalog import Catalog
from app.store.client import Database
from app.store.leases import Lease

DB_RETRY_MAX_SECONDS = 30.0
CAMPAIGN_REFRESH_SECONDS = 1.0
CLAIM_SPREAD = 3
# After a scan that took every due lead and still had room (a trickle, not a backlog), the next one waits this
# long, so that a trickle is claimed a few leads at a time: a batch costs about a dozen commands whatever its
# size, so one lead per batch would keep the database busier at a low rate than at full throughput.
GATHER_SECONDS = 0.1
# A lead's outcome of these kinds means its email went out (or may have): its lateness is measured.
SENT_KINDS = frozenset({"sent", "uncertain"})


class Dispatcher:
    """Runs until stopped (or, with `once`, until nothing is due), processing due leads with `worker`."""

    def __init__(
        self,
        db: Database,
        pipeline: Pipeline,
        catalog: Catalog,
        options: DispatcherOptions,
        *,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.leads = db[schema.CAMPAIGN_LEADS]
        self.suppressions = db[schema.SUPPRESSIONS]
        self.pipeline = pipeline
        self.catalog = catalog
        self.options = options
        self.owner = owner or default_owner()
        self.clock = clock
        self.on_outcome = on_outcome
        self.stats = DispatcherStats()
        self._tasks: dict[asyncio.Task[None], int] = {}  # batch task -> leads it holds
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._rotation = 0
        self._refill_at = max(1, options.concurrency // 2)
        self._campaigns: tuple[float, list[Campaign]] | None = None
        self._windows: dict[str, leases.DueWindow] = {}  # campaign id -> where its oldest due leads are
        self._spare = SpareLeads()
        self._blocked: dict[str, datetime] = {}  # campaign id -> when an account may next send for it
        self.log = get_logger(dispatcher=self.owner)
        # The clock is read through the dispatcher: whoever runs it may replace `clock` after building it.
        self._beats = DispatcherHeartbeat(
            db, self.owner, lease_seconds=options.lease_seconds, clock=lambda: self.clock(), on_db_error=self._db_error
        )
        self.on_started: Callable[[], None] | None = None  # after the first beat (systemd's READY=1)

    def stop(self) -> None:
        """Stop claiming; in-flight leads finish (or are released) within the shutdown grace period."""
        self._stopping.set()
        self.pipeline.stop()
        self._wake.set()

    def wake(self) -> None:
        """Scan now instead of at the next poll: new leads were just made due (a job's execution)."""
        self._wake.set()

    async def run(self) -> DispatcherStats:
        """The loop. Database errors are logged and retried with backoff; they never end the loop."""
        self.log.info("dispatcher.started", concurrency=self.options.concurrency, once=self.options.once)
        failures = 0
        # The first beat comes before any reservation, so whatever this process holds has an owner to judge.
        if await self._beats.beat(self._in_flight):
            await self._beats.prune()
        if self.on_started is not None:
            self.on_started()
        heartbeat = asyncio.create_task(self._heartbeat(), name="heartbeat")
        try:
            while not self._stopping.is_set():
                if self._tasks and self.options.concurrency - self._in_flight < self._refill_at:
                    # Refill in batches: one scan per several finished leads keeps queries per email low.
                    await self._sleep(self.options.poll_interval)
                    continue
                try:
                    claimed, earliest, full = await self._scan()
                    failures = 0
                except PyMongoError as exc:
                    failures += 1
                    delay = min(DB_RETRY_MAX_SECONDS, 0.5 * 2 ** min(failures, 10))
                    self._db_error(exc, "scan", retry_in=delay, failures=failures)
                    await self._sleep(delay)
                    continue
                if self.options.once and claimed == 0 and not self._tasks and not self._due_soon(earliest):
                    break
                if claimed == 0 or self._in_flight >= self.options.concurrency:
                    await self._sleep(sleep_seconds(self.clock(), earliest, self.options.poll_interval))
                elif not full:  # every due lead taken, with room to spare: let the next few gather
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=GATHER_SECONDS)
        finally:
            await self._drain()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await self._beats.stopped()
        self.log.info("dispatcher.stopped", claimed=self.stats.claimed, outcomes=dict(self.stats.outcomes))
        return self.stats

    async def _heartbeat(self) -> None:
        """Beat every `beat_seconds`, then reclaim what gone dispatchers left open. Never ends the loop."""
        while True:
            await asyncio.sleep(self._beats.beat_seconds)
            if await self._beats.beat(self._in_flight) and await self._beats.reclaim():
                # Accounts may be free before the times the arbiter last gave for them: look now.
                self._blocked.clear()
                self._wake.set()

    def _db_error(self, exc: Exception, phase: str, **context: Any) -> None:
        """Count and log a database error, and keep it for the heartbeat (`outbound status` shows it)."""
        self.stats.db_errors += 1
        self.log.warning("dispatcher.db_error", error=str(exc), phase=phase, **context)
        self._beats.note_error(f"{phase}: {exc}")

    def _due_soon(self, earliest: datetime | None) -> bool:
        return earliest is not None and earliest <= self.clock()

    async def _active_campaigns(self) -> list[Campaign]:
        # Re-read at most every CAMPAIGN_REFRESH_SECONDS: pausing still takes effect within a second.
        now = time.monotonic()
        if self._campaigns is None or now - self._campaigns[0] >= CAMPAIGN_REFRESH_SECONDS:
            self._campaigns = (now, await self.catalog.active_campaigns(self.options.campaign_id))
        return [c for c in self._campaigns[1] if not self.pipeline.just_paused(c.id)]

    async def _scan(self) -> tuple[int, datetime | None, bool]:
        """Claim due leads for the free workers, campaigns in rotation; return (claimed, earliest due, whether
        some campaign filled a batch, so that more may be due at once)."""
        now = self.clock()
        active = await self._active_campaigns()
        campaigns = [c for c in active if self._blocked.get(c.id, now) <= now]
        blocked_until = [self._blocked[c.id] for c in active if self._blocked.get(c.id, now) > now]
        claimed, full = 0, False
        if campaigns:
            self._rotation = (self._rotation + 1) % len(campaigns)
            ordered = campaigns[self._rotation :] + campaigns[: self._rotation]
            for campaign in ordered:
                free = self.options.concurrency - self._in_flight
                if free <= 0 or self._stopping.is_set():
                    break
                limit = min(campaign.settings.batch_size or self.options.batch_size, free)
                taken = await self._claim_batch(campaign.id, limit)
                claimed += taken
                full |= taken >= limit
        # Only an idle scan needs to know when to wake up; a busy one is woken by finishing workers.
        if claimed:
            return claimed, None, full
        horizon = now + timedelta(seconds=self.options.poll_interval)
        due = await leases.earliest_due(self.leads, [c.id for c in campaigns], horizon)
        return 0, min([t for t in (due, *blocked_until) if t is not None], default=None), False

    async def _claim_batch(self, campaign_id: str, limit: int) -> int:
        now = self.clock()
        found = self._spare.take(campaign_id, limit)
        if found is None:
            # Read a few more than we can take and shuffle them, so racing dispatchers rarely fight over one
            # lead; the next claim takes what this one leaves.
            window = self._windows.setdefault(campaign_id, leases.DueWindow())
            found = await window.find(self.leads, now, campaign_id, limit * CLAIM_SPREAD)
            random.shuffle(found)
            found, left = found[:limit], found[limit:]
            self._spare.keep(campaign_id, left)
        due = {doc["_id"]: doc.get("progress", {}).get("next_due_at") for doc in found}
        claimed = await leases.claim_many(
            self.leads,
            [doc["_id"] for doc in found],
            owner=self.owner,
            now=now,
            lease_seconds=self.options.lease_seconds,
        )
        if len(claimed) < len(found):
            self._spare.drop(campaign_id)
        if claimed:
            # One suppression lookup for the whole batch instead of one per recipient.
            emails = [r.get("email") for doc, _ in claimed for r in doc.get("lead_data") or [] if isinstance(r, dict)]
            suppressed = await suppressions.load(self.suppressions, [e for e in emails if isinstance(e, str)])
            self.stats.claimed += len(claimed)
            self._start(claimed, suppressed, due)
        return len(claimed)

    def _start(
        self, claimed: list[tuple[dict[str, Any], Lease]], suppressed: dict[str, str], due: dict[Any, Any]
    ) -> None:
        task = asyncio.create_task(self._work(claimed, suppressed, due), name=f"batch-{claimed[0][1].lead_id}")
        self._tasks[task] = len(claimed)
        task.add_done_callback(self._done)

    @property
    def _in_flight(self) -> int:
        return sum(self._tasks.values())

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)
        self._wake.set()

    async def _work(
        self, claimed: list[tuple[dict[str, Any], Lease]], suppressed: dict[str, str], due: dict[Any, Any]
    ) -> None:
        """Process one claimed batch; `due` holds each lead's due time as found, before the claim moved it."""
        try:
            outcomes = await self.pipeline.process_batch(claimed, suppressed)
        except PyMongoError as exc:
            # The leads stay leased and become due again when the lease expires: nothing is lost.
            self.stats.db_errors += 1
            self.log.warning("worker.db_error", leads=len(claimed), error=str(exc))
            self._beats.note_error(f"pass: {exc}")
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.exception("worker.crashed", leads=[str(lease.lead_id) for _, lease in claimed])
            self._beats.note_error(f"pass crashed: {type(exc).__name__}: {exc}")
            return
        for outcome in outcomes:
            self.stats.outcomes[outcome.kind] += 1
            self._measure_lateness(outcome, due.get(outcome.lead_id))
            if outcome.kind == "no_account" and outcome.campaign_id and outcome.next_due_at:
                # No account may send for this campaign before then: claiming its leads meanwhile only costs
                # round trips.
                self._blocked[outcome.campaign_id] = outcome.next_due_at
            if self.on_outcome is not None:
                self.on_outcome(outcome)

    def _measure_lateness(self, outcome: Outcome, due_at: object) -> None:
        if outcome.kind in SENT_KINDS and isinstance(due_at, datetime):
            due_at = due_at if due_at.tzinfo is not None else due_at.replace(tzinfo=UTC)
            metrics.current().sent_late((self.clock() - due_at).total_seconds())

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, seconds))

    async def _drain(self) -> None:
        """Let in-flight leads finish within the grace period, then cancel the rest (they record what they did)."""
        if not self._tasks:
            return
        self.log.info("dispatcher.draining", in_flight=self._in_flight, grace=self.options.shutdown_grace_seconds)
        _, pending = await asyncio.wait(set(self._tasks), timeout=self.options.shutdown_grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=10.0)
