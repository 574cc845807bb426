"""`/api/v1/leads` and `/api/v1/activities` against the real app under uvicorn and SecantusDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.cli_documents import add_campaign
from tests.integration.test_api_helpers import Api, add_lead, all_pages
from tests.integration.test_api_helpers import api as api


def test_search_finds_leads_by_address_name_or_company_across_pages(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db)
    acme = {add_lead(sync_db, campaign_id, [f"ann{i}@acme.example"], company="Acme Corp") for i in range(7)}
    other = add_lead(sync_db, campaign_id, ["bob@globex.example"], company="Globex")
    sync_db.campaign_leads.update_one({"_id": other}, {"$set": {"lead_data.0.first_name": "Annabel"}})

    items, pages = all_pages(api, "/api/v1/leads", {"company": "acme", "limit": 3})
    ids = [item["id"] for item in items]
    assert pages == 3 and len(ids) == len(set(ids)) and set(ids) == {str(i) for i in acme}
    assert {item["company"] for item in items} == {"Acme Corp"}

    by_name, _ = all_pages(api, "/api/v1/leads", {"q": "ANNAB"})
    assert [item["id"] for item in by_name] == [str(other)]
    both, _ = all_pages(api, "/api/v1/leads", {"q": "ann", "company": "globex"})
    assert [item["recipients"] for item in both] == [[{"email": "bob@globex.example", "status": "not_contacted"}]]
    everything, _ = all_pages(api, "/api/v1/leads", {"limit": 2})
    assert len(everything) == 8


def test_a_search_term_is_matched_literally(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db)
    add_lead(sync_db, campaign_id, ["x@acme.example"])
    assert api.get("/api/v1/leads", params={"q": ".*"}).json()["items"] == []


def test_lead_detail_has_the_timeline_newest_first_and_the_answers(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db, "Spring")
    lead_id = add_lead(sync_db, campaign_id, ["ann@acme.example"], next_due_at=datetime.now(UTC) + timedelta(days=1))
    start = datetime.now(UTC) - timedelta(hours=2)
    sync_db.activities.insert_many(
        [
            {"lead_id": lead_id, "campaign_id": campaign_id, "type": "sent", "created_at": start, "step_order": 1},
            {
                "lead_id": lead_id,
                "campaign_id": campaign_id,
                "type": "replied",
                "created_at": start + timedelta(hours=1),
                "inbound": {"subject": "Re: Hi", "snippet": "Tell me more"},
            },
        ]
    )
    response = api.get(f"/api/v1/leads/{lead_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["campaign"]["name"], body["state"]) == ("Spring", "waiting")
    assert [a["type"] for a in body["activities"]] == ["replied", "sent"]
    (answer,) = body["answers"]
    assert answer["inbound"]["snippet"] == "Tell me more"
    missing = api.get("/api/v1/leads/665f1c2e9b1e8a3d4c5b6a71")
    assert missing.status_code == 404 and missing.json()["detail"] == "lead 665f1c2e9b1e8a3d4c5b6a71 not found"


def _activities(sync_db: Any, campaign_id: str, count: int, kind: str, start: datetime, **fields: Any) -> None:
    sync_db.activities.insert_many(
        [
            {"campaign_id": campaign_id, "type": kind, "created_at": start + timedelta(minutes=i), **fields}
            for i in range(count)
        ]
    )


def test_activities_page_newest_first_without_duplicates_or_gaps(api: Api, sync_db: Any) -> None:
    first, second = add_campaign(sync_db, "A"), add_campaign(sync_db, "B")
    start = datetime.now(UTC) - timedelta(days=1)
    _activities(sync_db, first, 9, "sent", start, account_id="acc-1")
    # Several at one instant: the page boundary falls between activities with the same created_at.
    sync_db.activities.insert_many([{"campaign_id": first, "type": "sent", "created_at": start} for _ in range(4)])
    _activities(sync_db, second, 3, "replied", start)

    items, pages = all_pages(api, "/api/v1/activities", {"campaign_id": first, "limit": 4})
    ids = [item["id"] for item in items]
    assert pages == 4 and len(ids) == 13 == len(set(ids))
    times = [item["created_at"] for item in items]
    assert times == sorted(times, reverse=True)

    replied, _ = all_pages(api, "/api/v1/activities", {"type": "replied,bounced"})
    assert len(replied) == 3 and {item["campaign_id"] for item in replied} == {second}
    by_account, _ = all_pages(api, "/api/v1/activities", {"account_id": "acc-1"})
    assert len(by_account) == 9
    since = (start + timedelta(minutes=7)).isoformat()
    recent, _ = all_pages(api, "/api/v1/activities", {"campaign_id": first, "since": since})
    assert len(recent) == 2


def test_failed_lists_failed_recipients_with_their_errors(api: Api, sync_db: Any) -> None:
    campaign_id = add_campaign(sync_db)
    start = datetime.now(UTC) - timedelta(hours=1)
    _activities(sync_db, campaign_id, 2, "sent", start)
    _activities(sync_db, campaign_id, 1, "failed", start, email="gone@acme.example", smtp_code=550, error="no user")
    (failed,) = api.get("/api/v1/activities/failed").json()["items"]
    assert (failed["email"], failed["error"], failed["smtp_code"]) == ("gone@acme.example", "no user", 550)


def test_bad_activity_filters_name_the_field(api: Api) -> None:
    naive = api.get("/api/v1/activities", params={"since": "2025-01-31T09:00:00"})
    assert naive.status_code == 422 and naive.json()["detail"].startswith("since:")
    garbage = api.get("/api/v1/activities", params={"since": "yesterday"})
    assert garbage.status_code == 422 and garbage.json()["detail"][0]["loc"] == ["query", "since"]
    # A cursor of another list (one value where activities need two) is refused, not misread.
    other = api.get("/api/v1/campaigns").json()["next_cursor"] or "WyJ4Il0"
    wrong = api.get("/api/v1/activities", params={"cursor": other})
    assert wrong.status_code == 422 and wrong.json()["detail"].startswith("cursor:")
