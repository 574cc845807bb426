"""The dashboard's pages and actions over HTTP, against the real app under uvicorn and a real database.

Signed in through the real login form; the numbers on the pages are checked against what the database holds.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo.database import Database as SyncDatabase

from app.config import Settings
from app.store import schema
from tests.browser.seed import PASSWORD, World, add_user, one, seed_world
from tests.web_server import running_web

Db = SyncDatabase[dict[str, Any]]
OPERATOR = "olga@example.com"
VIEWER = "vic@example.com"


@pytest.fixture
def world(sync_db: Db, mongo_uri: str, db_name: str) -> World:
    add_user(mongo_uri, db_name, OPERATOR, "operator")
    add_user(mongo_uri, db_name, VIEWER, "viewer")
    return seed_world(sync_db, datetime.now(UTC))


@pytest.fixture
def web(world: World, mongo_uri: str, db_name: str, tmp_path: Path) -> Iterator[httpx.Client]:
    settings = Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key="d" * 40)
    with running_web(settings) as client:
        yield client


def csrf_of(html: str) -> str:
    """The page's CSRF token (from its meta tag)."""
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    assert found, "the page has no csrf-token meta tag"
    return found.group(1)


def sign_in(web: httpx.Client, email: str) -> str:
    """Sign in with the login form; the session's CSRF token."""
    form = web.get("/login")
    response = web.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(form.text), "next": "/dashboard"},
    )
    assert response.status_code == 303, response.text
    return csrf_of(web.get("/dashboard").text)


