"""What an operator does to jobs: create, pause, resume, cancel, run now, requeue dead letters, and read one
with its executions' live counts. The CLI calls these; so may the HTTP API.

Pausing or cancelling a job reaches its running executions through their campaigns: a paused campaign's leads
are not claimed (those in flight finish), a cancelled execution's campaign is closed, and its recipients not
yet sent stay pending in its counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bson import ObjectId

from app.domain.collections import CAMPAIGN_LEADS, CAMPAIGNS, JOB_EXECUTIONS, JOBS
from app.domain.job_recipients import RecipientSourceError, read_recipient_file
from app.domain.job_specs import JobSpec, JobSpecError, first_run_at
from app.jobs import documents
from app.store import campaign_admin, jobs
from app.store import job_executions as executions
from app.store.client import Database
from app.store.documents import NotFound

RECENT_FAILURES = 50


class JobActionError(ValueError):
    """An action the job's state does not allow (resume a cancelled job); the message says what it is in."""


@dataclass(frozen=True)
class ExecutionView:
    """One execution with its counts as they are now (read from its leads while it runs)."""

    doc: Mapping[str, Any]
    counts: executions.Counts
    failures: tuple[Mapping[str, Any], ...] = ()  # failed recipients with their errors (dead letters marked)
    skips: tuple[Mapping[str, Any], ...] = ()  # skipped recipients with the reason (suppressed, unsubscribed)
    held: str | None = None  # why its sends are held (its campaign paused on a template error), if they are

    def as_json(self) -> dict[str, Any]:
        """The execution for --json: its fields, counts, failed and skipped recipients."""
        keep = ("_id", "job_id", "scheduled_for", "trigger", "state", "error", "created_at", "started_at")
        out = {k: self.doc.get(k) for k in (*keep, "finished_at", "pruned_at")}
        return {
            **out,
            "counts": self.counts.as_doc(),
            "failed_recipients": [dict(f) for f in self.failures],
            "skipped_recipients": [dict(f) for f in self.skips],
            "held_reason": self.held,
        }


async def create_job(db: Database, spec: JobSpec, now: datetime) -> dict[str, Any]:
    """Store a validated job after checking what it names exists; JobSpecError names the option otherwise.

    --template may be a template's id or name, --accounts ids or addresses: the job stores the ids.
    """
    try:
        template = await campaign_admin.find_template(db, spec.template_id)
    except (NotFound, campaign_admin.AdminError) as exc:
        raise JobSpecError("--template", f"--template {spec.template_id}: {exc} (outbound template list)") from None
    if spec.campaign_id and not await jobs.exists(db[CAMPAIGNS], spec.campaign_id):
        raise JobSpecError("--campaign-id", f"--campaign-id {spec.campaign_id}: no campaign has this id")
    try:
        accounts = await campaign_admin.resolve_accounts(db, spec.account_ids)
    except campaign_admin.AdminError as exc:
        raise JobSpecError("--accounts", f"--accounts: {exc}") from None
    if spec.source.kind == "file" and spec.source.path:
        try:  # read now as each run will, so a typo in the path is refused here and not at the first run
            read_recipient_file(spec.source.path, encoding=spec.source.encoding)
        except RecipientSourceError as exc:
            raise JobSpecError("--recipient-file", f"--recipient-file: {exc}") from None
    spec = replace(spec, template_id=template.id, account_ids=tuple(accounts))
    doc = documents.job_document(spec, first_run_at(spec, now), now)
    doc["_id"] = await jobs.insert(db[JOBS], doc)
    return doc


async def pause(db: Database, job_id: str, now: datetime) -> dict[str, Any]:
    """Pause a job: no new execution, and its running executions' sends are held."""
    job = await _move(db, job_id, "paused", jobs.PAUSABLE, now)
    await _set_campaigns(db, job["_id"], ("active", "draft"), "paused")
    return job


async def resume(db: Database, job_id: str, now: datetime) -> dict[str, Any]:
    """Resume a paused job: its held executions go on; runs missed meanwhile follow its misfire policy."""
    job = await _move(db, job_id, "active", jobs.RESUMABLE, now)
    await _set_campaigns(db, job["_id"], ("paused",), "active")
    return job


