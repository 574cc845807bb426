"""One pass of the job runner: create the executions that are due, write their recipients as leads, and
finish the executions whose recipients are all done.

    due job --create execution (unique per run)--> pending --resolve recipients, write leads--> running
    running --every lead completed or stopped--> completed | failed (every send failed)
    pending --recipients cannot be read--> failed (with the reason; nothing is sent)
    ended, OUTBOUND_JOB_RETENTION_DAYS later --> its campaign and leads deleted, its counts kept (pruned_at)

Every step is safe to run in several dispatchers at once and to repeat after a crash: executions are unique
per (job, scheduled time), the schedule moves on with a write fenced on the value read, a pending execution is
materialised under a lease, and a lead is written once per (execution, address).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain.collections import CAMPAIGN_LEADS, CAMPAIGNS, JOB_EXECUTIONS, JOBS
from app.domain.job_recipients import Recipient, RecipientSourceError, resolve, select
from app.domain.job_schedule import due_runs
from app.jobs import documents
from app.logging import get_logger
from app.store import job_executions as executions
from app.store import job_retention, jobs
from app.store.client import Database

MATERIALISE_PER_PASS = 10
STORED_RECIPIENTS_LIMIT = 200_000
HEAL_AFTER = timedelta(seconds=30)
# How often a runner looks for executions past their retention: the work is days old, an hour late is nothing.
PRUNE_EVERY = timedelta(hours=1)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class Pass:
    """What one pass did: executions created, started (their leads written), not started (their recipients
    could not be read, or the execution was cancelled or taken over meanwhile), finished."""

    created: int = 0
    started: int = 0
    failed: int = 0
    finished: int = 0
    pruned: int = 0  # executions whose recipients were deleted, their retention over

    @property
    def new_leads(self) -> bool:
        """True when leads became due (the dispatcher should scan at once)."""
        return self.started > 0


def decide(job: Mapping[str, Any], now: datetime) -> tuple[datetime | None, datetime | None]:
    """A due job's run to create now (None: none) and its next run time (None: a one-off job runs no more)."""
    recurring = documents.cron_of(job)
    scheduled = job["next_run_at"]
    if recurring is None:
        return scheduled, None
    cron, tz, misfire = recurring
    decision = due_runs(cron, tz, scheduled, now, misfire)
    return decision.run, decision.next_run_at


