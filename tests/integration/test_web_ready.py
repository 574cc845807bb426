"""`GET /ready` against the real app under uvicorn on loopback and a real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.database import Database as SyncDatabase

from app.config import Settings
from app.domain.collections import DISPATCHERS
from app.web.security_headers import SECURITY_HEADERS
from tests.web_server import running_web

Db = SyncDatabase[dict[str, Any]]


@pytest.fixture
def web(sync_db: Db, mongo_uri: str, db_name: str, tmp_path: Path) -> Iterator[httpx.Client]:
    settings = Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key="r" * 40)
    with running_web(settings) as client:
        yield client


def _beat(db: Db, owner: str, beat_at: datetime, *, beat_seconds: float = 2.0) -> None:
    """The heartbeat a dispatcher writes (`dispatchers.beat`), as of `beat_at`."""
    db[DISPATCHERS].update_one(
        {"_id": owner},
        {
            "$set": {"beat_at": beat_at, "beat_seconds": beat_seconds, "leads_in_flight": 2},
            "$setOnInsert": {"host": "mail-1", "pid": 4242, "version": "0.1.0", "started_at": beat_at},
        },
        upsert=True,
    )


def test_ready_is_503_while_no_dispatcher_has_ever_beaten(web: httpx.Client) -> None:
    response = web.get("/ready")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "database": "ok",
        "dispatchers": [],
        "reason": "no dispatcher has beaten yet",
    }
    assert response.headers["Retry-After"] == "5"
    for name, value in SECURITY_HEADERS:
        assert response.headers[name] == value


def test_ready_is_200_after_a_beat_and_lists_the_dispatcher(web: httpx.Client, sync_db: Db) -> None:
    _beat(sync_db, "mail-1:4242:abc123", datetime.now(UTC))
    response = web.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("ready", "ok")
    [dispatcher] = body["dispatchers"]
    assert dispatcher["id"] == "mail-1:4242:abc123"
    assert (dispatcher["host"], dispatcher["pid"], dispatcher["version"]) == ("mail-1", 4242, "0.1.0")
    assert (dispatcher["leads_in_flight"], dispatcher["state"]) == (2, "alive")
    assert "reason" not in body
    assert response.headers["Content-Security-Policy"] == dict(SECURITY_HEADERS)["Content-Security-Policy"]


def test_ready_is_503_again_once_the_last_beat_is_older_than_three_intervals(web: httpx.Client, sync_db: Db) -> None:
    last = (datetime.now(UTC) - timedelta(seconds=7)).replace(microsecond=0)
    _beat(sync_db, "mail-1:4242:abc123", last, beat_seconds=2.0)
    response = web.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["reason"] == f"no dispatcher has beaten since {last.isoformat()}"
    assert [d["state"] for d in body["dispatchers"]] == ["gone"]
    # Judged by its own interval: the same beat is recent enough for a dispatcher beating every 5 s.
    _beat(sync_db, "mail-1:4242:abc123", last, beat_seconds=5.0)
    assert web.get("/ready").status_code == 200


def test_health_still_answers_whatever_the_dispatchers(web: httpx.Client) -> None:
    response = web.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
