"""The dashboard's job pages and buttons over HTTP, against the real app under uvicorn and SecantusDB, with jobs
created and sent through the CLI against a loopback SMTP server; signed in through the real login form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId

from app.config import Settings
from app.store import schema
from app.transport.mailbox import Fault, MailboxServer, background
from tests.browser.seed import add_user, one
from tests.conftest import Cli
from tests.integration.test_cli_jobs import FAST_RETRIES, create, dispatch, seed
from tests.integration.test_dashboard_pages import OPERATOR, VIEWER, sign_in, text_of
from tests.web_server import running_web

FAILING = "slow@a.example"


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    """A loopback SMTP server that refuses FAILING (451) and accepts everyone else."""

    def fault(stage: str, value: str) -> Fault | None:
        return Fault(451, "mailbox busy, try later") if stage == "rcpt" and value == FAILING else None

    with background(MailboxServer(tmp_path / "mail", fault=fault)) as server:
        yield server


@pytest.fixture
def web(sync_db: Any, mongo_uri: str, db_name: str, tmp_path: Path) -> Iterator[httpx.Client]:
    add_user(mongo_uri, db_name, OPERATOR, "operator")
    add_user(mongo_uri, db_name, VIEWER, "viewer")
    settings = Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key="j" * 40)
    with running_web(settings) as client:
        yield client


@pytest.fixture
def jobs(cli: Cli, sync_db: Any, mailbox: MailboxServer) -> dict[str, str]:
    """ "Announcement", run once (two recipients sent, FAILING failed for good), and "Digest", not run yet."""
    seed(sync_db, mailbox.port)
    sent = create(cli, "--recipients", f"ann@a.example,bob@b.example,{FAILING}", "--max-retries", "0")
    dispatch(cli, FAST_RETRIES)
    dispatch(cli, FAST_RETRIES)
    result = cli("job", "create", "--name", "Digest", "--template", "announce", "--recipients", "d@a.example",
                 "--cron", "0 8 * * 1-5", "--timezone", "Europe/Berlin", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    digest = str(sync_db[schema.JOBS].find_one({"name": "Digest"})["_id"])
    return {"sent": sent, "digest": digest}


def test_the_jobs_page_shows_each_job_with_its_latest_executions_progress_and_next_run(
    web: httpx.Client, jobs: dict[str, str], sync_db: Any
) -> None:
    sign_in(web, VIEWER)
    page = web.get("/dashboard/jobs")
    assert page.status_code == 200
    assert '<a href="/dashboard/jobs">Jobs</a>' in page.text  # in the nav
    words = text_of(page.text)
    digest = one(sync_db, schema.JOBS, {"name": "Digest"})
    assert "Digest active" in words and "cron 0 8 * * 1-5 (Europe/Berlin)" in words
    assert f"next run {digest['next_run_at']:%Y-%m-%d %H:%M} UTC" in words and "No execution yet." in words
    assert "Announcement completed" in words
    assert "completed · 3 of 3 done 100%" in words
    assert "sent 2 · failed 1 · skipped 0 · uncertain 0 · pending 0 · dead letters 1" in words
    assert '<progress max="100" value="100.0"' in page.text


def test_a_jobs_page_shows_its_executions_and_failed_recipients_with_their_errors(
    web: httpx.Client, jobs: dict[str, str]
) -> None:
    sign_in(web, VIEWER)
    page = web.get(f"/dashboard/jobs/{jobs['sent']}")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Recipients ann@a.example, bob@b.example, slow@a.example" in words
    assert "sent 2 · failed 1 · skipped 0 · uncertain 0 · pending 0 · dead letters 1" in words
    assert f"{FAILING} gave up after 1 attempts; last error: 451 mailbox busy, try later yes" in words
    assert f"outbound job retry-dead {one_execution(page.text)}" in words
    assert "/run-now" not in page.text and "/pause" not in page.text  # a viewer has no buttons
    missing = web.get("/dashboard/jobs/665f1c2e9b1e8a3d4c5b6a70")
    assert missing.status_code == 404 and "job 665f1c2e9b1e8a3d4c5b6a70 not found" in missing.text


def one_execution(html: str) -> str:
    """The id of the one execution a job page shows."""
    marker = 'id="execution-'
    assert html.count(marker) == 1
    return html.split(marker, 1)[1].split('"', 1)[0]


def test_an_operator_pauses_resumes_and_runs_a_job_now_with_the_csrf_token_each_audited(
    web: httpx.Client, jobs: dict[str, str], sync_db: Any
) -> None:
    csrf = sign_in(web, OPERATOR)
    job_id = jobs["digest"]
    path = f"/dashboard/jobs/{job_id}"
    assert 'action="/dashboard/jobs/' + job_id + '/pause"' in web.get(path).text
    assert web.post(f"{path}/pause", data={"back": path}).status_code == 403  # no CSRF token
    assert one(sync_db, schema.JOBS, {"_id": ObjectId(job_id)})["status"] == "active"

    paused = web.post(f"{path}/pause", data={"csrf_token": csrf, "back": path})
    assert paused.status_code == 303 and paused.headers["location"] == path
    assert one(sync_db, schema.JOBS, {"_id": ObjectId(job_id)})["status"] == "paused"
    assert "Job Digest paused" in text_of(web.get(path).text)
    again = web.post(f"{path}/pause", data={"csrf_token": csrf})
    assert again.status_code == 303 and f"job {job_id} is paused" in web.get(path).text

    assert web.post(f"{path}/resume", data={"csrf_token": csrf}).status_code == 303
    assert one(sync_db, schema.JOBS, {"_id": ObjectId(job_id)})["status"] == "active"
    assert web.post(f"{path}/run-now", data={"csrf_token": csrf}).status_code == 303
    execution = one(sync_db, schema.JOB_EXECUTIONS, {"job_id": ObjectId(job_id)})
    assert (execution["state"], execution["trigger"]) == ("pending", "run-now")
    assert f"Execution {execution['_id']} is pending" in text_of(web.get(path).text)

    entries = list(sync_db["audit"].find({"action": {"$regex": "^job\\."}}, sort=[("at", 1)]))
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("job.pause", "ok"),
        ("job.pause", "refused"),
        ("job.resume", "ok"),
        ("job.run_now", "ok"),
    ]
    assert entries[0]["actor"]["name"] == OPERATOR and entries[0]["target"] == {"job_id": job_id}


def test_a_viewer_may_not_act_on_a_job(web: httpx.Client, jobs: dict[str, str], sync_db: Any) -> None:
    csrf = sign_in(web, VIEWER)
    response = web.post(f"/dashboard/jobs/{jobs['digest']}/pause", data={"csrf_token": csrf})
    assert response.status_code == 403 and "needs the operator role" in response.json()["detail"]
    assert one(sync_db, schema.JOBS, {"_id": ObjectId(jobs["digest"])})["status"] == "active"


def test_the_overview_and_its_paused_list_leave_out_job_executions(
    web: httpx.Client, jobs: dict[str, str], sync_db: Any
) -> None:
    execution = one(sync_db, schema.CAMPAIGNS, {"job_id": ObjectId(jobs["sent"])})
    sync_db[schema.CAMPAIGNS].update_one({"_id": execution["_id"]}, {"$set": {"status": "paused"}})
    sync_db[schema.CAMPAIGNS].insert_one({"name": "Spring", "status": "paused", "sequence_id": "s1"})
    sign_in(web, VIEWER)
    page = web.get("/dashboard")
    assert page.status_code == 200
    assert "Spring" in page.text and execution["name"] not in page.text
    assert f"/dashboard/campaigns/{execution['_id']}" not in page.text
    # An execution's campaign still opens by its id (the job page links to it when its sends are held).
    assert web.get(f"/dashboard/campaigns/{execution['_id']}").status_code == 200
