"""The admin API's audit log (`GET /api/v1/audit`, cursor pages) and what sign-in does to old password hashes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from bson import ObjectId
from pymongo.database import Database as SyncDatabase

from app.config import Settings
from app.store.api_tokens import API_TOKENS
from app.store.users import USERS
from app.web.passwords import needs_rehash, verify
from tests.integration.test_web_auth import PASSWORD, sign_in
from tests.web_server import running_web

Db = SyncDatabase[dict[str, Any]]


@pytest.fixture
def web(sync_db: Db, mongo_uri: str, db_name: str, tmp_path: Path) -> Iterator[httpx.Client]:
    settings = Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key="a" * 40)
    with running_web(settings) as client:
        yield client


def _token(cli: Any, name: str, role: str) -> dict[str, str]:
    made = cli("token", "create", "--name", name, "--role", role)
    assert made.exit_code == 0, made.output
    return {"Authorization": f"Bearer {made.stdout.strip()}"}


def test_the_audit_log_pages_newest_first_with_a_cursor(cli: Any, web: httpx.Client) -> None:
    admin = _token(cli, "ops-admin", "admin")
    for n in range(5):
        assert web.post("/api/v1/tokens", json={"name": f"t{n}", "role": "viewer"}, headers=admin).status_code == 201
    first = web.get("/api/v1/audit", params={"limit": 4, "action": "token.create"}, headers=admin).json()
    assert [e["target"]["name"] for e in first["items"]] == ["t4", "t3", "t2", "t1"]
    actor = first["items"][0]["actor"]
    assert (actor["kind"], actor["name"], actor["role"]) == ("token", "ops-admin", "admin")
    assert first["items"][0]["client"]["address"] == "127.0.0.1"
    rest = web.get(
        "/api/v1/audit", params={"limit": 4, "action": "token.create", "cursor": first["next_cursor"]}, headers=admin
    ).json()
    assert [e["target"]["name"] for e in rest["items"]] == ["t0", "ops-admin"]
    assert rest["next_cursor"] is None
    assert [e["actor"]["kind"] for e in rest["items"]] == ["token", "cli"]

    bad = web.get("/api/v1/audit", params={"cursor": "nope"}, headers=admin)
    assert bad.status_code == 422 and "next_cursor" in bad.json()["detail"]


def test_a_refused_action_is_audited_too(cli: Any, web: httpx.Client) -> None:
    admin, viewer = _token(cli, "ops-admin", "admin"), _token(cli, "reader", "viewer")
    refused = web.post("/api/v1/tokens", json={"name": "mine", "role": "admin"}, headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "POST /api/v1/tokens needs the admin role; token reader is a viewer"
    entries = web.get("/api/v1/audit", params={"action": "request.refused"}, headers=admin).json()["items"]
    assert [(e["actor"]["name"], e["outcome"], e["target"]) for e in entries] == [
        ("reader", "refused", {"path": "/api/v1/tokens"})
    ]


def test_last_used_is_written_at_most_once_a_minute(cli: Any, web: httpx.Client, sync_db: Db) -> None:
    admin = _token(cli, "ops-admin", "admin")
    assert web.get("/api/v1/tokens", headers=admin).status_code == 200
    first = sync_db[API_TOKENS].find_one({"name": "ops-admin"})
    assert first is not None and first["last_used_at"] is not None
    assert web.get("/api/v1/tokens", headers=admin).status_code == 200
    again = sync_db[API_TOKENS].find_one({"name": "ops-admin"})
    assert again is not None and again["last_used_at"] == first["last_used_at"]


def test_signing_in_rehashes_a_password_hashed_with_old_parameters(web: httpx.Client, sync_db: Db) -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    doc = {
        "_id": ObjectId(),
        "email": "ann@example.com",
        "role": "viewer",
        "password_hash": old,
        "created_at": datetime.now(UTC),
    }
    sync_db[USERS].insert_one(doc)
    assert sign_in(web, "ann@example.com").status_code == 303
    stored = sync_db[USERS].find_one({"email": "ann@example.com"})
    assert stored is not None and stored["password_hash"] != old
    assert not needs_rehash(stored["password_hash"]) and verify(stored["password_hash"], PASSWORD)
