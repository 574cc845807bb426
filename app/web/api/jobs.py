"""`/api/v1/jobs` and `/api/v1/job-executions`: scheduled and recurring jobs, their executions' progress (sent,
failed, skipped, pending, percentage, failed recipients with their errors) and the operator's actions.

Every read and action is the one `outbound job ...` runs (`app/jobs/control.py`): a job's state is decided there,
never here. An unknown id is 404 naming it, an action the job's state refuses is 409 with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from app.jobs import control
from app.jobs.control import ExecutionView, JobActionError
from app.ops.errors import OpError
from app.store import job_executions, jobs
from app.store.documents import NotFound
from app.web.api import models
from app.web.api.errors import audited, read
from app.web.api.pagination import (
    CURSOR_QUERY,
    LIMIT_QUERY,
    BadCursor,
    bad_cursor,
    cursor_values,
    encode_cursor,
    page_in_memory,
)
from app.web.auth import Principal, Role, require

T = TypeVar("T")
VIEWER = Depends(require(Role.VIEWER))
OPERATOR = Depends(require(Role.OPERATOR))
# The job list is read whole and paged by id, like campaigns and accounts: jobs are definitions, not runs.
MAX_JOBS = 10_000
SHOWN_EXECUTIONS = 5


class JobSource(BaseModel):
    kind: str = Field(description="static (the addresses below), file (read again at each run) or stored.")
    addresses: list[str] = []
    path: str | None = Field(None, description="The recipient file's path (its contents are never returned).")
    filters: list[list[str]] = Field([], description="KEY=VALUE pairs a recipient must match, as [key, value].")
    encoding: str | None = None


class JobSummary(BaseModel):
    id: str
    name: str
    status: str = Field(description="active, paused, cancelled or completed.")
    schedule: str | None = Field(None, description="immediate, delayed or recurring.")
    cron: str | None = None
    timezone: str | None = None
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    created_at: datetime | None = None


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: str | None


class ExecutionCounts(BaseModel):
    total: int
    sent: int
    failed: int
    skipped: int
    uncertain: int
    pending: int = Field(description="Recipients neither sent, failed, skipped nor uncertain yet.")
    dead: int = Field(description="Failed recipients that retry-dead sends again (failed, not bounced).")
    percentage: float = Field(description="Share of recipients done, 0-100.")


class RecipientOutcome(BaseModel):
    lead_id: str
    email: str | None
    status: str | None
    error: str | None
    dead_letter: bool
    at: datetime | None


class JobExecution(BaseModel):
    id: str
    job_id: str
    scheduled_for: datetime | None
    trigger: str | None = Field(None, description="schedule or run-now.")
    state: str = Field(description="pending, running, completed, failed or cancelled.")
    error: str | None = Field(None, description="Why the execution failed (its recipients could not be read).")
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    pruned_at: datetime | None = Field(
        None, description="When its recipients were deleted (OUTBOUND_JOB_RETENTION_DAYS); its counts are kept."
    )
    counts: ExecutionCounts
    failed_recipients: list[RecipientOutcome] = Field(description="Failed recipients with their errors.")
    skipped_recipients: list[RecipientOutcome] = Field(description="Skipped recipients with the reason.")
    held_reason: str | None = Field(None, description="Why its sends are held (its campaign paused), if they are.")


class ExecutionPage(BaseModel):
    items: list[JobExecution]
    next_cursor: str | None


class JobDetail(JobSummary):
    template_id: str | None = None
    source: JobSource
    run_at: datetime | None = None
    misfire: str | None = None
    campaign_id: str | None = Field(None, description="The campaign whose accounts, limits and window it uses.")
    account_ids: list[str] = []
    max_retries: int | None = None
    updated_at: datetime | None = None
    executions: list[JobExecution] = Field(description=f"Its {SHOWN_EXECUTIONS} latest executions, newest first.")


class JobStatusChange(BaseModel):
    job_id: str
    before: str
    after: str
    cancelled_executions: list[str] = []


class RunNow(BaseModel):
    job_id: str
    execution_id: str = Field(description="The pending execution; a running dispatcher sends it within seconds.")


class RetriedDeadLetters(BaseModel):
    execution_id: str
    requeued: int
    recipients: list[str] = Field(description="The addresses sent again.")


async def job_operation(work: Awaitable[T]) -> T:
    """Await a job operation, its refusals as OpErrors: an unknown id `not_found`, a state that forbids it
    `conflict` (the API's 404 and 409, the dashboard's flash)."""
    try:
        return await work
    except NotFound as exc:
        raise OpError("not_found", str(exc)) from None
    except JobActionError as exc:
        raise OpError("conflict", str(exc)) from None


def job_summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a job every answer shows."""
    keep = ("name", "status", "schedule", "cron", "timezone", "next_run_at", "last_run_at", "created_at")
    return {"id": str(doc["_id"]), **{k: doc.get(k) for k in keep}}


