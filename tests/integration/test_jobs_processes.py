"""Jobs run by real `run-dispatcher` processes: two racing over a real cron tick, and one killed mid-execution."""

from __future__ import annotations

import collections
import json
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from app.store import schema
from app.transport.mailbox import MailboxServer, background
from tests.chaos import assert_exactly_once, audit, dispatcher_env, start_dispatcher, stop_all, wait_until
from tests.conftest import Cli
from tests.integration.test_cli_jobs import seed, write_csv


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[MailboxServer]:
    with background(MailboxServer(tmp_path / "mail")) as server:
        yield server


def received(mailbox: MailboxServer) -> collections.Counter[str]:
    return collections.Counter(r for m in mailbox.messages for r in m.recipients)


def unfinished_leads(sync_db: Any) -> list[Any]:
    """What holds an execution back, for the failure message: its unfinished leads' progress."""
    flt = {"progress.completed": {"$ne": True}, "progress.stopped": {"$ne": True}}
    return [lead["progress"] for lead in sync_db[schema.CAMPAIGN_LEADS].find(flt, limit=5)]


def execution_states(sync_db: Any, job_id: str) -> list[str]:
    return [e["state"] for e in sync_db[schema.JOB_EXECUTIONS].find({"job_id": ObjectId(job_id)})]


@pytest.mark.slow
def test_two_dispatchers_make_one_execution_per_tick_and_read_the_file_again_for_the_next(
    cli: Cli, sync_db: Any, mailbox: MailboxServer, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    seed(sync_db, mailbox.port)
    people = tmp_path / "digest.csv"
    emails = write_csv(people, 40)
    created = cli("job", "create", "--name", "Digest", "--template", "announce", "--recipient-file", str(people),
                  "--cron", "* * * * *", "--json")  # fmt: skip
    assert created.exit_code == 0, created.output
    job_id = json.loads(created.stdout)["_id"]
    # Leases as long as a loaded machine needs for a batch: this test is about ticks, not takeovers (with the
    # chaos tests' 2 s, a batch slower than its lease is taken over again and again before it is released).
    env = dispatcher_env(mongo_uri, db_name, tmp_path / "home", OUTBOUND_LEASE_SECONDS="20")
    procs = [start_dispatcher(env, tmp_path / f"d{i}.log", "--no-inbox") for i in range(2)]
    try:
        # The first tick is at the next whole minute: at most 60 s away, plus the start and the sends, which on a
        # machine loaded by other tests can take a minute more.
        assert wait_until(lambda: execution_states(sync_db, job_id) == ["completed"], timeout=150), execution_states(
            sync_db, job_id
        )
        assert received(mailbox) == collections.Counter(emails)
        first = sync_db[schema.JOB_EXECUTIONS].find_one()
        assert first["scheduled_for"].second == 0 and first["counts"]["sent"] == 40
        assert sync_db[schema.JOBS].find_one()["next_run_at"] == first["scheduled_for"] + timedelta(minutes=1)

        # The next tick, seconds later instead of a minute: the file has a new address by then.
        with people.open("a", encoding="utf-8") as handle:
            handle.write("late@new.example,Late,DE\n")
        due = {"$set": {"next_run_at": datetime.now(UTC) - timedelta(seconds=1)}}
        sync_db[schema.JOBS].update_one({"_id": ObjectId(job_id)}, due)
        assert wait_until(lambda: execution_states(sync_db, job_id) == ["completed"] * 2, timeout=90)
    finally:
        stop_all(procs)
    assert received(mailbox) == collections.Counter(emails * 2 + ["late@new.example"])
    history = list(sync_db[schema.JOB_EXECUTIONS].find(sort=[("scheduled_for", 1)]))
    assert [e["counts"]["sent"] for e in history] == [40, 41]
    assert not audit(sync_db, mailbox.messages).duplicates


@pytest.mark.slow
def test_a_dispatcher_killed_mid_execution_leaves_no_duplicate_and_no_lost_recipient(
    cli: Cli, sync_db: Any, mailbox: MailboxServer, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    seed(sync_db, mailbox.port)
    # Each account waits 0.1 s between sends, so the 200 recipients take seconds and the kill lands midway.
    sync_db[schema.EMAIL_CAMPAIGN_SETTINGS].update_many({}, {"$set": {"min_wait_time": 0.1 / 60}})
    write_csv(tmp_path / "people.csv", 200)
    created = cli("job", "create", "--name", "Big", "--template", "announce", "--recipient-file",
                  str(tmp_path / "people.csv"), "--json")  # fmt: skip
    assert created.exit_code == 0, created.output
    job_id = json.loads(created.stdout)["_id"]
    # 10 s leases: the second dispatcher takes the killed one's leads 10 s after the kill, and on a loaded machine
    # a batch still finishes inside its lease (with 2 s it can be taken over again and again before its release).
    env = dispatcher_env(mongo_uri, db_name, tmp_path / "home", OUTBOUND_LEASE_SECONDS="10")
    first = start_dispatcher(env, tmp_path / "first.log", "--no-inbox")
    procs = [first]
    try:
        assert wait_until(lambda: len(mailbox.messages) >= 40, timeout=60)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert execution_states(sync_db, job_id) == ["running"] and len(mailbox.messages) < 200
        procs.append(start_dispatcher(env, tmp_path / "second.log", "--no-inbox"))
        # Bounded well above the ~30 s it takes on an idle machine: the CI box is shared.
        finished = wait_until(lambda: execution_states(sync_db, job_id) == ["completed"], timeout=240)
        assert finished, unfinished_leads(sync_db)
    finally:
        stop_all(procs)
    assert_exactly_once(audit(sync_db, mailbox.messages), 200)
    counts = sync_db[schema.JOB_EXECUTIONS].find_one()["counts"]
    assert counts["sent"] + counts["uncertain"] == 200 and counts["pending"] == 0
    assert len(received(mailbox)) >= 200 - counts["uncertain"]
