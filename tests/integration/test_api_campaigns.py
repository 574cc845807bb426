"""`/api/v1/campaigns` against the real app under uvicorn and SecantusDB: reads, pages, actions and their audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from tests.integration.cli_documents import FUTURE, PAST, add_campaign
from tests.integration.test_api_helpers import Api, add_lead, all_pages, audit_entries
from tests.integration.test_api_helpers import api as api


def _with_steps(sync_db: Any, campaign_id: str, steps: int = 2) -> None:
    campaign = sync_db.campaigns.find_one({"_id": ObjectId(campaign_id)})
    for order in range(1, steps + 1):
        template = sync_db.templates.insert_one({"name": f"t{order}", "subject": "Hi", "body_text": "Hello"})
        sync_db.sequence_steps.insert_one(
            {
                "sequence_id": campaign["sequence_id"],
                "step_order": order,
                "template_id": str(template.inserted_id),
                "delay_minutes": 60 * (order - 1),
            }
        )


def _progressed_campaign(sync_db: Any) -> str:
    campaign_id = add_campaign(sync_db, "Spring")
    _with_steps(sync_db, campaign_id)
    sent = {"status": "sent", "email": "p0@acme.example", "processed_at": PAST}
    add_lead(sync_db, campaign_id, current_step_order=2, processed_recipients={"step_1_recipient_0": sent})
    add_lead(sync_db, campaign_id, next_due_at=FUTURE)
    add_lead(sync_db, campaign_id, completed=True, current_step_order=2)
    sync_db.activities.insert_many(
        [
            {"campaign_id": campaign_id, "type": "sent", "step_order": 1, "created_at": PAST},
            {"campaign_id": campaign_id, "type": "replied", "step_order": 1, "created_at": PAST},
        ]
    )
    return campaign_id


def test_the_campaign_list_pages_through_every_campaign_once(api: Api, sync_db: Any) -> None:
    made = {add_campaign(sync_db, f"c{i}", status="active" if i % 2 else "paused") for i in range(7)}
    items, pages = all_pages(api, "/api/v1/campaigns", {"limit": 3})
    assert pages == 3
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) and set(ids) == made
    paused, _ = all_pages(api, "/api/v1/campaigns", {"status": "paused"})
    assert {item["status"] for item in paused} == {"paused"} and len(paused) == 4


def test_progress_has_the_numbers_of_show_campaign_progress_json(api: Api, sync_db: Any, cli: Any) -> None:
    campaign_id = _progressed_campaign(sync_db)
    response = api.get(f"/api/v1/campaigns/{campaign_id}/progress")
    assert response.status_code == 200, response.text
    body = response.json()
    shown = cli("show-campaign-progress", campaign_id, "--json")
    assert shown.exit_code == 0, shown.output
    expected = json.loads(shown.stdout)
    expected.pop("invalid_documents")
    added = ("total", "pending", "percentage")
    assert {**body, "steps": [{k: v for k, v in s.items() if k not in added} for s in body["steps"]]} == expected
    first, second = body["steps"]
    assert (first["sent"], first["replied"], first["pending"], first["total"]) == (1, 1, 1, 3)
    # Past step 1: the lead at step 2 and the completed one, of three leads.
    assert first["percentage"] == 66.7 and second["percentage"] == 33.3


def test_detail_shows_settings_steps_and_why_it_was_paused(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db, "Autumn", status="paused", daily_limit=25)
    sync_db.campaigns.update_one({"_id": ObjectId(campaign_id)}, {"$set": {"paused_reason": "template error"}})
    _with_steps(sync_db, campaign_id, steps=1)
    body = api.get(f"/api/v1/campaigns/{campaign_id}").json()
    assert (body["name"], body["status"], body["paused_reason"]) == ("Autumn", "paused", "template error")
    assert body["settings"]["daily_limit"] == 25
    assert [(s["step_order"], s["template_name"]) for s in body["steps"]] == [(1, "t1")]


def test_an_unknown_campaign_is_404_naming_the_id(api: Api) -> None:
    for path in ("", "/progress"):
        response = api.get(f"/api/v1/campaigns/665f1c2e9b1e8a3d4c5b6a70{path}")
        assert response.status_code == 404
        assert response.json() == {"detail": "campaign 665f1c2e9b1e8a3d4c5b6a70 not found"}
    response = api.post("/api/v1/campaigns/nope/pause", json={})
    assert response.status_code == 404 and "campaign nope not found" in response.json()["detail"]


def test_bad_paging_input_is_422_naming_the_field(api: Api, sync_db: Any) -> None:
    add_campaign(sync_db)
    bad_cursor = api.get("/api/v1/campaigns", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 422 and bad_cursor.json()["detail"].startswith("cursor:")
    too_many = api.get("/api/v1/campaigns", params={"limit": 201})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["query", "limit"]
    status = api.get("/api/v1/campaigns", params={"status": "running"})
    assert status.status_code == 422 and status.json()["detail"].startswith("status:")


def test_pause_with_a_reason_then_resume_change_the_campaign_and_are_audited(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db)
    _with_steps(sync_db, campaign_id, steps=1)
    paused = api.post(f"/api/v1/campaigns/{campaign_id}/pause", json={"reason": "list review"})
    assert paused.status_code == 200, paused.text
    assert paused.json() == {
        "campaign_id": campaign_id,
        "before": "active",
        "after": "paused",
        "paused_reason": "list review",
    }
    stored = sync_db.campaigns.find_one({"_id": ObjectId(campaign_id)})
    assert (stored["status"], stored["paused_reason"]) == ("paused", "list review")

    again = api.post(f"/api/v1/campaigns/{campaign_id}/pause")
    assert again.status_code == 409 and "not active" in again.json()["detail"]

    resumed = api.post(f"/api/v1/campaigns/{campaign_id}/resume")
    assert resumed.status_code == 200 and resumed.json()["after"] == "active"
    stored = sync_db.campaigns.find_one({"_id": ObjectId(campaign_id)})
    assert stored["status"] == "active" and "paused_reason" not in stored

    ok, refused = audit_entries(sync_db, "campaign.pause")
    assert (ok["outcome"], ok["actor"]["name"], ok["target"]) == ("ok", "as-operator", {"campaign_id": campaign_id})
    assert ok["details"] == {"reason": "list review"} and ok["client"]["address"] == "127.0.0.1"
    assert refused["outcome"] == "refused" and "not active" in refused["details"]["error"]
    (resume,) = audit_entries(sync_db, "campaign.resume")
    assert resume["outcome"] == "ok"


def test_resume_without_steps_is_refused_and_changes_nothing(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db, status="draft")
    response = api.post(f"/api/v1/campaigns/{campaign_id}/resume")
    assert response.status_code == 409 and "has no steps" in response.json()["detail"]
    assert sync_db.campaigns.find_one({"_id": ObjectId(campaign_id)})["status"] == "draft"


def test_trigger_makes_the_waiting_leads_due_now_and_says_how_many(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db)
    later = datetime.now(UTC) + timedelta(hours=5)
    waiting = [add_lead(sync_db, campaign_id, next_due_at=later) for _ in range(3)]
    held = add_lead(sync_db, campaign_id, next_due_at=later, lease_until=later, lease_owner="vm1")
    done = add_lead(sync_db, campaign_id, next_due_at=later, completed=True)
    before = datetime.now(UTC)
    response = api.post(f"/api/v1/campaigns/{campaign_id}/trigger")
    assert response.status_code == 200, response.text
    assert response.json() == {"campaign_id": campaign_id, "status": "active", "leads_due_now": 3}
    for lead_id in waiting:
        due = sync_db.campaign_leads.find_one({"_id": lead_id})["progress"]["next_due_at"]
        assert before - timedelta(seconds=1) <= due <= datetime.now(UTC)
    for lead_id in (held, done):
        assert sync_db.campaign_leads.find_one({"_id": lead_id})["progress"]["next_due_at"] == later.replace(
            microsecond=later.microsecond // 1000 * 1000
        )
    (entry,) = audit_entries(sync_db, "campaign.trigger")
    assert entry["details"] == {"leads_due_now": 3}


def test_a_viewer_token_is_refused_on_every_campaign_action_and_nothing_changes(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db)
    later = datetime.now(UTC) + timedelta(hours=5)
    lead_id = add_lead(sync_db, campaign_id, next_due_at=later)
    for action in ("pause", "resume", "trigger"):
        response = api.post(f"/api/v1/campaigns/{campaign_id}/{action}", role="viewer")
        assert response.status_code == 403
        assert "needs the operator role; token as-viewer is a viewer" in response.json()["detail"]
    assert sync_db.campaigns.find_one({"_id": ObjectId(campaign_id)})["status"] == "active"
    assert sync_db.campaign_leads.find_one({"_id": lead_id})["progress"]["next_due_at"] > datetime.now(UTC)
    assert len(audit_entries(sync_db, "request.refused")) == 3


def test_who_paused_a_campaign_is_kept_until_it_is_resumed(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db)
    _with_steps(sync_db, campaign_id, steps=1)
    assert api.get(f"/api/v1/campaigns/{campaign_id}").json()["paused_by"] is None
    assert api.post(f"/api/v1/campaigns/{campaign_id}/pause", json={"reason": "list review"}).status_code == 200
    stored = sync_db.campaigns.find_one({"_id": ObjectId(campaign_id)})
    assert stored["paused_by"] == {"kind": "token", "name": "as-operator"}
    assert api.get(f"/api/v1/campaigns/{campaign_id}").json()["paused_by"] == "as-operator (API token)"
    assert api.post(f"/api/v1/campaigns/{campaign_id}/resume").status_code == 200
    assert "paused_by" not in sync_db.campaigns.find_one({"_id": ObjectId(campaign_id)})
    assert api.get(f"/api/v1/campaigns/{campaign_id}").json()["paused_by"] is None
