"""What the job runner would start now, for `run-dispatcher --dry-run`: reads only.

A running execution's recipients are leads of its campaign, so the dry run's table already shows them. What it
cannot show as rows are the runs not begun: a due job's next run (the runner would create its execution) and
executions created but not yet started (`pending`). For each, the recipients are resolved as the runner would
resolve them now (the list, the file read again, the stored recipients matching the filters), and those on the
suppression list are counted apart: the pipeline would skip them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.collections import JOB_EXECUTIONS, JOBS, SUPPRESSIONS
from app.domain.gates import suppression_keys
from app.domain.job_recipients import RecipientSourceError
from app.jobs.runner import JobRunner, decide
from app.store import job_executions as executions
from app.store import jobs, suppressions
from app.store.client import Database

PREVIEW_LIMIT = 50  # due jobs and pending executions described, each


@dataclass(frozen=True)
class JobRun:
    """A run the job runner would start now: of which job, for which scheduled time, with how many recipients."""

    job_id: str
    job_name: str
    scheduled_for: datetime
    pending: bool  # True: its execution exists and waits to start; False: the runner would create it
    recipients: int = 0
    suppressed: int = 0
    error: str | None = None  # why it would fail instead (its recipients cannot be read, its job is invalid)

    def describe(self) -> str:
        """One line for the dry run's notes."""
        what = "its pending execution" if self.pending else "a new execution"
        when = self.scheduled_for.isoformat(timespec="seconds")
        head = f"job {self.job_name} ({self.job_id}): {what} for {when} would start"
        if self.error is not None:
            return f"{head} and fail: {self.error}"
        skipped = f", {self.suppressed} of them suppressed (skipped)" if self.suppressed else ""
        noun = "recipient" if self.recipients == 1 else "recipients"
        return (
            f"{head} with {self.recipients} {noun}{skipped}; its sends are not in the table "
            "(its leads are written when it starts)"
        )


async def runs_due(db: Database, now: datetime) -> list[JobRun]:
    """The executions the runner would create and start at `now`, read without writing anything."""
    runner = JobRunner(db, owner="dry-run", retention_days=0, clock=lambda: now)
    found: list[JobRun] = []
    for job in await jobs.due(db[JOBS], now, limit=PREVIEW_LIMIT):
        try:
            run, _ = decide(job, now)
        except (ValueError, KeyError) as exc:
            found.append(
                _failed(job, job.get("next_run_at") or now, False, f"the job is invalid ({exc}): it would pause")
            )
            continue
        if run is not None:
            found.append(await _resolved(db, runner, job, run, pending=False, now=now))
    pending = db[JOB_EXECUTIONS].find({"state": executions.PENDING}, sort=[("scheduled_for", 1)], limit=PREVIEW_LIMIT)
    async for execution in pending:
        owner = await jobs.find(db[JOBS], execution["job_id"])
        scheduled = execution.get("scheduled_for") or now
        if owner is None:
            found.append(_failed({"_id": execution["job_id"]}, scheduled, True, "its job no longer exists"))
        else:
            found.append(await _resolved(db, runner, owner, scheduled, pending=True, now=now))
    return found


async def _resolved(
    db: Database, runner: JobRunner, job: Mapping[str, Any], run: datetime, *, pending: bool, now: datetime
) -> JobRun:
    try:
        recipients = await runner.recipients(job, now)
    except RecipientSourceError as exc:
        return _failed(job, run, pending, str(exc))
    emails = [r.email for r in recipients]
    listed = await suppressions.load(db[SUPPRESSIONS], emails)
    blocked = sum(1 for email in emails if any(key in listed for key in suppression_keys(email)))
    name = str(job.get("name") or job["_id"])
    return JobRun(str(job["_id"]), name, run, pending, len(recipients), blocked)


def _failed(job: Mapping[str, Any], run: datetime, pending: bool, error: str) -> JobRun:
    return JobRun(str(job["_id"]), str(job.get("name") or job["_id"]), run, pending, error=error)
