"""Harness for crash and race tests: bulk seeding, dispatcher processes, and the exactly-once audit."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import ObjectId

from app.store import schema

REPO = Path(__file__).resolve().parent.parent
_MESSAGE_ID = re.compile(r"<outbound\.([0-9a-f]{24})\.(\d+)\.(\d+)@")


def seed_bulk(
    sync_db: Any,
    port: int,
    *,
    leads: int,
    recipients: int = 2,
    steps: int = 1,
    accounts: int = 4,
    max_daily_sends: int | None = 100_000,
    account_wait: float = 0.0,
    campaign_wait: float = 0.0,
    daily_limit: int | None = None,
    usernames: list[str | None] | None = None,
) -> dict[str, Any]:
    """One active campaign with `steps` steps (no delays), `accounts` accounts and `leads` leads due now."""
    now = datetime.now(UTC)
    sequence_id = "seq-chaos"
    # An uncertain send counts as sent at once, so a killed dispatcher's leads go on to their next step and the
    # run finishes (the follow-up hold itself is tested on its own).
    settings: dict[str, Any] = {"min_wait_time": campaign_wait, "batch_size": 20, "uncertain_after_hours": 0}
    if daily_limit is not None:
        settings["daily_limit"] = daily_limit
    campaign_id = str(
        sync_db[schema.CAMPAIGNS]
        .insert_one({"name": "Chaos", "status": "active", "sequence_id": sequence_id, "settings": settings})
        .inserted_id
    )
    for order in range(1, steps + 1):
        tid = (
            sync_db[schema.TEMPLATES]
            .insert_one(
                {"name": f"s{order}", "subject": f"Step {order} for {{{{ email }}}}", "body_text": "Hello {{ email }}"}
            )
            .inserted_id
        )
        sync_db[schema.SEQUENCE_STEPS].insert_one(
            {"sequence_id": sequence_id, "step_order": order, "template_id": str(tid), "delay_minutes": 0}
        )
    account_ids = []
    for i in range(accounts):
        doc: dict[str, Any] = {
            "email": f"sender{i}@example.com",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": "none",
            "status": "active",
        }
        username = usernames[i] if usernames else None
        if username:
            doc.update(smtp_username=username, smtp_password="secret")
        account_id = str(sync_db[schema.EMAIL_ACCOUNTS].insert_one(doc).inserted_id)
        limits: dict[str, Any] = {"email_id": account_id, "min_wait_time": account_wait}
        if max_daily_sends is not None:
            limits["max_daily_sends"] = max_daily_sends
        sync_db[schema.EMAIL_CAMPAIGN_SETTINGS].insert_one(limits)
        account_ids.append(account_id)
    docs = [
        {
            "_id": ObjectId(),
            "campaign_id": campaign_id,
            "lead_key": f"lead:{n}",
            "lead_data": [
                {"email": f"p{n}-{r}@x{n % 7}.example", "status": "not_contacted"} for r in range(recipients)
            ],
            "progress": {"current_step_order": 1, "stopped": False, "processed_recipients": {}, "next_due_at": now},
        }
        for n in range(leads)
    ]
    for start in range(0, len(docs), 1000):
        sync_db[schema.CAMPAIGN_LEADS].insert_many(docs[start : start + 1000])
    return {"campaign_id": campaign_id, "accounts": account_ids, "expected": leads * recipients * steps}


def dispatcher_env(mongo_uri: str, db_name: str, home: Path, **extra: str) -> dict[str, str]:
    """Environment for a dispatcher process on the test database, with short leases and retries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTBOUND_", "MONGO_", "DB_NAME"))}
    env.update(
        MONGO_URI=mongo_uri,
        DB_NAME=db_name,
        OUTBOUND_HOME=str(home),
        OUTBOUND_LEASE_SECONDS="2",
        OUTBOUND_RETRY_BASE_SECONDS="0.2",
        OUTBOUND_RETRY_CAP_SECONDS="1",
        OUTBOUND_RETRY_MAX_ATTEMPTS="4",
        OUTBOUND_SHUTDOWN_GRACE_SECONDS="5",
        # Fault tests fail on purpose; the campaign health check must not pause them.
        OUTBOUND_PAUSE_MIN_ATTEMPTS="1000000",
        OUTBOUND_LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


def start_dispatcher(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`outbound run-dispatcher` as its own process (logs appended to `log`)."""
    command = [sys.executable, "-m", "app.cli.main", "run-dispatcher", "--poll-interval", "0.05", *args]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, cwd=str(log.parent), stdout=out, stderr=subprocess.STDOUT)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGCONT then SIGKILL every process still running (test clean-up)."""
    for proc in procs:
        if proc.poll() is None:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(proc.pid, sig)
                except ProcessLookupError:
                    break
            proc.wait(timeout=10)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll `predicate` until true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def unfinished(sync_db: Any) -> int:
    """Leads neither completed nor stopped."""
    return int(
        sync_db[schema.CAMPAIGN_LEADS].count_documents(
            {"progress.completed": {"$ne": True}, "progress.stopped": {"$ne": True}}
        )
    )


@dataclass
class Audit:
    """Who received what, against what the ledger and the leads say."""

    received: collections.Counter[tuple[str, int, int]] = field(default_factory=collections.Counter)
    states: dict[tuple[str, int, int], str] = field(default_factory=dict)
    processed: dict[tuple[str, int, int], str] = field(default_factory=dict)

    @property
    def duplicates(self) -> list[tuple[str, int, int]]:
        return [key for key, count in self.received.items() if count > 1]

    def by_state(self, state: str) -> list[tuple[str, int, int]]:
        return [key for key, value in self.states.items() if value == state]


def audit(sync_db: Any, messages: list[Any]) -> Audit:
    """Collect SMTP receipts by (lead, step, recipient) from Message-IDs, ledger states and lead records."""
    result = Audit()
    for message in messages:
        match = _MESSAGE_ID.match(message.message_id or "")
        assert match, f"unexpected Message-ID {message.message_id!r}"
        result.received[(match.group(1), int(match.group(2)), int(match.group(3)))] += 1
    for send in sync_db[schema.SENDS].find({}, {"lead_id": 1, "step_order": 1, "recipient_index": 1, "state": 1}):
        result.states[(str(send["lead_id"]), send["step_order"], send["recipient_index"])] = send["state"]
    for lead in sync_db[schema.CAMPAIGN_LEADS].find({}, {"progress.processed_recipients": 1}):
        for key, entry in lead["progress"].get("processed_recipients", {}).items():
            _, step, _, index = key.split("_")
            result.processed[(str(lead["_id"]), int(step), int(index))] = entry["status"]
    return result


def assert_exactly_once(result: Audit, expected: int) -> None:
    """Every recipient settled; SMTP saw each sent one exactly once; uncertain ones at most once."""
    assert len(result.processed) == expected, f"{expected - len(result.processed)} recipients were lost"
    assert not result.duplicates, f"duplicates: {result.duplicates[:5]}"
    for key, status in result.processed.items():
        assert result.states.get(key) == status, f"{key}: lead says {status}, ledger says {result.states.get(key)}"
        if status == "sent":
            assert result.received[key] == 1, f"{key} recorded sent but received {result.received[key]} times"
        elif status == "uncertain":
            assert result.received[key] <= 1
        else:
            assert result.received[key] == 0, f"{key} is {status} but was received"


def usage_totals(sync_db: Any) -> dict[str, dict[str, int]]:
    """account_id -> {sent, committed} summed over days."""
    totals: dict[str, dict[str, int]] = collections.defaultdict(lambda: {"sent": 0, "committed": 0})
    for usage in sync_db[schema.ACCOUNT_USAGE].find():
        totals[usage["account_id"]]["sent"] += usage.get("sent", 0)
        totals[usage["account_id"]]["committed"] += usage.get("committed", 0)
    return dict(totals)


def holds_unsent_reservation(sync_db: Any, pid: int) -> bool:
    """True while the dispatcher process `pid` holds an account's wait window and none of that account's sends
    is in the ledger's `sending` state: it reserved and has not begun the SMTP exchange. Reservation tokens
    start with the owner name, `<host>:<pid>:<suffix>`."""
    held = [
        doc["_id"]
        for doc in sync_db[schema.EMAIL_ACCOUNTS].find(
            {"reservation_token": {"$type": "string"}}, {"reservation_token": 1}
        )
        if doc["reservation_token"].split(":")[1:2] == [str(pid)]
    ]
    ids = [str(i) for i in held]
    return bool(ids) and sync_db[schema.SENDS].count_documents({"state": "sending", "account_id": {"$in": ids}}) == 0