def text_of(html: str) -> str:
    """The page's words without tags, spaces collapsed, to check what a person reads."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_pages_ask_to_sign_in_and_the_root_opens_the_dashboard(web: httpx.Client, world: World) -> None:
    assert web.get("/").headers["location"] == "/dashboard"
    for path in (
        "/dashboard",
        f"/dashboard/campaigns/{world.campaign_id}",
        "/dashboard/accounts",
        "/dashboard/leads?q=ann",
        "/dashboard/uncertain",
    ):
        response = web.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=/dashboard"), path
    assert web.get("/dashboard/live").status_code == 401


def test_overview_shows_each_campaigns_progress_funnel_chart_and_the_paused_one(
    web: httpx.Client, world: World
) -> None:
    sign_in(web, VIEWER)
    response = web.get("/dashboard")
    assert response.status_code == 200
    page = text_of(response.text)
    # 4 leads x 2 steps; finished pairs: ann 2, bob 1, cat 1, dan 0 -> 4 / 8.
    assert "Spring launch" in page and "50%" in page
    key = f"campaign.{world.campaign_id}"
    assert f'data-live="{key}.step.all.sent">4<' in response.text
    assert f'data-live="{key}.step.1.replied">1<' in response.text
    assert f'data-live="{key}.step.all.replied.share">25%<' in response.text
    assert "<svg" in response.text and "4 sent in the last 24 hours" in page
    assert "Winter sale : bounce rate over 5%" in page
    # A viewer sees no buttons.
    assert "/resume" not in response.text and "/pause" not in response.text


def test_dashboard_pages_carry_strict_headers_and_load_only_their_own_files(web: httpx.Client, world: World) -> None:
    sign_in(web, VIEWER)
    response = web.get("/dashboard")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    scripts = re.findall(r"<script[^>]*>", response.text)
    assert scripts and all(re.search(r'src="/static/[^"]+"', s) for s in scripts)
    assert "</script>" in response.text and "<script>" not in response.text
    assert "style=" not in response.text
    assert not re.search(r'(src|href)="(https?:)?//', response.text)
    asset = re.search(r'href="(/static/outbound\.css\?v=\w+)"', response.text)
    assert asset
    css = web.get(asset.group(1))
    assert css.status_code == 200 and css.headers["cache-control"].startswith("public")


def test_live_numbers_follow_the_database(web: httpx.Client, world: World, sync_db: Db) -> None:
    sign_in(web, VIEWER)
    key = f"campaign.{world.campaign_id}"
    before = web.get("/dashboard/live", params={"campaign": world.campaign_id}).json()
    assert before["values"][f"{key}.percent"] == "50%"
    assert before["values"][f"{key}.leads.completed"] == "1"
    assert before["bars"][f"{key}.progress"] == {"value": 50.0, "max": 100.0}
    assert 5 <= before["next_seconds"] <= 120
    sync_db[schema.CAMPAIGN_LEADS].update_one(
        {"_id": ObjectId(world.lead_ids[1])}, {"$set": {"progress.completed": True}}
    )
    after = web.get("/dashboard/live", params={"campaign": world.campaign_id}).json()
    assert after["values"][f"{key}.percent"] == "62.5%"
    assert after["values"][f"{key}.leads.completed"] == "2"


def test_an_operator_pauses_and_resumes_with_the_csrf_token_and_each_action_is_audited(
    web: httpx.Client, world: World, sync_db: Db
) -> None:
    csrf = sign_in(web, OPERATOR)
    path = f"/dashboard/campaigns/{world.campaign_id}"
    refused = web.post(f"{path}/pause", data={"reason": "no token"})
    assert refused.status_code == 403
    assert one(sync_db, schema.CAMPAIGNS, {"_id": ObjectId(world.campaign_id)})["status"] == "active"

    paused = web.post(f"{path}/pause", data={"csrf_token": csrf, "reason": "checking the copy", "back": path})
    assert paused.status_code == 303 and paused.headers["location"] == path
    doc = one(sync_db, schema.CAMPAIGNS, {"_id": ObjectId(world.campaign_id)})
    assert (doc["status"], doc["paused_reason"]) == ("paused", "checking the copy")
    page = web.get(path)
    assert "Campaign paused. Reason: checking the copy" in text_of(page.text)
    assert "Campaign paused" not in web.get(path).text  # a flash is shown once

    again = web.post(f"{path}/pause", data={"csrf_token": csrf})
    assert again.status_code == 303
    assert "is paused, not active" in web.get(path).text

    resumed = web.post(f"{path}/resume", data={"csrf_token": csrf})
    assert resumed.status_code == 303
    assert one(sync_db, schema.CAMPAIGNS, {"_id": ObjectId(world.campaign_id)})["status"] == "active"

    entries = list(sync_db["audit"].find({"action": {"$regex": "^campaign\\."}}, sort=[("at", 1)]))
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("campaign.pause", "ok"),
        ("campaign.pause", "refused"),
        ("campaign.resume", "ok"),
    ]
    assert entries[0]["actor"]["name"] == OPERATOR
    assert entries[0]["target"] == {"campaign_id": world.campaign_id}


def test_a_viewer_may_not_act(web: httpx.Client, world: World, sync_db: Db) -> None:
    csrf = sign_in(web, VIEWER)
    response = web.post(f"/dashboard/campaigns/{world.campaign_id}/pause", data={"csrf_token": csrf})
    assert response.status_code == 403
    assert "needs the operator role" in response.json()["detail"]
    assert one(sync_db, schema.CAMPAIGNS, {"_id": ObjectId(world.campaign_id)})["status"] == "active"


def test_trigger_makes_the_waiting_leads_due_now(web: httpx.Client, world: World, sync_db: Db) -> None:
    csrf = sign_in(web, OPERATOR)
    path = f"/dashboard/campaigns/{world.campaign_id}"
    assert web.post(f"{path}/trigger", data={"csrf_token": csrf}).status_code == 303
    assert "3 waiting lead(s) are due now." in text_of(web.get(path).text)
    due = sync_db[schema.CAMPAIGN_LEADS].count_documents(
        {"campaign_id": world.campaign_id, "progress.next_due_at": {"$lte": datetime.now(UTC)}}
    )
    assert due == 3


def test_an_uncertain_send_is_resolved_from_its_page(web: httpx.Client, world: World, sync_db: Db) -> None:
    csrf = sign_in(web, OPERATOR)
    page = web.get("/dashboard/uncertain")
    assert "cat@acme.example" in page.text and "connection dropped after DATA" in page.text
    response = web.post(
        "/dashboard/uncertain/resolve", data={"csrf_token": csrf, "send_key": world.uncertain_send, "outcome": "sent"}
    )
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/uncertain"
    after = web.get("/dashboard/uncertain")
    assert "Recorded as sent to cat@acme.example" in text_of(after.text)
    assert "No uncertain sends" in after.text
    assert one(sync_db, schema.SENDS, {"_id": world.uncertain_send})["state"] == "sent"
    audit = one(sync_db, "audit", {"action": "send.resolve"})
    assert audit["outcome"] == "ok" and audit["details"] == {"outcome": "sent"}

    unknown = web.post("/dashboard/uncertain/resolve", data={"csrf_token": csrf, "send_key": "nope", "outcome": "sent"})
    assert unknown.status_code == 303
    assert "send nope not found" in web.get("/dashboard/uncertain").text


def test_accounts_show_usage_against_limits(web: httpx.Client, world: World) -> None:
    sign_in(web, VIEWER)
    page = text_of(web.get("/dashboard/accounts").text)
    assert "sender@example.com" in page
    assert "7 / 50" in page
    assert "Remaining today 43" in page


def test_lead_search_finds_by_address_and_opens_the_lead_with_its_timeline(web: httpx.Client, world: World) -> None:
    sign_in(web, VIEWER)
    results = web.get("/dashboard/leads", params={"q": "BOB"})
    assert "bob@acme.example" in results.text and "ann@acme.example" not in results.text
    lead = web.get(f"/dashboard/leads/{world.lead_ids[1]}")
    assert lead.status_code == 200
    page = text_of(lead.text)
    assert "replied step 1" in page and "sent step 1" in page
    missing = web.get(f"/dashboard/leads/{ObjectId()}")
    assert missing.status_code == 404 and "not found" in missing.text
    assert web.get(f"/dashboard/campaigns/{ObjectId()}").status_code == 404


def test_a_malformed_document_is_named_on_the_page_and_never_breaks_it(
    web: httpx.Client, world: World, sync_db: Db
) -> None:
    sign_in(web, VIEWER)
    broken = sync_db[schema.CAMPAIGN_LEADS].insert_one({"campaign_id": world.campaign_id, "lead_data": "nobody"})
    lead = web.get(f"/dashboard/leads/{broken.inserted_id}")
    assert lead.status_code == 409
    assert f"campaign_leads {broken.inserted_id}: field 'lead_data'" in html.unescape(lead.text)
    overview = web.get("/dashboard")
    assert overview.status_code == 200
    assert "1 malformed document left out" in overview.text and str(broken.inserted_id) in overview.text
    assert "Spring launch" in overview.text


def test_an_uncertain_send_missing_optional_fields_is_listed(web: httpx.Client, world: World, sync_db: Db) -> None:
    sync_db[schema.SENDS].insert_one({"_id": "bare:1:0", "state": "uncertain"})
    sign_in(web, OPERATOR)
    page = web.get("/dashboard/uncertain")
    assert page.status_code == 200
    assert 'name="send_key" value="bare:1:0"' in page.text and "cat@acme.example" in page.text


def test_a_paused_campaign_says_who_paused_it_on_the_overview_and_its_page(
    web: httpx.Client, world: World, sync_db: Db
) -> None:
    csrf = sign_in(web, OPERATOR)
    path = f"/dashboard/campaigns/{world.campaign_id}"
    paused = web.post(f"{path}/pause", data={"csrf_token": csrf, "reason": "checking the copy", "back": path})
    assert paused.status_code == 303
    doc = one(sync_db, schema.CAMPAIGNS, {"_id": ObjectId(world.campaign_id)})
    assert doc["paused_by"] == {"kind": "user", "name": OPERATOR}
    assert f"by {OPERATOR} (dashboard): checking the copy" in text_of(web.get(path).text)
    assert f"by {OPERATOR} (dashboard))" in text_of(web.get("/dashboard").text)
    assert web.post(f"{path}/resume", data={"csrf_token": csrf}).status_code == 303
    assert "paused_by" not in one(sync_db, schema.CAMPAIGNS, {"_id": ObjectId(world.campaign_id)})
