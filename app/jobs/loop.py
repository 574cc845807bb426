"""The job runner beside the dispatcher: a pass every few seconds, database errors retried, never fatal.

With `run-dispatcher --once` the due jobs are run first (their executions' leads are then due for the
dispatcher's drain) and the finished executions are finished after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from pymongo.errors import PyMongoError

from app.jobs.runner import JobRunner, Pass
from app.logging import get_logger
from app.store.client import Database

# How often due jobs are looked for: a cron job runs at most once a minute, so a few seconds late is on time.
CHECK_SECONDS = 2.0
DB_RETRY_MAX_SECONDS = 30.0


def check_seconds(poll_interval: float) -> float:
    """The runner's interval for a dispatcher polling every `poll_interval` seconds: never longer than
    CHECK_SECONDS, nor so short that it costs queries to no purpose."""
    return max(0.5, min(CHECK_SECONDS, poll_interval))


async def guarded_pass(runner: JobRunner) -> Pass | None:
    """One pass; a database error is logged and the pass given up (the next one starts again)."""
    try:
        return await runner.run_pass()
    except PyMongoError as exc:
        get_logger().warning("job.db_error", error=str(exc))
        return None


async def run_until(runner: JobRunner, stop: asyncio.Event, interval: float, on_leads: Callable[[], None]) -> None:
    """Pass after pass until `stop` is set; `on_leads` is called when a pass made leads due."""
    failures = 0
    while not stop.is_set():
        done = await guarded_pass(runner)
        failures = 0 if done is not None else failures + 1
        if done is not None and done.new_leads:
            on_leads()
        delay = interval if failures == 0 else min(DB_RETRY_MAX_SECONDS, interval * 2 ** min(failures, 6))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)


@contextlib.asynccontextmanager
async def job_runs(
    db: Database,
    *,
    owner: str,
    once: bool,
    enabled: bool,
    poll_interval: float,
    lease_seconds: float,
    on_leads: Callable[[], None],
    retention_days: int = 30,
) -> AsyncIterator[JobRunner | None]:
    """Run due jobs while the block runs (in the background, or before and after it with `once`)."""
    if not enabled:
        yield None
        return
    runner = JobRunner(db, owner=owner, lease_seconds=lease_seconds, retention_days=retention_days)
    if once:
        # Every due job first (a job may have several runs' worth of pending executions), then the drain.
        for _ in range(10):
            done = await guarded_pass(runner)
            if done is None or not (done.created or done.started):
                break
        yield runner
        await guarded_pass(runner)
        return
    stop = asyncio.Event()
    task = asyncio.create_task(run_until(runner, stop, check_seconds(poll_interval), on_leads), name="jobs")
    try:
        yield runner
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=10.0)
