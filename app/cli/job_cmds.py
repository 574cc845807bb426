"""`outbound job ...`: scheduled and recurring sends (create, list, show, executions, pause, resume, cancel,
run-now, retry-dead). The dispatcher (`run-dispatcher`) runs them; these commands only read and change jobs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

from app.cli.common import JSON_OPTION, console, fail, fmt_time, now_utc, print_json, print_table, run_db, settings_of
from app.domain.job_specs import JobInput, JobSpecError, validate_job
from app.jobs import control
from app.jobs.control import ExecutionView, JobActionError
from app.store import job_executions, jobs
from app.store.client import Database

T = TypeVar("T")
job_app = typer.Typer(help="Scheduled and recurring sends: one-off, delayed and cron jobs.", no_args_is_help=True)
JOB_ARGUMENT = typer.Argument(..., help="Job _id.")
WATCH_OPTION = typer.Option(False, "--watch", help="Refresh the progress every second until no execution runs.")
WATCH_LIMIT_SECONDS = 3600.0  # --watch gives up after an hour: a longer run is looked at again
SHOWN_EXECUTIONS = 5


def _run(ctx: typer.Context, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work`; an option or action the job refuses exits 1 with its reason (and changes nothing)."""
    try:
        return run_db(settings_of(ctx), work)
    except JobSpecError as exc:
        fail(str(exc), code=2)
    except JobActionError as exc:
        fail(str(exc))


def create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="What the job is called in lists."),
    template: str = typer.Option(..., "--template", help="Template _id or name to send."),
    recipients: str | None = typer.Option(None, "--recipients", help="Addresses, comma-separated."),
    recipient_file: str | None = typer.Option(None, "--recipient-file", help="CSV or JSON file, re-read every run."),
    recipient_filter: list[str] | None = typer.Option(
        None, "--recipient-filter", help="KEY=VALUE (repeatable): the file's rows, or stored recipients, that match."
    ),
    encoding: str | None = typer.Option(None, "--encoding", help="The recipient file's encoding (default: detect)."),
    schedule: str | None = typer.Option(None, "--schedule", help="immediate, delayed or recurring."),
    run_at: str | None = typer.Option(None, "--run-at", help="A delayed job's time, ISO 8601 (naive: --timezone)."),
    cron: str | None = typer.Option(None, "--cron", help="A recurring job's cron expression, e.g. '0 8 * * 1-5'."),
    timezone: str | None = typer.Option(None, "--timezone", help="IANA zone of --cron and a naive --run-at."),
    misfire: str | None = typer.Option(None, "--misfire", help="Runs missed while down: run_once (default) or skip."),
    campaign_id: str | None = typer.Option(None, "--campaign-id", help="Send with this campaign's accounts/limits."),
    accounts: str | None = typer.Option(None, "--accounts", help="Sending account ids or addresses, comma-separated."),
    max_retries: int | None = typer.Option(None, "--max-retries", help="Retries of a failed recipient, 0-20."),
    allow_past: bool = typer.Option(False, "--allow-past", help="Accept a --run-at in the past (runs at once)."),
    json_: bool = JSON_OPTION,
) -> None:
    """Create a job: who gets which template, when, and through which accounts.

    Example: outbound job create --name Digest --template digest --recipient-file subscribers.csv
    --cron "0 8 * * 1-5" --timezone Europe/Berlin --campaign-id 665f1c...
    """
    now = now_utc()
    raw = JobInput(
        name=name,
        template=template,
        recipients=recipients,
        recipient_file=recipient_file,
        recipient_filters=tuple(recipient_filter or ()),
        encoding=encoding,
        schedule=schedule,
        run_at=run_at,
        cron=cron,
        timezone=timezone,
        misfire=misfire,
        campaign_id=campaign_id,
        accounts=accounts,
        max_retries=max_retries,
    )
    try:
        spec = validate_job(raw, now, allow_past=allow_past)
    except JobSpecError as exc:
        fail(str(exc), code=2)
    job = _run(ctx, lambda db: control.create_job(db, spec, now))
    if json_:
        print_json(job)
        return
    console.print(f"Created job {job['_id']} ({job['schedule']}); first run {fmt_time(job['next_run_at'])} UTC.")


