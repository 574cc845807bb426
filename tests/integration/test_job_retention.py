"""Ended job executions give their campaigns and leads back after OUTBOUND_JOB_RETENTION_DAYS, keeping their
counts; the send ledger and the activities stay, and a running execution is never touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions
from app.jobs import control
from app.jobs.runner import JobRunner
from app.store import job_executions, schema
from app.store.client import Database
from app.transport.mailbox import MailboxServer
from app.transport.smtp import SmtpSender
from tests.factories import add_account
from tests.integration.test_jobs import add_job, execution_docs


async def send_due(db: Database) -> None:
    sender = SmtpSender(timeout=10)
    try:
        await build_dispatcher(db, Settings(), sender, DispatcherOptions(once=True, poll_interval=0.05)).run()
    finally:
        await sender.close()


async def test_an_ended_execution_loses_its_leads_and_campaign_after_the_retention_and_keeps_its_counts(
    db: Database, tmp_path: Path
) -> None:
    async with MailboxServer(tmp_path / "mail") as server:
        await add_account(db, server.port, email="jobs@sender.example", max_daily_sends=None)
        job = await add_job(db)
        now = datetime.now(UTC)
        runner = JobRunner(db, owner="r", retention_days=30, clock=lambda: now)
        assert (await runner.run_pass()).started == 1
        await send_due(db)
        assert await runner.finish_done(datetime.now(UTC)) == 1
    assert len(server.messages) == 10
    (execution,) = await execution_docs(db, job["_id"])
    ended = execution["finished_at"].replace(tzinfo=UTC)
    leads = db[schema.CAMPAIGN_LEADS]
    assert await leads.count_documents(job_executions.execution_ref(execution["_id"])) == 10

    # Not before its retention is over.
    assert await runner.prune_ended(ended + timedelta(days=29, hours=23)) == 0
    assert await db[schema.CAMPAIGNS].count_documents({"_id": execution["_id"]}) == 1

    later = ended + timedelta(days=30, minutes=1)
    assert await runner.prune_ended(later) == 1
    assert await leads.count_documents(job_executions.execution_ref(execution["_id"])) == 0
    assert await db[schema.CAMPAIGNS].count_documents({"_id": execution["_id"]}) == 0
    (pruned,) = await execution_docs(db, job["_id"])
    assert pruned["pruned_at"].replace(tzinfo=UTC) == later.replace(microsecond=later.microsecond // 1000 * 1000)
    assert pruned["counts"] == execution["counts"] and pruned["counts"]["sent"] == 10
    # What was sent stays on record.
    assert await db[schema.SENDS].count_documents({"campaign_id": str(execution["_id"]), "state": "sent"}) == 10
    assert await db[schema.ACTIVITIES].count_documents({"campaign_id": str(execution["_id"])}) == 10
    # The job's views read the kept counts; retry-dead says why there is nothing left to send.
    view = await control.view(db, pruned)
    assert (view.counts.total, view.counts.sent, view.counts.pending) == (10, 10, 0)
    assert view.as_json()["pruned_at"] == pruned["pruned_at"]
    with pytest.raises(control.JobActionError, match="OUTBOUND_JOB_RETENTION_DAYS"):
        await control.retry_dead(db, str(pruned["_id"]), later)
    # Pruned once: the next pass finds nothing, and the job itself is untouched.
    assert await runner.prune_ended(later + timedelta(days=1)) == 0
    assert await db[schema.JOBS].count_documents({"_id": job["_id"]}) == 1


async def test_a_cancelled_execution_stores_its_counts_before_its_leads_go_and_a_running_one_is_kept(
    db: Database,
) -> None:
    cancelled_job, running_job = await add_job(db), await add_job(db)
    now = datetime.now(UTC)
    runner = JobRunner(db, owner="r", retention_days=7, clock=lambda: now)
    assert (await runner.run_pass()).started == 2
    await control.cancel(db, str(cancelled_job["_id"]), now)

    assert await runner.prune_ended(now + timedelta(days=365)) == 1
    (cancelled,) = await execution_docs(db, cancelled_job["_id"])
    assert cancelled["state"] == "cancelled" and cancelled["pruned_at"]
    assert (cancelled["counts"]["total"], cancelled["counts"]["pending"]) == (10, 10)
    (running,) = await execution_docs(db, running_job["_id"])
    assert running["state"] == "running" and "pruned_at" not in running
    leads = db[schema.CAMPAIGN_LEADS]
    assert await leads.count_documents(job_executions.execution_ref(running["_id"])) == 10
    assert await leads.count_documents(job_executions.execution_ref(cancelled["_id"])) == 0


async def test_a_runner_prunes_once_an_hour_and_never_with_a_retention_of_zero(db: Database) -> None:
    job = await add_job(db)
    start = datetime.now(UTC)
    await JobRunner(db, owner="r", retention_days=0, clock=lambda: start).run_pass()
    await control.cancel(db, str(job["_id"]), start)
    far = start + timedelta(days=400)
    assert (await JobRunner(db, owner="keep", retention_days=0, clock=lambda: far).run_pass()).pruned == 0
    (execution,) = await execution_docs(db, job["_id"])
    assert "pruned_at" not in execution

    clock = [far]
    runner = JobRunner(db, owner="prune", retention_days=30, clock=lambda: clock[0])
    assert (await runner.run_pass()).pruned == 1
    other = await add_job(db)
    clock[0] = far + timedelta(minutes=1)
    await runner.run_pass()  # materialises the new job's execution
    await control.cancel(db, str(other["_id"]), clock[0])
    clock[0] = far + timedelta(minutes=30)
    assert (await runner.run_pass()).pruned == 0  # within the hour: not looked at again
    clock[0] = far + timedelta(hours=1, minutes=1)
    assert (await runner.run_pass()).pruned == 0  # looked at, but ended only an hour ago
    clock[0] = far + timedelta(days=31)
    assert (await runner.run_pass()).pruned == 1