def job_execution(view: ExecutionView) -> JobExecution:
    """An execution with its counts and recipients, as the API answers it."""
    fields = models.jsonable(view.as_json())
    fields["id"] = fields.pop("_id")
    return JobExecution.model_validate(fields)


def _detail(doc: Mapping[str, Any], views: list[ExecutionView]) -> JobDetail:
    more = ("template_id", "run_at", "misfire", "campaign_id", "account_ids", "max_retries", "updated_at")
    fields = models.jsonable({**job_summary(doc), **{k: doc.get(k) for k in more if doc.get(k) is not None}})
    source = JobSource.model_validate(models.jsonable(doc.get("source") or {"kind": "static"}))
    return JobDetail(**fields, source=source, executions=[job_execution(v) for v in views])


def _before(cursor: str | None) -> datetime | None:
    values = cursor_values(cursor, 1)
    if values is None:
        return None
    if not isinstance(values[0], datetime):
        raise bad_cursor(BadCursor("not a cursor of this list"))
    return values[0]


def jobs_router() -> APIRouter:
    """The job routes: reads for viewers, actions for operators."""
    router = APIRouter(prefix="/api/v1", tags=["jobs"])

    @router.get("/jobs", response_model=JobPage)
    async def list_jobs(
        request: Request, principal: Principal = VIEWER, cursor: str | None = CURSOR_QUERY, limit: int = LIMIT_QUERY
    ) -> JobPage:
        """Jobs by id (oldest first): status, schedule, next and last run (`outbound job list`)."""
        found = [job_summary(doc) for doc in await jobs.newest(request.app.state.db[jobs.JOBS], MAX_JOBS)]
        page, next_cursor = page_in_memory(found, lambda j: str(j["id"]), cursor, limit)
        return JobPage(items=[JobSummary(**models.jsonable(j)) for j in page], next_cursor=next_cursor)

    @router.get("/jobs/{job_id}", response_model=JobDetail)
    async def show_job(job_id: str, request: Request, principal: Principal = VIEWER) -> JobDetail:
        """A job's spec (the recipient file's path, not its contents), status, next run and its latest
        executions with their counts (`outbound job show`)."""
        db = request.app.state.db
        job = await read(jobs.get(db[jobs.JOBS], job_id))
        return _detail(job, await control.recent(db, job["_id"], SHOWN_EXECUTIONS))

    @router.get("/jobs/{job_id}/executions", response_model=ExecutionPage)
    async def list_executions(
        job_id: str,
        request: Request,
        principal: Principal = VIEWER,
        cursor: str | None = CURSOR_QUERY,
        limit: int = LIMIT_QUERY,
    ) -> ExecutionPage:
        """A job's executions, newest scheduled first: counts (total, sent, failed, skipped, pending,
        percentage), times, and failed recipients with their errors (dead letters marked)."""
        db = request.app.state.db
        job = await read(jobs.get(db[jobs.JOBS], job_id))
        docs = await job_executions.of_job_before(
            db[job_executions.JOB_EXECUTIONS], job["_id"], _before(cursor), limit + 1
        )
        page = docs[:limit]
        next_cursor = encode_cursor([page[-1]["scheduled_for"]]) if len(docs) > limit else None
        views = [await control.view(db, doc) for doc in page]
        return ExecutionPage(items=[job_execution(v) for v in views], next_cursor=next_cursor)

    _actions(router)
    return router


