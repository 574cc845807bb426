"""The job runner against a real database: one execution per due run however many runners race, runs missed
while down coalesced, and a materialiser that died midway resumed without duplicates."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from app.domain.job_recipients import RecipientSource
from app.domain.job_schedule import parse_cron
from app.domain.job_specs import JobSpec
from app.jobs import control, documents
from app.jobs.runner import JobRunner
from app.store import job_executions, schema
from app.store.client import Database


async def add_job(db: Database, *, cron: str | None = None, misfire: str = "run_once", **fields: Any) -> dict[str, Any]:
    template = await db[schema.TEMPLATES].insert_one({"name": "t", "subject": "Hi", "body_text": "Hello"})
    spec = JobSpec(
        name="Job",
        template_id=str(template.inserted_id),
        source=RecipientSource("static", addresses=tuple(f"p{n}@a.example" for n in range(10))),
        schedule="recurring" if cron else "immediate",
        run_at=None,
        cron=parse_cron(cron) if cron else None,
        timezone="UTC",
        misfire="skip" if misfire == "skip" else "run_once" if cron else None,
        campaign_id=None,
        account_ids=(),
        max_retries=None,
    )
    job = await control.create_job(db, spec, datetime.now(UTC))
    if fields:
        await db[schema.JOBS].update_one({"_id": job["_id"]}, {"$set": fields})
        job.update(fields)
    return job


async def next_run_at(db: Database, job_id: ObjectId) -> datetime | None:
    found = await db[schema.JOBS].find_one({"_id": job_id})
    assert found is not None
    return found.get("next_run_at")


async def campaign_status(db: Database, campaign_id: ObjectId) -> str:
    found = await db[schema.CAMPAIGNS].find_one({"_id": campaign_id})
    assert found is not None
    return str(found["status"])


def runners(db: Database, count: int) -> list[JobRunner]:
    return [JobRunner(db, owner=f"runner-{i}", lease_seconds=30) for i in range(count)]


async def execution_docs(db: Database, job_id: ObjectId) -> list[dict[str, Any]]:
    return await db[schema.JOB_EXECUTIONS].find({"job_id": job_id}, sort=[("scheduled_for", 1)]).to_list()


async def test_racing_runners_create_one_execution_per_due_run_and_move_the_schedule_once(db: Database) -> None:
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    due = now.replace(second=0)
    job = await add_job(db, cron="* * * * *", next_run_at=due)

    created = await asyncio.gather(*(r.create_due(now) for r in runners(db, 5)))

    assert sum(created) == 1
    (execution,) = await execution_docs(db, job["_id"])
    assert execution["scheduled_for"] == due and execution["state"] == "pending"
    assert await next_run_at(db, job["_id"]) == due + timedelta(minutes=1)


async def test_a_crash_before_the_schedule_moved_finds_the_execution_there_and_loses_no_run(db: Database) -> None:
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    due = now.replace(second=0)
    job = await add_job(db, cron="* * * * *", next_run_at=due)
    await job_executions.create(db[schema.JOB_EXECUTIONS], job["_id"], due, now, "schedule")  # then the crash

    assert await runners(db, 1)[0].create_due(now) == 0
    assert len(await execution_docs(db, job["_id"])) == 1
    assert await next_run_at(db, job["_id"]) == due + timedelta(minutes=1)


async def test_runs_missed_while_down_become_one_execution_or_none(db: Database) -> None:
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    down_since = now - timedelta(hours=5)
    once = await add_job(db, cron="0 * * * *", next_run_at=down_since)
    skip = await add_job(db, cron="0 * * * *", misfire="skip", next_run_at=down_since)

    await runners(db, 1)[0].create_due(now)

    (execution,) = await execution_docs(db, once["_id"])
    assert execution["scheduled_for"] == now.replace(minute=0)  # the latest of the five missed runs
    assert await execution_docs(db, skip["_id"]) == []  # 30 minutes late: missed, not delayed
    for job in (once, skip):
        assert await next_run_at(db, job["_id"]) == now.replace(minute=0) + timedelta(hours=1)


async def test_racing_materialisers_write_each_recipient_once(db: Database) -> None:
    job = await add_job(db)
    await runners(db, 1)[0].create_due(datetime.now(UTC))

    passes = await asyncio.gather(*(r.run_pass() for r in runners(db, 3)))

    assert sum(p.started for p in passes) == 1
    (execution,) = await execution_docs(db, job["_id"])
    assert execution["state"] == "running" and execution["counts"]["total"] == 10
    assert await db[schema.CAMPAIGN_LEADS].count_documents({"campaign_id": str(execution["_id"])}) == 10
    campaign = await db[schema.CAMPAIGNS].find_one({"_id": execution["_id"]})
    assert (
        campaign is not None
        and campaign["status"] == "active"
        and campaign["kind"] == "job"
        and campaign["job_id"] == job["_id"]
    )


async def test_a_materialiser_that_died_midway_is_resumed_by_another_without_duplicates(db: Database) -> None:
    job = await add_job(db)
    dead, alive = runners(db, 2)
    now = datetime.now(UTC)
    await dead.create_due(now)
    execution = await job_executions.take_pending(db[schema.JOB_EXECUTIONS], dead.owner, now, 30)
    assert execution is not None
    recipients = await dead.recipients(job, now)
    half = documents.lead_documents(job["_id"], execution["_id"], recipients[:4], now)
    await job_executions.insert_leads(db[schema.CAMPAIGN_LEADS], half)  # ... and then it died

    assert (await alive.run_pass()).started == 0  # its lease still holds
    expired = {"$set": {"lease_until": now - timedelta(seconds=1)}}
    await db[schema.JOB_EXECUTIONS].update_one({"_id": execution["_id"]}, expired)
    assert (await alive.run_pass()).started == 1

    leads = await db[schema.CAMPAIGN_LEADS].find({"campaign_id": str(execution["_id"])}).to_list()
    assert sorted(lead["lead_data"][0]["email"] for lead in leads) == sorted(r.email for r in recipients)
    assert (await execution_docs(db, job["_id"]))[0]["counts"]["total"] == 10


async def test_an_execution_of_a_paused_job_is_written_paused_and_resume_releases_it(db: Database) -> None:
    job = await add_job(db)
    runner = runners(db, 1)[0]
    await runner.create_due(datetime.now(UTC))
    await control.pause(db, str(job["_id"]), datetime.now(UTC))
    await runner.run_pass()
    (execution,) = await execution_docs(db, job["_id"])
    assert await campaign_status(db, execution["_id"]) == "paused"

    await control.resume(db, str(job["_id"]), datetime.now(UTC))
    assert await campaign_status(db, execution["_id"]) == "active"


async def test_an_execution_without_recipients_completes_at_once(db: Database) -> None:
    job = await add_job(db, source={"kind": "filter", "addresses": [], "filters": [["country", "XX"]]})
    runner = runners(db, 1)[0]
    done = await runner.run_pass()
    assert done.created == 1 and done.started == 1 and done.finished == 1
    (execution,) = await execution_docs(db, job["_id"])
    assert execution["state"] == "completed" and execution["counts"]["percentage"] == 100.0
    assert (await db[schema.JOBS].find_one({"_id": job["_id"]}) or {})["status"] == "completed"


async def test_an_execution_cancelled_while_its_leads_are_written_sends_nothing(db: Database) -> None:
    job = await add_job(db)
    runner = runners(db, 1)[0]
    now = datetime.now(UTC)
    await runner.create_due(now)
    execution = await job_executions.take_pending(db[schema.JOB_EXECUTIONS], runner.owner, now, 30)
    assert execution is not None
    await control.cancel(db, str(job["_id"]), now)  # while the runner resolves the recipients

    assert not await runner.materialise(execution, now)

    (cancelled,) = await execution_docs(db, job["_id"])
    assert cancelled["state"] == "cancelled"
    assert await campaign_status(db, execution["_id"]) == "draft"  # never claimed by a dispatcher


async def test_a_runner_that_died_before_opening_the_campaign_is_healed_by_the_next_pass(db: Database) -> None:
    job = await add_job(db)
    runner = runners(db, 1)[0]
    await runner.run_pass()
    (execution,) = await execution_docs(db, job["_id"])
    await db[schema.CAMPAIGNS].update_one({"_id": execution["_id"]}, {"$set": {"status": "draft"}})  # the crash
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    await db[schema.JOB_EXECUTIONS].update_one({"_id": execution["_id"]}, {"$set": {"started_at": long_ago}})

    await runner.run_pass()

    assert await campaign_status(db, execution["_id"]) == "active"