def list_jobs(
    ctx: typer.Context,
    limit: int = typer.Option(100, "--limit", min=1, help="Show at most N jobs, newest first."),
    json_: bool = JSON_OPTION,
) -> None:
    """List jobs, newest first: schedule, status, next and last run."""
    found = run_db(settings_of(ctx), lambda db: jobs.newest(db[jobs.JOBS], limit), read_only=True)
    if json_:
        print_json({"jobs": found})
        return
    rows = [
        (
            j["_id"],
            j.get("name"),
            _when(j),
            j.get("status"),
            fmt_time(j.get("next_run_at")),
            fmt_time(j.get("last_run_at")),
        )
        for j in found
    ]
    print_table("Jobs", ["id", "name", "schedule", "status", "next run (UTC)", "last run (UTC)"], rows)


def show(ctx: typer.Context, job_id: str = JOB_ARGUMENT, watch: bool = WATCH_OPTION, json_: bool = JSON_OPTION) -> None:
    """A job, and the progress of its latest executions (bars while they run)."""

    async def read(db: Database) -> tuple[dict[str, Any], list[ExecutionView]]:
        job = await jobs.get(db[jobs.JOBS], job_id)
        return job, await control.recent(db, job["_id"], SHOWN_EXECUTIONS)

    if json_:
        job, views = run_db(settings_of(ctx), read, read_only=True)
        print_json({**job, "executions": [v.as_json() for v in views]})
        return

    def draw(found: tuple[dict[str, Any], list[ExecutionView]]) -> RenderableType:
        return Group(_job_table(found[0]), _executions_table(found[1]), *_failures(found[1]))

    _render(ctx, read, draw, watch, lambda f: f[1])


def executions(
    ctx: typer.Context,
    job_id: str = JOB_ARGUMENT,
    limit: int = typer.Option(20, "--limit", min=1, help="Show the N latest executions."),
    watch: bool = WATCH_OPTION,
    json_: bool = JSON_OPTION,
) -> None:
    """A job's executions, newest first: counts, progress, failed recipients and dead letters."""

    async def read(db: Database) -> list[ExecutionView]:
        job = await jobs.get(db[jobs.JOBS], job_id)
        return await control.recent(db, job["_id"], limit)

    if json_:
        print_json({"executions": [v.as_json() for v in run_db(settings_of(ctx), read, read_only=True)]})
        return
    _render(ctx, read, lambda views: Group(_executions_table(views), *_failures(views)), watch, lambda v: v)


def pause(ctx: typer.Context, job_id: str = JOB_ARGUMENT) -> None:
    """Pause a job: no new run starts, and its running executions hold their remaining sends."""
    _run(ctx, lambda db: control.pause(db, job_id, now_utc()))
    console.print(f"Paused job {job_id}.")


def resume(ctx: typer.Context, job_id: str = JOB_ARGUMENT) -> None:
    """Resume a paused job (runs missed meanwhile follow its --misfire policy)."""
    _run(ctx, lambda db: control.resume(db, job_id, now_utc()))
    console.print(f"Resumed job {job_id}.")


def cancel(ctx: typer.Context, job_id: str = JOB_ARGUMENT) -> None:
    """Cancel a job for good: no further run; its open executions are cancelled, unsent recipients left unsent."""
    _, cancelled = _run(ctx, lambda db: control.cancel(db, job_id, now_utc()))
    console.print(f"Cancelled job {job_id} ({len(cancelled)} open executions cancelled).")


def run_now(ctx: typer.Context, job_id: str = JOB_ARGUMENT) -> None:
    """Run a job once now, beside its schedule (a running dispatcher sends it within seconds)."""
    execution_id = _run(ctx, lambda db: control.run_now(db, job_id, now_utc()))
    console.print(f"Execution {execution_id} of job {job_id} is pending; run-dispatcher sends it.")


def retry_dead(
    ctx: typer.Context,
    execution_id: str = typer.Argument(..., help="Job execution _id (job executions lists them)."),
    json_: bool = JSON_OPTION,
) -> None:
    """Send an execution's dead letters again (recipients that failed after every retry), once the cause is fixed.

    Each gets a fresh retry budget; bounced recipients are not retried (their addresses are suppressed).
    """
    requeued = _run(ctx, lambda db: control.retry_dead(db, execution_id, now_utc()))
    if json_:
        print_json({"execution_id": execution_id, "requeued": requeued})
        return
    console.print(f"Requeued {len(requeued)} dead letters of execution {execution_id}.")


