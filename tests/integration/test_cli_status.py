"""`outbound status`: the database and the dispatchers' heartbeats, as text and JSON, with `/ready`'s verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.database import Database as SyncDatabase

from app.domain.collections import DISPATCHERS
from tests.conftest import Cli

Db = SyncDatabase[dict[str, Any]]
OWNER = "mail-1:4242:abc123"


def _beat(db: Db, beat_at: datetime, *, error: dict[str, Any] | None = None) -> None:
    """The heartbeat a dispatcher writes (`dispatchers.beat`), as of `beat_at`."""
    fields: dict[str, Any] = {"beat_at": beat_at, "beat_seconds": 2.0, "leads_in_flight": 3}
    if error is not None:
        fields["last_error"] = error
    db[DISPATCHERS].update_one(
        {"_id": OWNER},
        {"$set": fields, "$setOnInsert": {"host": "mail-1", "pid": 4242, "version": "0.1.0", "started_at": beat_at}},
        upsert=True,
    )


def test_status_without_a_dispatcher_says_why_it_is_not_ready_and_exits_1(cli: Cli, sync_db: Db) -> None:
    result = cli("status")
    assert result.exit_code == 1, result.output
    assert "Database: reachable" in result.stdout
    assert "Not ready: no dispatcher has beaten yet" in result.stdout


def test_status_shows_each_dispatcher_and_exits_0_when_one_is_alive(cli: Cli, sync_db: Db) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    _beat(sync_db, now, error={"message": "scan: connection reset", "at": now - timedelta(minutes=3)})
    result = cli("status")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Database: reachable"
    assert lines[1] == f"Dispatcher {OWNER}: alive"
    assert lines[2] == "  host mail-1, pid 4242, version 0.1.0"
    assert lines[3].startswith(f"  started {now:%Y-%m-%d %H:%M:%S}, last beat {now:%Y-%m-%d %H:%M:%S} (")
    when = now - timedelta(minutes=3)
    assert lines[4] == f"  leads in flight 3, last error: scan: connection reset at {when:%Y-%m-%d %H:%M:%S}"
    assert lines[-1] == "Ready"


def test_status_json_is_the_ready_body_and_a_stale_beat_exits_1(cli: Cli, sync_db: Db) -> None:
    last = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    _beat(sync_db, last)
    result = cli("status", "--json")
    assert result.exit_code == 1, result.output
    body = json.loads(result.stdout)
    assert (body["status"], body["database"]) == ("not ready", "ok")
    assert body["reason"] == f"no dispatcher has beaten since {last.isoformat()}"
    [dispatcher] = body["dispatchers"]
    assert (dispatcher["id"], dispatcher["state"], dispatcher["leads_in_flight"]) == (OWNER, "gone", 3)
    assert dispatcher["version"] == "0.1.0" and dispatcher["last_error"] is None

    _beat(sync_db, datetime.now(UTC))
    fresh = cli("status", "--json")
    assert fresh.exit_code == 0, fresh.output
    assert json.loads(fresh.stdout)["status"] == "ready"


def test_status_with_an_unreachable_database_says_so_and_exits_1(cli: Cli) -> None:
    result = cli("status", "--json", env={"MONGO_URI": "mongodb://127.0.0.1:1", "OUTBOUND_DB_TIMEOUT": "0.5"})
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout) == {
        "status": "not ready",
        "database": "unreachable",
        "dispatchers": [],
        "reason": "database unreachable",
    }
