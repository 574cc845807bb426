"""`/dashboard/jobs` (recent jobs, each with its latest execution's progress and its next run) and
`/dashboard/jobs/{id}` (its executions with progress bars and failed recipients with their errors), with the
pause, resume and run-now buttons.

What a page shows is what `outbound job show` prints (`app/jobs/control.py`), and each button runs the same
operation as `outbound job pause | resume | run-now`, audited, through the dashboard's action helper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.jobs import control
from app.jobs.control import ExecutionView
from app.store import jobs
from app.store.documents import NotFound
from app.web.api.jobs import job_operation
from app.web.auth import Principal, Role, require_page
from app.web.dashboard.actions import back_to, database, now_utc, run_action
from app.web.dashboard.campaign_pages import problem_page
from app.web.templating import render

JOBS_PAGE = "/dashboard/jobs"
# The list shows the newest jobs, the page of one job its newest executions: `outbound job ...` has the rest.
MAX_JOBS = 100
SHOWN_EXECUTIONS = 20


@dataclass(frozen=True)
class JobRow:
    """A job with its latest execution (None before its first run), as the pages show them."""

    job: Mapping[str, Any]
    latest: ExecutionView | None

    @property
    def id(self) -> str:
        """The job's id as text (for links and forms)."""
        return str(self.job["_id"])


def schedule_text(job: Mapping[str, Any]) -> str:
    """When a job runs, in words: its cron and zone, or immediate / delayed (pure)."""
    if job.get("cron"):
        return f"cron {job['cron']} ({job.get('timezone') or 'UTC'})"
    return str(job.get("schedule") or "-")


def recipients_text(job: Mapping[str, Any]) -> str:
    """Who a job sends to: its file (never its contents), its addresses, or stored recipients, with filters."""
    source = job.get("source") or {}
    who = source.get("path") or ", ".join(source.get("addresses") or []) or "stored recipients"
    filters = " ".join(f"{k}={v}" for k, v in source.get("filters") or [])
    return f"{who} {filters}".strip()


def job_router() -> APIRouter:
    """The job pages and their buttons."""
    router = APIRouter(include_in_schema=False)

    @router.get(JOBS_PAGE, response_class=HTMLResponse)
    async def jobs_page(request: Request, _: Principal = Depends(require_page(Role.VIEWER))) -> HTMLResponse:
        """The newest jobs: status, schedule, next run and their latest execution's progress."""
        db = database(request)
        found = await jobs.newest(db[jobs.JOBS], MAX_JOBS + 1)
        rows = []
        for job in found[:MAX_JOBS]:
            latest = await control.recent(db, job["_id"], 1)
            rows.append(JobRow(job, latest[0] if latest else None))
        return render(request, "dashboard/jobs.html", rows=rows, more=len(found) > MAX_JOBS, schedule=schedule_text)

    @router.get(JOBS_PAGE + "/{job_id}", response_class=HTMLResponse)
    async def job_page(
        request: Request, job_id: str, _: Principal = Depends(require_page(Role.VIEWER))
    ) -> HTMLResponse:
        """One job: its spec, status, next run, and its executions with their counts and failed recipients."""
        db = database(request)
        try:
            job = await jobs.get(db[jobs.JOBS], job_id)
        except NotFound as exc:
            return problem_page(request, exc, JOBS_PAGE)
        views = await control.recent(db, job["_id"], SHOWN_EXECUTIONS)
        return render(
            request,
            "dashboard/job.html",
            row=JobRow(job, views[0] if views else None),
            executions=views,
            schedule=schedule_text(job),
            recipients=recipients_text(job),
            shown=SHOWN_EXECUTIONS,
        )

    _actions(router)
    return router


def _actions(router: APIRouter) -> None:
    operator = require_page(Role.OPERATOR)

    @router.post(JOBS_PAGE + "/{job_id}/pause")
    async def pause(
        request: Request, job_id: str, back: str | None = Form(None), principal: Principal = Depends(operator)
    ) -> RedirectResponse:
        """Pause an active job: no new run, and its running executions hold their remaining sends."""
        return await run_action(
            request,
            principal,
            "job.pause",
            {"job_id": job_id},
            lambda: job_operation(control.pause(database(request), job_id, now_utc())),
            lambda job: f"Job {job.get('name')} paused: no new run starts, and running executions hold their sends.",
            back_to(back, f"{JOBS_PAGE}/{job_id}"),
        )

    @router.post(JOBS_PAGE + "/{job_id}/resume")
    async def resume(
        request: Request, job_id: str, back: str | None = Form(None), principal: Principal = Depends(operator)
    ) -> RedirectResponse:
        """Resume a paused job (runs missed meanwhile follow its misfire policy)."""
        return await run_action(
            request,
            principal,
            "job.resume",
            {"job_id": job_id},
            lambda: job_operation(control.resume(database(request), job_id, now_utc())),
            lambda job: f"Job {job.get('name')} resumed.",
            back_to(back, f"{JOBS_PAGE}/{job_id}"),
        )

    @router.post(JOBS_PAGE + "/{job_id}/run-now")
    async def run_now(
        request: Request, job_id: str, back: str | None = Form(None), principal: Principal = Depends(operator)
    ) -> RedirectResponse:
        """Run the job once now, beside its schedule."""
        return await run_action(
            request,
            principal,
            "job.run_now",
            {"job_id": job_id},
            lambda: job_operation(control.run_now(database(request), job_id, now_utc())),
            lambda execution_id: f"Execution {execution_id} is pending: a running dispatcher sends it within seconds.",
            back_to(back, f"{JOBS_PAGE}/{job_id}"),
        )
