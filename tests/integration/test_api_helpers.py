"""What the JSON API tests share: the app under uvicorn with one API token per role, and paging through a list.

No tests here: the fixtures and helpers are imported by the `test_api_*` modules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId

from app.config import Settings
from app.store.api_tokens import API_TOKENS, new_token, token_hash
from tests.web_server import running_web

ROLES = ("viewer", "operator", "admin")
MAX_PAGES = 50


@dataclass
class Api:
    """The running app and a token for each role."""

    client: httpx.Client
    tokens: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str = "viewer", **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers(role), **kwargs)

    def post(self, path: str, role: str = "operator", **kwargs: Any) -> httpx.Response:
        return self.client.post(path, headers=self.headers(role), **kwargs)


def add_tokens(sync_db: Any) -> dict[str, str]:
    """One API token per role, stored as `outbound token create` stores them (only the hash)."""
    tokens = {}
    for role in ROLES:
        token = new_token()
        sync_db[API_TOKENS].insert_one(
            {
                "_id": ObjectId(),
                "name": f"as-{role}",
                "role": role,
                "prefix": token[:8],
                "hash": token_hash(token),
                "created_at": datetime.now(UTC),
                "last_used_at": None,
                "revoked_at": None,
            }
        )
        tokens[role] = token
    return tokens


@pytest.fixture
def api(sync_db: Any, mongo_uri: str, db_name: str, tmp_path: Path) -> Iterator[Api]:
    settings = Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key="a" * 40)
    tokens = add_tokens(sync_db)
    with running_web(settings) as client:
        yield Api(client, tokens)


def all_pages(api: Api, path: str, params: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Every item of a paged list, following next_cursor; and how many pages that took."""
    items: list[dict[str, Any]] = []
    query = dict(params or {})
    for pages in range(1, MAX_PAGES + 1):
        response = api.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["items"])
        if body["next_cursor"] is None:
            return items, pages
        query["cursor"] = body["next_cursor"]
    raise AssertionError(f"{path}: more than {MAX_PAGES} pages")


def audit_entries(sync_db: Any, action: str) -> list[dict[str, Any]]:
    """The audit documents of one action, oldest first."""
    return list(sync_db.audit.find({"action": action}, sort=[("_id", 1)]))


def add_lead(
    sync_db: Any, campaign_id: str, emails: list[str] | None = None, company: str | None = None, **progress: Any
) -> ObjectId:
    """A lead with its own addresses (each address is in at most one lead of a campaign)."""
    found = emails or [f"p{ObjectId()}@acme.example"]
    recipients = [
        {"email": e, "status": "not_contacted", **({"company_name": company} if company else {})} for e in found
    ]
    doc = {
        "campaign_id": campaign_id,
        "created_at": datetime.now(UTC),
        "lead_data": recipients,
        "progress": {"current_step_order": 1, "stopped": False, "processed_recipients": {}, **progress},
    }
    lead_id: ObjectId = sync_db.campaign_leads.insert_one(doc).inserted_id
    return lead_id