class JobRunner:
    """Runs due jobs for one dispatcher; any number of runners may share a database."""

    def __init__(
        self,
        db: Database,
        *,
        owner: str,
        lease_seconds: float = 120.0,
        retention_days: int = 30,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.retention_days = retention_days  # 0: keep every ended execution's recipients
        self._pruned_at: datetime | None = None
        self.jobs = db[JOBS]
        self.executions = db[JOB_EXECUTIONS]
        self.leads = db[CAMPAIGN_LEADS]
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.clock = clock

    async def run_pass(self) -> Pass:
        """Create due executions, start pending ones, finish those that are done."""
        done = Pass()
        done.created = await self.create_due(self.clock())
        for _ in range(MATERIALISE_PER_PASS):
            now = self.clock()
            execution = await executions.take_pending(self.executions, self.owner, now, self.lease_seconds)
            if execution is None:
                break
            if await self.materialise(execution, now):
                done.started += 1
            else:
                done.failed += 1
        done.finished = await self.finish_done(self.clock())
        now = self.clock()
        if self.retention_days and (self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY):
            done.pruned = await self.prune_ended(now)
            self._pruned_at = now
        return done

    async def prune_ended(self, now: datetime) -> int:
        """Delete the campaigns and leads of executions ended more than `retention_days` ago (a batch at a
        time, bounded), keeping their counts; how many executions were pruned."""
        pruned = 0
        for _ in range(job_retention.PRUNE_ROUNDS):
            batch = await job_retention.prunable(self.db, now, self.retention_days)
            for execution in batch:
                leads = await job_retention.prune(self.db, execution, now)
                get_logger(job_id=str(execution["job_id"]), execution_id=str(execution["_id"])).info(
                    "job.execution_pruned", leads_deleted=leads, finished_at=str(execution.get("finished_at"))
                )
            pruned += len(batch)
            if len(batch) < job_retention.PRUNE_BATCH:
                break
        return pruned

    async def create_due(self, now: datetime) -> int:
        """One execution per due run of every due job (however many runners race), and the schedule moved on."""
        created = 0
        for job in await jobs.due(self.jobs, now):
            log = get_logger(job_id=str(job["_id"]))
            try:
                run, following = decide(job, now)
            except (ValueError, KeyError) as exc:
                await jobs.set_status(self.jobs, job["_id"], "paused", jobs.PAUSABLE, now)
                log.error("job.invalid", error=str(exc), action="paused: fix or cancel the job")
                continue
            if run is not None:
                execution_id = await executions.create(self.executions, job["_id"], run, now, "schedule")
                if execution_id is not None:
                    created += 1
                    log.info("job.execution_created", execution_id=str(execution_id), scheduled_for=run.isoformat())
            await jobs.advance(self.jobs, job, following, now)
        return created

    async def materialise(self, execution: Mapping[str, Any], now: datetime) -> bool:
        """Resolve a leased pending execution's recipients and write them as leads; False when it failed."""
        log = get_logger(job_id=str(execution["job_id"]), execution_id=str(execution["_id"]))
        job = await jobs.find(self.jobs, execution["job_id"])
        try:
            if job is None:
                raise RecipientSourceError(f"job {execution['job_id']} no longer exists")
            recipients = await self.recipients(job, now)
            base = await self._base_settings(job)
        except RecipientSourceError as exc:
            await executions.fail_pending(self.executions, execution, str(exc), now)
            log.warning("job.execution_failed", error=str(exc))
            return False
        settings = documents.campaign_settings(job, base)
        campaign = documents.execution_campaign(job, execution, settings, now)
        await executions.open_campaign(self.db, campaign, documents.sequence_step(job))
        leads = documents.lead_documents(job["_id"], execution["_id"], recipients, now)
        await executions.insert_leads(self.leads, leads)
        total = await executions.count_leads(self.leads, execution["_id"])
        if not await executions.start(self.executions, execution, total, now):
            return False  # cancelled meanwhile (its campaign stays closed), or taken over by another runner
        # The leads become sendable only now: a cancel before the start above leaves every one of them unsent.
        status = "paused" if job.get("status") == "paused" else "active"
        await executions.set_campaigns(self.db, [execution["_id"]], status, ("draft",))
        log.info("job.execution_started", recipients=total)
        return True

    async def recipients(self, job: Mapping[str, Any], now: datetime) -> list[Recipient]:
        """The job's recipients as they are now: its list, its file read again, or the stored recipients that
        match its filters."""
        source = documents.source_of(job)
        if source.kind != "filter":
            return resolve(source, now)
        stored = await jobs.stored_recipients(self.leads, source.filters, STORED_RECIPIENTS_LIMIT)
        rows = [
            Recipient(e["email"], {str(k): str(v) for k, v in e.items() if k not in ("email", "status")})
            for e in stored
        ]
        return select(rows, source.filters)

    async def _base_settings(self, job: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The settings of the job's --campaign-id, read at every execution (its limits may have changed)."""
        if not job.get("campaign_id"):
            return None
        found = await jobs.settings_of(self.db[CAMPAIGNS], job["campaign_id"])
        if found is None:
            raise RecipientSourceError(
                f"campaign {job['campaign_id']} (the job's --campaign-id, whose accounts and limits it uses) "
                "no longer exists: cancel the job and create it again with another --campaign-id or --accounts"
            )
        return found

    async def finish_done(self, now: datetime) -> int:
        """Finish each running execution whose every lead is completed or stopped."""
        finished = 0
        for execution in await executions.running(self.executions):
            started = execution.get("started_at")
            if isinstance(started, datetime) and started < now - HEAL_AFTER:
                # A runner that died between starting the execution and opening its campaign left it a draft.
                await executions.set_campaigns(self.db, [execution["_id"]], "active", ("draft",))
            if await executions.unfinished(self.leads, execution["_id"]):
                continue
            counts = await executions.counts(self.leads, execution["_id"])
            every_send_failed = counts.failed > 0 and counts.sent + counts.uncertain == 0
            state = executions.FAILED if every_send_failed else executions.COMPLETED
            if not await executions.finish(self.executions, execution["_id"], state, counts, now):
                continue
            finished += 1
            await executions.set_campaigns(self.db, [execution["_id"]], "completed", ("active", "paused", "draft"))
            await jobs.complete(self.jobs, execution["job_id"], now)
            get_logger(job_id=str(execution["job_id"]), execution_id=str(execution["_id"])).info(
                "job.execution_finished", state=state, **counts.as_doc()
            )
        return finished
