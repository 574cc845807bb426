"""What one kill -9 can put in doubt: at most the sends in the SMTP exchange, one per open connection."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from app.store import schema
from app.transport.mailbox import Fault, MailboxServer, background
from tests.chaos import assert_exactly_once, audit, dispatcher_env, seed_bulk, start_dispatcher, stop_all, unfinished
from tests.chaos import wait_until as poll

pytestmark = pytest.mark.slow

ACCOUNTS = 3
DATA_SECONDS = 0.25


def test_a_kill_during_a_batch_leaves_at_most_one_send_per_connection_in_doubt(
    mongo_uri, db_name, sync_db, tmp_path: Path
):
    seen = threading.Event()

    def slow_data(stage: str, _: str) -> Fault | None:
        if stage == "data":
            seen.set()
            time.sleep(DATA_SECONDS)  # the server's thread: the batch's rounds stay in the SMTP exchange a while
        return None

    with background(MailboxServer(tmp_path / "mail", fault=slow_data)) as server:
        seeded = seed_bulk(sync_db, server.port, leads=60, recipients=1, steps=1, accounts=ACCOUNTS)
        env = dispatcher_env(mongo_uri, db_name, tmp_path)
        procs = [start_dispatcher(env, tmp_path / "killed.log", "--concurrency", "40")]
        try:
            assert poll(seen.is_set, timeout=30, interval=0.01), "no send reached DATA"
            time.sleep(DATA_SECONDS / 2)  # mid-round: the batch has sends in DATA and sends not yet begun
            os.kill(procs[0].pid, signal.SIGKILL)
            procs[0].wait(timeout=10)
            in_doubt = sync_db[schema.SENDS].count_documents({"state": "sending"})
            # Rounds hand one message per account connection to SMTP: only those can be in doubt.
            assert in_doubt <= ACCOUNTS, f"{in_doubt} sends left 'sending' by one kill"
            procs.append(start_dispatcher(env, tmp_path / "survivor.log", "--concurrency", "40"))
            assert poll(lambda: unfinished(sync_db) == 0, timeout=180), f"{unfinished(sync_db)} leads unfinished"
            procs[1].send_signal(signal.SIGTERM)
            assert procs[1].wait(timeout=30) == 0
        finally:
            stop_all(procs)
        messages = list(server.messages)

    result = audit(sync_db, messages)
    assert_exactly_once(result, seeded["expected"])
    assert len(result.by_state("uncertain")) <= ACCOUNTS
