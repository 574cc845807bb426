"""`/api/v1/accounts` against the real app under uvicorn and SecantusDB: usage, limits, rotation, no credentials."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from tests.integration.cli_documents import SECRET, add_account
from tests.integration.test_api_helpers import Api, all_pages, audit_entries
from tests.integration.test_api_helpers import api as api


def test_accounts_show_todays_usage_against_the_day_and_hour_limits(api: Api, sync_db: Any) -> None:
    now = datetime.now(UTC)
    wait_until = now + timedelta(minutes=3)
    acc = add_account(sync_db, "a@mail.example", timezone="UTC", next_available_at=wait_until)
    sync_db.email_campaign_settings.insert_one({"email_id": acc, "max_daily_sends": 50, "max_hourly_sends": 10})
    sync_db.account_usage.insert_one(
        {"account_id": acc, "day": now.date().isoformat(), "sent": 7, "committed": 7, "hours": {f"{now.hour:02d}": 4}}
    )
    response = api.get("/api/v1/accounts")
    assert response.status_code == 200, response.text
    assert SECRET not in response.text and "smtp_password" not in response.text
    (row,) = response.json()["items"]
    assert (row["email"], row["sent"], row["limit"], row["remaining"]) == ("a@mail.example", 7, 50, 43)
    assert (row["sent_this_hour"], row["max_hourly_sends"], row["status"]) == (4, 10, "active")
    assert datetime.fromisoformat(row["next_available_at"]) == wait_until.replace(
        microsecond=wait_until.microsecond // 1000 * 1000
    )
    one = api.get(f"/api/v1/accounts/{acc}")
    assert one.status_code == 200 and one.json() == row and SECRET not in one.text


def test_an_account_out_of_rotation_says_why(api: Api, sync_db: Any) -> None:
    acc = add_account(sync_db, status="auth_failed", disabled_reason="535 authentication failed")
    row = api.get(f"/api/v1/accounts/{acc}").json()
    assert (row["status"], row["disabled_reason"]) == ("auth_failed", "535 authentication failed")


def test_accounts_page_by_id_without_duplicates_or_gaps(api: Api, sync_db: Any) -> None:
    made = {add_account(sync_db, f"s{i}@mail.example") for i in range(5)}
    items, pages = all_pages(api, "/api/v1/accounts", {"limit": 2})
    assert pages == 3 and [i["id"] for i in items] == sorted(made)


def test_an_unknown_account_is_404_naming_it(api: Api) -> None:
    response = api.get("/api/v1/accounts/665f0e000000000000000000")
    assert response.status_code == 404
    assert response.json()["detail"] == "email account 665f0e000000000000000000 not found"
    paused = api.post("/api/v1/accounts/nope/pause", role="admin")
    assert paused.status_code == 404 and paused.json()["detail"] == "email account nope not found"


def test_an_admin_pauses_and_resumes_an_account_and_both_are_audited(api: Api, sync_db: Any) -> None:
    acc = add_account(sync_db, status="auth_failed", disabled_reason="535 bad password")
    paused = api.post(f"/api/v1/accounts/{acc}/pause", role="admin")
    assert paused.status_code == 200, paused.text
    assert paused.json() == {
        "account_id": acc,
        "email": "sender@mail.example",
        "before": "auth_failed",
        "after": "paused",
        "changed": True,
        "disabled_reason": "535 bad password",
    }
    stored = sync_db.email_accounts.find_one({"_id": ObjectId(acc)})
    assert stored["status"] == "paused" and "disabled_reason" not in stored
    again = api.post(f"/api/v1/accounts/{acc}/pause", role="admin")
    assert again.status_code == 200 and again.json()["changed"] is False
    resumed = api.post(f"/api/v1/accounts/{acc}/resume", role="admin")
    assert resumed.json()["after"] == "active"
    assert sync_db.email_accounts.find_one({"_id": ObjectId(acc)})["status"] == "active"
    assert [e["outcome"] for e in audit_entries(sync_db, "account.pause")] == ["ok", "ok"]
    (entry,) = audit_entries(sync_db, "account.resume")
    assert entry["actor"]["name"] == "as-admin" and entry["target"] == {"account_id": acc}


def test_an_operator_may_not_pause_an_account(api: Api, sync_db: Any) -> None:
    acc = add_account(sync_db)
    response = api.post(f"/api/v1/accounts/{acc}/pause", role="operator")
    assert response.status_code == 403 and "needs the admin role" in response.json()["detail"]
    assert sync_db.email_accounts.find_one({"_id": ObjectId(acc)})["status"] == "active"
