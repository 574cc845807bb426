"""`outbound token create|list|revoke` and the Bearer tokens they make, against the real app under uvicorn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.database import Database as SyncDatabase

from app.config import Settings
from app.store.api_tokens import API_TOKENS, token_hash
from app.store.audit import AUDIT
from tests.web_server import running_web

Db = SyncDatabase[dict[str, Any]]


@pytest.fixture
def web(sync_db: Db, mongo_uri: str, db_name: str, tmp_path: Path) -> Iterator[httpx.Client]:
    settings = Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key="r" * 40)
    with running_web(settings) as client:
        yield client


def _create(cli: Any, name: str, role: str) -> str:
    result = cli("token", "create", "--name", name, "--role", role)
    assert result.exit_code == 0, result.output
    return str(result.stdout.strip())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_create_prints_the_token_once_and_stores_only_its_hash(cli: Any, sync_db: Db) -> None:
    token = _create(cli, "ci-deploy", "operator")
    assert token.startswith("obt_") and len(token) > 40
    doc = sync_db[API_TOKENS].find_one({"name": "ci-deploy"})
    assert doc is not None
    assert doc["hash"] == token_hash(token) and doc["role"] == "operator"
    assert token not in json.dumps(doc, default=str), "the token itself is never stored"
    assert token.startswith(doc["prefix"]) and len(doc["prefix"]) < 12

    listed = cli("token", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert token not in listed.stdout and doc["hash"] not in listed.stdout
    (row,) = json.loads(listed.stdout)
    assert (row["name"], row["role"], row["prefix"], row["revoked_at"]) == (
        "ci-deploy",
        "operator",
        doc["prefix"],
        None,
    )
    table = cli("token", "list")
    assert "ci-deploy" in table.stdout and token not in table.stdout

    (entry,) = sync_db[AUDIT].find({"action": "token.create"})
    assert entry["actor"]["kind"] == "cli" and entry["target"]["name"] == "ci-deploy"
    assert token not in json.dumps(entry, default=str)


def test_a_bad_role_names_the_choices_and_a_taken_name_is_refused(cli: Any, sync_db: Db) -> None:
    bad = cli("token", "create", "--name", "x", "--role", "root")
    assert bad.exit_code == 2
    assert "viewer, operator, admin" in bad.output and "nothing was changed" in bad.output
    assert sync_db[API_TOKENS].count_documents({}) == 0

    _create(cli, "ci-deploy", "viewer")
    again = cli("token", "create", "--name", "ci-deploy", "--role", "admin")
    assert again.exit_code == 1 and "exists already" in again.output
    assert sync_db[API_TOKENS].count_documents({}) == 1


def test_a_token_authenticates_until_it_is_revoked(cli: Any, web: httpx.Client, sync_db: Db) -> None:
    admin = _create(cli, "ops-admin", "admin")
    assert web.get("/api/v1/tokens").status_code == 401
    response = web.get("/api/v1/tokens", headers=_bearer(admin))
    assert response.status_code == 200, response.text
    assert admin not in response.text and token_hash(admin) not in response.text
    used = sync_db[API_TOKENS].find_one({"name": "ops-admin"})
    assert used is not None and used["last_used_at"] is not None

    revoked = cli("token", "revoke", "ops-admin")
    assert revoked.exit_code == 0, revoked.output
    refused = web.get("/api/v1/tokens", headers=_bearer(admin))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert refused.json() == {"detail": "the API token is unknown or revoked"}
    twice = cli("token", "revoke", "ops-admin")
    assert twice.exit_code == 1 and "revoked already" in twice.output


def test_the_api_creates_a_token_once_and_never_shows_it_again(cli: Any, web: httpx.Client) -> None:
    admin = _create(cli, "ops-admin", "admin")
    made = web.post("/api/v1/tokens", json={"name": "reader", "role": "viewer"}, headers=_bearer(admin))
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert web.get("/api/v1/tokens", headers=_bearer(token)).status_code == 403

    listed = web.get("/api/v1/tokens", headers=_bearer(admin)).json()["items"]
    assert {row["name"] for row in listed} == {"ops-admin", "reader"}
    assert all("token" not in row and "hash" not in row for row in listed)
    assert token not in cli("token", "list", "--json").stdout

    bad = web.post("/api/v1/tokens", json={"name": "x", "role": "root"}, headers=_bearer(admin))
    assert bad.status_code == 422 and "viewer, operator, admin" in bad.json()["detail"]
    dup = web.post("/api/v1/tokens", json={"name": "reader", "role": "admin"}, headers=_bearer(admin))
    assert dup.status_code == 409

    gone = web.delete(f"/api/v1/tokens/{made.json()['id']}", headers=_bearer(admin))
    assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
    assert web.get("/api/v1/audit", headers=_bearer(token)).status_code == 401
