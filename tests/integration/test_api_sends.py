"""`/api/v1/sends` and `/api/v1/suppressions` against the real app under uvicorn and SecantusDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from tests.integration.cli_documents import add_campaign
from tests.integration.test_api_helpers import Api, add_lead, all_pages, audit_entries
from tests.integration.test_api_helpers import api as api


def _uncertain(sync_db: Any, campaign_id: str, count: int) -> list[str]:
    """Leads whose first recipient's step-1 send is uncertain (the connection dropped after DATA)."""
    keys = []
    then = datetime.now(UTC) - timedelta(hours=1)
    for _ in range(count):
        entry = {"status": "uncertain", "processed_at": then}
        lead_id = add_lead(sync_db, campaign_id, processed_recipients={"step_1_recipient_0": entry}, version=3)
        email = sync_db.campaign_leads.find_one({"_id": lead_id})["lead_data"][0]["email"]
        key = f"{lead_id}:1:0"
        sync_db.sends.insert_one(
            {
                "_id": key,
                "lead_id": lead_id,
                "campaign_id": campaign_id,
                "step_order": 1,
                "recipient_index": 0,
                "email": email,
                "message_id": f"<{key}@outbound>",
                "account_id": "acc",
                "attempts": 1,
                "state": "uncertain",
                "last_error": "connection dropped after DATA",
                "updated_at": then,
                "token": "attempt-fence-secret",
            }
        )
        keys.append(key)
    return keys


def test_uncertain_sends_page_by_key(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db)
    keys = _uncertain(sync_db, campaign_id, 5)
    _uncertain(sync_db, add_campaign(sync_db, "Other"), 1)
    items, pages = all_pages(api, "/api/v1/sends/uncertain", {"campaign_id": campaign_id, "limit": 2})
    assert pages == 3 and [i["send_key"] for i in items] == sorted(keys)
    assert items[0]["last_error"] == "connection dropped after DATA"
    assert all("token" not in item for item in items), "the attempt's fencing token stays on the server"
    everything, _ = all_pages(api, "/api/v1/sends/uncertain")
    assert len(everything) == 6


def test_resolving_as_sent_records_the_delivery_and_is_audited(api: Api, sync_db: Any) -> None:
    (key,) = _uncertain(sync_db, add_campaign(sync_db), 1)
    response = api.post(f"/api/v1/sends/{key}/resolve", json={"outcome": "sent"})
    assert response.status_code == 200, response.text
    lead_id = key.split(":")[0]
    assert response.json()["state"] == "sent" and response.json()["lead_id"] == lead_id
    send = sync_db.sends.find_one({"_id": key})
    assert send["state"] == "sent" and send["resolved_by_operator"] is True
    lead = sync_db.campaign_leads.find_one({"_id": ObjectId(lead_id)})
    assert lead["progress"]["processed_recipients"]["step_1_recipient_0"]["status"] == "sent"
    assert sync_db.activities.count_documents({"type": "resolved_sent"}) == 1
    (entry,) = audit_entries(sync_db, "send.resolve")
    assert entry["details"] == {"outcome": "sent", "state": "sent"} and entry["target"] == {"send_key": key}

    again = api.post(f"/api/v1/sends/{key}/resolve", json={"outcome": "resend"})
    assert again.status_code == 409 and "is sent, not uncertain" in again.json()["detail"]
    assert [e["outcome"] for e in audit_entries(sync_db, "send.resolve")] == ["ok", "refused"]


def test_resolving_as_resend_queues_the_step_again(api: Api, sync_db: Any) -> None:
    (key,) = _uncertain(sync_db, add_campaign(sync_db), 1)
    assert api.post(f"/api/v1/sends/{key}/resolve", json={"outcome": "resend"}).json()["state"] == "retry_wait"
    lead = sync_db.campaign_leads.find_one({"_id": ObjectId(key.split(":")[0])})
    assert "step_1_recipient_0" not in lead["progress"]["processed_recipients"]
    assert lead["progress"]["next_due_at"] <= datetime.now(UTC)


def test_resolve_refuses_bad_input_and_unknown_sends_and_changes_nothing(api: Api, sync_db: Any) -> None:
    (key,) = _uncertain(sync_db, add_campaign(sync_db), 1)
    bad = api.post(f"/api/v1/sends/{key}/resolve", json={"outcome": "maybe"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "outcome"]
    missing = api.post("/api/v1/sends/nope:1:0/resolve", json={"outcome": "sent"})
    assert missing.status_code == 404 and missing.json()["detail"] == "send nope:1:0 not found"
    viewer = api.post(f"/api/v1/sends/{key}/resolve", role="viewer", json={"outcome": "sent"})
    assert viewer.status_code == 403
    assert sync_db.sends.find_one({"_id": key})["state"] == "uncertain"


def test_suppressing_an_address_and_a_domain(api: Api, sync_db: Any) -> None:
    added = api.post("/api/v1/suppressions", json={"email": "Ann@Example.COM", "reason": "complaint"})
    assert added.status_code == 201, added.text
    assert added.json() == {"value": "ann@example.com", "kind": "address", "reason": "complaint", "added": True}
    again = api.post("/api/v1/suppressions", json={"email": "ann@example.com"})
    assert again.status_code == 200 and again.json()["added"] is False
    domain = api.post("/api/v1/suppressions", json={"email": "@Competitor.example", "reason": "competitor"})
    assert domain.json()["value"] == "@competitor.example" and domain.json()["kind"] == "domain"
    stored = sync_db.suppressions.find_one({"value": "ann@example.com"})
    assert stored["reason"] == "complaint" and stored["detail"] == "api token as-operator"
    assert [e["details"]["added"] for e in audit_entries(sync_db, "suppression.add")] == [True, False, True]


def test_suppression_input_errors_name_the_field_and_change_nothing(api: Api, sync_db: Any) -> None:
    not_address = api.post("/api/v1/suppressions", json={"email": "ann.example.com"})
    assert not_address.status_code == 422 and not_address.json()["detail"].startswith("email:")
    no_reason = api.post("/api/v1/suppressions", json={"email": "ann@example.com", "reason": " "})
    assert no_reason.status_code == 422 and no_reason.json()["detail"].startswith("reason:")
    no_email = api.post("/api/v1/suppressions", json={"reason": "x"})
    assert no_email.status_code == 422 and no_email.json()["detail"][0]["loc"] == ["body", "email"]
    viewer = api.post("/api/v1/suppressions", role="viewer", json={"email": "ann@example.com"})
    assert viewer.status_code == 403
    assert sync_db.suppressions.count_documents({}) == 0
    assert [e["outcome"] for e in audit_entries(sync_db, "suppression.add")] == ["refused", "refused"]


def test_the_suppression_list_pages_in_value_order_with_the_total(api: Api, sync_db: Any) -> None:
    for i in range(7):
        assert api.post("/api/v1/suppressions", json={"email": f"u{i}@example.com"}).status_code == 201
    items, pages = all_pages(api, "/api/v1/suppressions", {"limit": 3})
    assert pages == 3 and [i["value"] for i in items] == [f"u{i}@example.com" for i in range(7)]
    assert api.get("/api/v1/suppressions", params={"limit": 1}).json()["total"] == 7