def _when(job: Mapping[str, Any]) -> str:
    if job.get("cron"):
        return f"cron {job['cron']} ({job.get('timezone') or 'UTC'})"
    return str(job.get("schedule"))


def _job_table(job: Mapping[str, Any]) -> Table:
    table = Table(title=f"Job {job['_id']}", title_justify="left", show_header=False)
    source = job.get("source") or {}
    recipients = source.get("path") or ", ".join(source.get("addresses") or []) or "stored recipients"
    filters = " ".join(f"{k}={v}" for k, v in source.get("filters") or [])
    rows = [
        ("name", job.get("name")),
        ("status", job.get("status")),
        ("schedule", _when(job)),
        ("template", job.get("template_id")),
        ("recipients", f"{recipients} {filters}".strip()),
        ("sending", job.get("campaign_id") or ", ".join(job.get("account_ids") or []) or "every active account"),
        ("max retries", job.get("max_retries") if job.get("max_retries") is not None else "default"),
        ("next run (UTC)", fmt_time(job.get("next_run_at"))),
        ("last run (UTC)", fmt_time(job.get("last_run_at"))),
    ]
    for key, value in rows:
        table.add_row(key, str(value))
    return table


def _executions_table(views: Sequence[ExecutionView]) -> Table:
    table = Table(title="Executions", title_justify="left")
    for column in ("id", "scheduled (UTC)", "state", "progress", "%", "total", "sent", "failed", "skipped", "pending"):
        table.add_column(column)
    for v in views:
        c = v.counts
        bar = ProgressBar(total=max(c.total, 1), completed=c.total - c.pending if c.total else 0, width=20)
        cells: list[RenderableType] = [str(v.doc["_id"]), fmt_time(v.doc.get("scheduled_for")), str(v.doc["state"])]
        cells += [bar, f"{c.percentage:g}", *(str(n) for n in (c.total, c.sent, c.failed, c.skipped, c.pending))]
        table.add_row(*cells)
    return table


def _failures(views: Sequence[ExecutionView]) -> list[RenderableType]:
    """Per execution: why it failed, and its failed recipients (dead letters marked)."""
    out: list[RenderableType] = []
    for v in views:
        if v.doc.get("error"):
            out.append(f"execution {v.doc['_id']} failed: {v.doc['error']}")
        if v.held:
            out.append(f"execution {v.doc['_id']} is held: {v.held} (then: outbound campaign resume {v.doc['_id']})")
        if v.doc.get("pruned_at"):
            out.append(
                f"execution {v.doc['_id']}: its recipients were deleted on {fmt_time(v.doc['pruned_at'])} "
                "(OUTBOUND_JOB_RETENTION_DAYS); its counts are kept"
            )
        if v.failures:
            table = Table(title=f"Failed recipients of {v.doc['_id']}", title_justify="left")
            for column in ("email", "error", "dead letter"):
                table.add_column(column)
            for f in v.failures:
                table.add_row(str(f.get("email")), str(f.get("error") or "-"), "yes" if f.get("dead_letter") else "no")
            out.append(table)
    return out


def _render(
    ctx: typer.Context,
    read: Callable[[Database], Awaitable[T]],
    draw: Callable[[T], RenderableType],
    watch: bool,
    views_of: Callable[[T], Sequence[ExecutionView]],
) -> None:
    """Print once, or with --watch redraw every second until no execution is open (at most an hour)."""
    if not watch:
        console.print(draw(run_db(settings_of(ctx), read, read_only=True)))
        return

    async def live(db: Database) -> None:
        deadline = time.monotonic() + WATCH_LIMIT_SECONDS
        found = await read(db)
        with Live(draw(found), console=console, refresh_per_second=4) as screen:
            while time.monotonic() < deadline and _open(views_of(found)):
                await asyncio.sleep(1.0)
                found = await read(db)
                screen.update(draw(found))

    run_db(settings_of(ctx), live, read_only=True)


def _open(views: Sequence[ExecutionView]) -> bool:
    return any(v.doc.get("state") in job_executions.OPEN for v in views)


for _name, _command in (
    ("create", create),
    ("list", list_jobs),
    ("show", show),
    ("executions", executions),
    ("pause", pause),
    ("resume", resume),
    ("cancel", cancel),
    ("run-now", run_now),
    ("retry-dead", retry_dead),
):
    job_app.command(_name)(_command)


def register(app: typer.Typer) -> None:
    """Add the `job` commands to `app`."""
    app.add_typer(job_app, name="job")
