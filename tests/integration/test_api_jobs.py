"""`/api/v1/jobs` and `/api/v1/job-executions` against the real app under uvicorn and SecantusDB, with jobs
created and sent through the CLI (`job create`, `run-dispatcher --once`) against a loopback SMTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from prometheus_client.parser import text_string_to_metric_families

from app.metrics.registry import Metrics, install
from app.store import schema
from app.transport.mailbox import Fault, MailboxServer, background
from tests.conftest import Cli
from tests.integration.test_api_helpers import Api, all_pages, audit_entries
from tests.integration.test_api_helpers import api as api
from tests.integration.test_cli_jobs import FAST_RETRIES, create, dispatch, received, seed

FAILING = "slow@a.example"
SENT = ("ann@a.example", "bob@b.example")


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    """A loopback SMTP server that refuses FAILING for now (451), and accepts everyone else."""

    def fault(stage: str, value: str) -> Fault | None:
        return Fault(451, "mailbox busy, try later") if stage == "rcpt" and value == FAILING else None

    with background(MailboxServer(tmp_path / "mail", fault=fault)) as server:
        yield server


def _sent_job(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> str:
    """A job of three recipients, run once: two sent, one failed for good (no retry): a dead letter."""
    seed(sync_db, mailbox.port)
    job_id = create(cli, "--recipients", ",".join((*SENT, FAILING)), "--max-retries", "0")
    dispatch(cli, FAST_RETRIES)
    dispatch(cli, FAST_RETRIES)
    return job_id


def test_a_job_shows_its_spec_and_its_execution_with_counts_percentage_and_failed_recipients(
    api: Api, cli: Cli, sync_db: Any, mailbox: MailboxServer
) -> None:
    job_id = _sent_job(cli, sync_db, mailbox)
    response = api.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["name"], body["status"], body["schedule"]) == (
        job_id,
        "Announcement",
        "completed",
        "immediate",
    )
    assert body["source"]["kind"] == "static" and body["source"]["addresses"] == [*SENT, FAILING]
    (execution,) = body["executions"]
    assert execution["state"] == "completed"  # failed only when every send failed
    assert execution["counts"] == {
        "total": 3,
        "sent": 2,
        "failed": 1,
        "skipped": 0,
        "uncertain": 0,
        "pending": 0,
        "dead": 1,
        "percentage": 100.0,
    }
    (failed,) = execution["failed_recipients"]
    assert failed["email"] == FAILING and failed["dead_letter"] is True
    assert "mailbox busy, try later" in failed["error"]
    assert execution["started_at"] is not None and execution["finished_at"] is not None

    # The same numbers as `outbound job executions --json`.
    shown = json.loads(cli("job", "executions", job_id, "--json").stdout)["executions"][0]
    assert shown["counts"] == execution["counts"] and shown["_id"] == execution["id"]
    paged = api.get(f"/api/v1/jobs/{job_id}/executions").json()
    assert paged["items"] == body["executions"] and paged["next_cursor"] is None


def test_retry_dead_sends_the_dead_letters_again_and_is_audited(
    api: Api, cli: Cli, sync_db: Any, tmp_path: Path
) -> None:
    failing = {FAILING}

    def fault(stage: str, value: str) -> Fault | None:
        return Fault(451, "try later") if stage == "rcpt" and value in failing else None

    with background(MailboxServer(tmp_path / "mail2", fault=fault)) as mailbox:
        seed(sync_db, mailbox.port)
        job_id = create(cli, "--recipients", FAILING, "--max-retries", "0")
        dispatch(cli, FAST_RETRIES)
        (execution,) = api.get(f"/api/v1/jobs/{job_id}/executions").json()["items"]
        assert execution["counts"]["dead"] == 1

        viewer = api.client.post(f"/api/v1/job-executions/{execution['id']}/retry-dead", headers=api.headers("viewer"))
        assert viewer.status_code == 403
        failing.clear()
        retried = api.post(f"/api/v1/job-executions/{execution['id']}/retry-dead")
        assert retried.status_code == 200, retried.text
        assert retried.json() == {"execution_id": execution["id"], "requeued": 1, "recipients": [FAILING]}
        dispatch(cli, FAST_RETRIES)
        assert list(received(mailbox)) == [FAILING]

    (entry,) = audit_entries(sync_db, "job.retry_dead")
    assert (entry["outcome"], entry["target"], entry["details"]) == (
        "ok",
        {"execution_id": execution["id"]},
        {"requeued": 1},
    )
    unknown = api.post("/api/v1/job-executions/665f1c2e9b1e8a3d4c5b6a70/retry-dead")
    assert unknown.status_code == 404 and unknown.json()["detail"] == "job execution 665f1c2e9b1e8a3d4c5b6a70 not found"


def test_pause_resume_run_now_and_cancel_change_the_job_refuse_by_state_and_are_audited(
    api: Api, cli: Cli, sync_db: Any, mailbox: MailboxServer
) -> None:
    seed(sync_db, mailbox.port)
    job_id = create(cli, "--recipients", "a@a.example", "--cron", "0 8 * * 1-5")
    paused = api.post(f"/api/v1/jobs/{job_id}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"job_id": job_id, "before": "active", "after": "paused", "cancelled_executions": []}
    again = api.post(f"/api/v1/jobs/{job_id}/pause")
    assert again.status_code == 409 and f"job {job_id} is paused" in again.json()["detail"]
    held = api.post(f"/api/v1/jobs/{job_id}/run-now")
    assert held.status_code == 409 and "resume it first" in held.json()["detail"]
    assert sync_db[schema.JOB_EXECUTIONS].count_documents({}) == 0

    assert api.post(f"/api/v1/jobs/{job_id}/resume").json()["after"] == "active"
    ran = api.post(f"/api/v1/jobs/{job_id}/run-now")
    assert ran.status_code == 200, ran.text
    stored = sync_db[schema.JOB_EXECUTIONS].find_one({"_id": ObjectId(ran.json()["execution_id"])})
    assert (stored["state"], stored["trigger"], str(stored["job_id"])) == ("pending", "run-now", job_id)

    cancelled = api.post(f"/api/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["after"] == "cancelled" and cancelled.json()["cancelled_executions"] == [str(stored["_id"])]
    assert sync_db[schema.JOBS].find_one()["status"] == "cancelled"
    refused = api.post(f"/api/v1/jobs/{job_id}/resume")
    assert refused.status_code == 409 and "cancelled" in refused.json()["detail"]

    ok, refused_entry = audit_entries(sync_db, "job.pause")
    assert (ok["outcome"], ok["actor"]["name"], ok["target"]) == ("ok", "as-operator", {"job_id": job_id})
    assert refused_entry["outcome"] == "refused" and "is paused" in refused_entry["details"]["error"]
    assert [e["outcome"] for e in audit_entries(sync_db, "job.run_now")] == ["refused", "ok"]
    assert [e["outcome"] for e in audit_entries(sync_db, "job.cancel")] == ["ok"]
    for path in ("", "/executions"):
        missing = api.get(f"/api/v1/jobs/665f1c2e9b1e8a3d4c5b6a70{path}")
        assert missing.status_code == 404 and missing.json() == {"detail": "job 665f1c2e9b1e8a3d4c5b6a70 not found"}
    assert api.post("/api/v1/jobs/nope/pause").status_code == 404


def test_jobs_and_executions_page_through_every_one_once(
    api: Api, cli: Cli, sync_db: Any, mailbox: MailboxServer
) -> None:
    seed(sync_db, mailbox.port)
    made = {create(cli, "--recipients", f"p{n}@a.example", "--cron", "0 8 * * *") for n in range(5)}
    items, pages = all_pages(api, "/api/v1/jobs", {"limit": 2})
    assert pages == 3 and [i["id"] for i in items] == sorted(made)
    assert {i["status"] for i in items} == {"active"} and all(i["next_run_at"] for i in items)

    job_id = sorted(made)[0]
    start = datetime(2026, 11, 1, 8, tzinfo=UTC)
    runs = [start + timedelta(days=n) for n in range(7)]
    sync_db[schema.JOB_EXECUTIONS].insert_many(
        [{"job_id": ObjectId(job_id), "scheduled_for": at, "trigger": "schedule", "state": "pending"} for at in runs]
    )
    executions, pages = all_pages(api, f"/api/v1/jobs/{job_id}/executions", {"limit": 3})
    assert pages == 3
    assert [datetime.fromisoformat(e["scheduled_for"]) for e in executions] == sorted(runs, reverse=True)
    assert {e["counts"]["pending"] for e in executions} == {0} and {e["state"] for e in executions} == {"pending"}
    bad = api.get(f"/api/v1/jobs/{job_id}/executions", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("cursor:")


def test_campaign_lists_leave_out_job_executions_unless_asked_and_an_execution_still_opens_by_id(
    api: Api, cli: Cli, sync_db: Any, mailbox: MailboxServer
) -> None:
    job_id = _sent_job(cli, sync_db, mailbox)
    sequence = sync_db[schema.CAMPAIGNS].insert_one({"name": "Spring", "status": "active", "sequence_id": "s1"})
    execution_id = str(sync_db[schema.CAMPAIGNS].find_one({"job_id": ObjectId(job_id)})["_id"])

    def ids(**params: str) -> list[str]:
        return [i["id"] for i in all_pages(api, "/api/v1/campaigns", params)[0]]

    assert ids() == [str(sequence.inserted_id)] == ids(kind="sequence")
    assert ids(kind="job") == [execution_id]
    assert sorted(ids(kind="all")) == sorted([str(sequence.inserted_id), execution_id])
    bad = api.get("/api/v1/campaigns", params={"kind": "jobs"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("kind:")
    progress = api.get(f"/api/v1/campaigns/{execution_id}/progress")
    assert progress.status_code == 200 and progress.json()["id"] == execution_id

    listed = json.loads(cli("list-campaigns", "--json").stdout)["campaigns"]
    assert [c["id"] for c in listed] == [str(sequence.inserted_id)]
    with_jobs = json.loads(cli("list-campaigns", "--jobs", "--json").stdout)["campaigns"]
    assert sorted(c["id"] for c in with_jobs) == sorted([str(sequence.inserted_id), execution_id])


def test_the_openapi_schema_documents_the_job_routes_and_their_counts(api: Api) -> None:
    schema_doc = api.client.get("/api/v1/openapi.json").json()
    for path in ("/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/executions"):
        assert "get" in schema_doc["paths"][path]
    for action in ("pause", "resume", "cancel", "run-now"):
        assert "post" in schema_doc["paths"][f"/api/v1/jobs/{{job_id}}/{action}"]
    assert "post" in schema_doc["paths"]["/api/v1/job-executions/{execution_id}/retry-dead"]
    counts = schema_doc["components"]["schemas"]["ExecutionCounts"]["properties"]
    assert {"total", "sent", "failed", "skipped", "pending", "percentage"} <= set(counts)
    execution = schema_doc["components"]["schemas"]["JobExecution"]["properties"]
    assert {"failed_recipients", "started_at", "finished_at"} <= set(execution)


def test_the_daily_report_counts_a_jobs_executions_in_one_row_under_the_jobs_name(
    cli: Cli, sync_db: Any, mailbox: MailboxServer
) -> None:
    job_id = _sent_job(cli, sync_db, mailbox)
    assert cli("job", "run-now", job_id).exit_code == 0  # a second execution of the same job
    dispatch(cli, FAST_RETRIES)
    dispatch(cli, FAST_RETRIES)
    assert sync_db[schema.CAMPAIGNS].count_documents({"job_id": ObjectId(job_id)}) == 2
    today = datetime.now(UTC).date().isoformat()
    result = cli("report", "show", "--day", today, "--json", env={"OUTBOUND_REPORT_TIMEZONE": "UTC"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = [r for r in report["campaigns"] if r["campaign_id"].startswith("job:")]
    assert [(r["campaign_id"], r["name"], r["sent"]) for r in rows] == [(f"job:{job_id}", "Job: Announcement", 4)]
    assert report["totals"]["sent"] == 4


def test_every_execution_of_a_job_is_counted_under_one_metrics_label_value(
    cli: Cli, sync_db: Any, mailbox: MailboxServer
) -> None:
    """Through the real pipeline (`run-dispatcher --once` counts into this process's metrics): three executions
    of one job, with sends, a failure and a suppressed recipient skipped, make one `campaign_id` value."""
    fresh = Metrics()
    previous = install(fresh)
    try:
        sync_db[schema.SUPPRESSIONS].insert_one({"value": "gone@a.example", "reason": "manual"})
        seed(sync_db, mailbox.port)
        recipients = ",".join((*SENT, FAILING, "gone@a.example"))
        job_id = create(cli, "--recipients", recipients, "--max-retries", "0")
        dispatch(cli, FAST_RETRIES)
        for _ in range(2):
            assert cli("job", "run-now", job_id).exit_code == 0
            dispatch(cli, FAST_RETRIES)
            dispatch(cli, FAST_RETRIES)
    finally:
        install(previous)
    assert sync_db[schema.CAMPAIGNS].count_documents({"job_id": ObjectId(job_id)}) == 3
    counted: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(fresh.text().decode()):
        for sample in family.samples:
            if sample.name == "outbound_emails_total":
                key = (sample.labels["campaign_id"], sample.labels["outcome"])
                counted[key] = counted.get(key, 0) + sample.value
    label = f"job:{job_id}"
    assert counted == {(label, "sent"): 6, (label, "failed"): 3, (label, "skipped"): 3}