def _actions(router: APIRouter) -> None:
    @router.post("/jobs/{job_id}/pause", response_model=JobStatusChange)
    async def pause(job_id: str, request: Request, principal: Principal = OPERATOR) -> JobStatusChange:
        """Pause an active job: no new execution starts, and its running executions hold their remaining sends."""
        before = await audited(
            request,
            principal,
            "job.pause",
            {"job_id": job_id},
            lambda: job_operation(control.pause(request.app.state.db, job_id, datetime.now(UTC))),
        )
        return JobStatusChange(job_id=str(before["_id"]), before=str(before.get("status")), after="paused")

    @router.post("/jobs/{job_id}/resume", response_model=JobStatusChange)
    async def resume(job_id: str, request: Request, principal: Principal = OPERATOR) -> JobStatusChange:
        """Resume a paused job; runs missed meanwhile follow its misfire policy."""
        before = await audited(
            request,
            principal,
            "job.resume",
            {"job_id": job_id},
            lambda: job_operation(control.resume(request.app.state.db, job_id, datetime.now(UTC))),
        )
        return JobStatusChange(job_id=str(before["_id"]), before=str(before.get("status")), after="active")

    @router.post("/jobs/{job_id}/cancel", response_model=JobStatusChange)
    async def cancel(job_id: str, request: Request, principal: Principal = OPERATOR) -> JobStatusChange:
        """Cancel a job for good: no further run; its open executions are cancelled, unsent recipients left unsent."""
        before, cancelled = await audited(
            request,
            principal,
            "job.cancel",
            {"job_id": job_id},
            lambda: job_operation(control.cancel(request.app.state.db, job_id, datetime.now(UTC))),
            lambda done: {"cancelled_executions": [str(i) for i in done[1]]},
        )
        ids = [str(i) for i in cancelled]
        return JobStatusChange(
            job_id=str(before["_id"]), before=str(before.get("status")), after="cancelled", cancelled_executions=ids
        )

    @router.post("/jobs/{job_id}/run-now", response_model=RunNow)
    async def run_now(job_id: str, request: Request, principal: Principal = OPERATOR) -> RunNow:
        """Run the job once now, beside its schedule (a recurring job's next run stays as it was)."""
        created = await audited(
            request,
            principal,
            "job.run_now",
            {"job_id": job_id},
            lambda: job_operation(control.run_now(request.app.state.db, job_id, datetime.now(UTC))),
            lambda execution_id: {"execution_id": str(execution_id)},
        )
        return RunNow(job_id=job_id, execution_id=str(created))

    @router.post("/job-executions/{execution_id}/retry-dead", response_model=RetriedDeadLetters)
    async def retry_dead(execution_id: str, request: Request, principal: Principal = OPERATOR) -> RetriedDeadLetters:
        """Send an execution's dead letters again (failed after every retry, not bounced), each with a fresh retry
        budget, once their cause is fixed."""
        requeued = await audited(
            request,
            principal,
            "job.retry_dead",
            {"execution_id": execution_id},
            lambda: job_operation(control.retry_dead(request.app.state.db, execution_id, datetime.now(UTC))),
            lambda done: {"requeued": len(done)},
        )
        emails = [str(r.get("email")) for r in requeued]
        return RetriedDeadLetters(execution_id=execution_id, requeued=len(requeued), recipients=emails)