async def cancel(db: Database, job_id: str, now: datetime) -> tuple[dict[str, Any], list[ObjectId]]:
    """Cancel a job for good: no further run, and its open executions are cancelled; those executions' ids."""
    job = await _move(db, job_id, "cancelled", jobs.CANCELLABLE, now)
    await jobs.forget_next_run(db[JOBS], job["_id"])
    cancelled = await executions.cancel_open(db[JOB_EXECUTIONS], job["_id"], now)
    await executions.set_campaigns(db, cancelled, "completed", ("draft", "active", "paused"))
    return job, cancelled


async def run_now(db: Database, job_id: str, now: datetime) -> ObjectId:
    """An execution of the job now, beside its schedule (a recurring job's next run stays as it was)."""
    job = await jobs.get(db[JOBS], job_id)
    if job.get("status") not in ("active", "completed"):
        raise JobActionError(f"job {job_id} is {job.get('status')}: resume it first (outbound job resume {job_id})")
    created = await executions.create(db[JOB_EXECUTIONS], job["_id"], now, now, "run-now")
    if created is None:
        raise JobActionError(f"job {job_id} already has an execution for {now.isoformat()}: try again")
    return created


async def retry_dead(db: Database, execution_id: str, now: datetime) -> list[dict[str, Any]]:
    """Requeue an execution's dead letters (failed, not bounced) with a fresh retry budget; those requeued."""
    execution = await executions.get(db[JOB_EXECUTIONS], execution_id)
    if execution.get("state") in (executions.PENDING, executions.CANCELLED):
        raise JobActionError(f"execution {execution_id} is {execution.get('state')}: it has no dead letters to retry")
    if execution.get("pruned_at"):
        raise JobActionError(
            f"execution {execution_id} ended over OUTBOUND_JOB_RETENTION_DAYS ago and its recipients were deleted "
            f"on {execution['pruned_at']:%Y-%m-%d}: nothing is left to send again (run the job again instead: "
            f"outbound job run-now {execution['job_id']})"
        )
    job = await jobs.get(db[JOBS], execution["job_id"])
    if job.get("status") == "cancelled":
        raise JobActionError(f"job {job['_id']} is cancelled: its executions are not sent again")
    requeued = await executions.requeue_dead(db, execution["_id"], now)
    if requeued:
        counts = await executions.counts(db[CAMPAIGN_LEADS], execution["_id"])
        await executions.reopen(db[JOB_EXECUTIONS], execution["_id"], counts)
        status = "paused" if job.get("status") == "paused" else "active"
        await executions.set_campaigns(db, [execution["_id"]], status, ("completed", "active", "paused"))
    return requeued


async def view(db: Database, execution: Mapping[str, Any], failures: int = RECENT_FAILURES) -> ExecutionView:
    """An execution with its counts: live from its leads while it runs, as stored once its leads were deleted
    (its retention over: no failed or skipped recipients are left to list)."""
    leads = db[CAMPAIGN_LEADS]
    if execution.get("pruned_at"):
        return ExecutionView(execution, executions.Counts.stored(execution.get("counts")))
    if execution.get("state") in (executions.PENDING, executions.FAILED) and not execution.get("counts"):
        return ExecutionView(execution, executions.Counts())
    counts = await executions.counts(leads, execution["_id"])
    found = await executions.outcomes(leads, execution["_id"], ("failed",), failures) if counts.failed else []
    skipped = await executions.outcomes(leads, execution["_id"], ("skipped",), failures) if counts.skipped else []
    held = await executions.held_reason(db, execution["_id"]) if execution.get("state") == executions.RUNNING else None
    return ExecutionView(execution, counts, tuple(found), tuple(skipped), held)


async def recent(db: Database, job_id: ObjectId, limit: int) -> list[ExecutionView]:
    """The job's latest executions, newest first, with their counts."""
    return [await view(db, doc) for doc in await executions.of_job(db[JOB_EXECUTIONS], job_id, limit)]


async def _move(db: Database, job_id: str, status: str, allowed: tuple[str, ...], now: datetime) -> dict[str, Any]:
    before = await jobs.set_status(db[JOBS], job_id, status, allowed, now)
    if before is not None:
        return before
    job = await jobs.get(db[JOBS], job_id)  # NotFound when there is no such job
    raise JobActionError(
        f"job {job_id} is {job.get('status')}, and only a job that is {' or '.join(allowed)} can become {status}"
    )


async def _set_campaigns(db: Database, job_id: ObjectId, current: tuple[str, ...], status: str) -> None:
    running = await executions.open_of_job(db[JOB_EXECUTIONS], job_id)
    await executions.set_campaigns(db, running, status, current)
