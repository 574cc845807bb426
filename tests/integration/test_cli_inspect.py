"""Inspection and repair commands against a real database: what they print and what they change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

NOW = datetime.now(UTC)
PAST = NOW - timedelta(hours=1)
FUTURE = NOW + timedelta(days=1)
TODAY = NOW.date().isoformat()
SECRET = "s3cret-Pa55word"


def add_campaign(sync_db: Any, name: str = "Spring", status: str = "active", **settings: Any) -> str:
    doc = {
        "name": name,
        "status": status,
        "created_at": NOW,
        "sequence_id": f"seq-{name}",
        "settings": {"daily_limit": 40, "min_wait_time": 4, "batch_size": 20, **settings},
    }
    return str(sync_db.campaigns.insert_one(doc).inserted_id)


def add_lead(sync_db: Any, campaign_id: str, recipients: int = 2, **progress: Any) -> ObjectId:
    doc = {
        "campaign_id": campaign_id,
        "created_at": NOW,
        "lead_data": [
            {"email": f"p{i}@acme.example", "status": "contacted", "last_step": 1, "last_contacted_at": PAST}
            for i in range(recipients)
        ],
        "progress": {"current_step_order": 1, "stopped": False, "processed_recipients": {}, **progress},
    }
    lead_id: ObjectId = sync_db.campaign_leads.insert_one(doc).inserted_id
    return lead_id


def add_account(sync_db: Any, email: str = "sender@mail.example", **fields: Any) -> str:
    doc = {
        "email": email,
        "smtp_host": "127.0.0.1",
        "smtp_port": 2525,
        "smtp_username": email,
        "smtp_password": SECRET,
        "status": "active",
        "provider": "custom",
        **fields,
    }
    return str(sync_db.email_accounts.insert_one(doc).inserted_id)


def add_send(sync_db: Any, lead_id: ObjectId, campaign_id: str, step: int = 1, idx: int = 0) -> None:
    key = f"{lead_id}:{step}:{idx}"
    sync_db.sends.insert_one(
        {
            "_id": key,
            "lead_id": lead_id,
            "step_order": step,
            "recipient_index": idx,
            "campaign_id": campaign_id,
            "email": f"p{idx}@acme.example",
            "message_id": f"<{key}@outbound>",
            "account_id": "acc",
            "attempts": 1,
            "state": "sent",
            "created_at": PAST,
            "updated_at": PAST,
        }
    )


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return result


def as_json(result: Any) -> Any:
    return json.loads(ok(result).stdout)


# --- list-campaigns -------------------------------------------------------------------------------------------


def test_list_campaigns_counts_leads_completed_and_due(cli, sync_db) -> None:
    cid = add_campaign(sync_db, "Spring")
    add_lead(sync_db, cid, next_due_at=PAST)
    add_lead(sync_db, cid, next_due_at=FUTURE)
    add_lead(sync_db, cid, completed=True)
    add_lead(sync_db, cid, next_due_at=PAST, lease_until=FUTURE)  # a dispatcher holds it: not due
    add_campaign(sync_db, "Autumn", status="paused")

    data = as_json(cli("list-campaigns", "--json"))
    rows = {r["name"]: r for r in data["campaigns"]}
    assert rows["Spring"] == {
        "id": cid,
        "name": "Spring",
        "status": "active",
        "sequence_id": "seq-Spring",
        "daily_limit": 40,
        "min_wait_time": 4.0,
        "leads": 4,
        "completed": 1,
        "due_now": 1,
    }
    assert rows["Autumn"]["leads"] == 0
    table = ok(cli("list-campaigns")).stdout
    assert "Spring" in table and "Autumn" in table


def test_list_campaigns_filters_by_status_and_refuses_unknown_status(cli, sync_db) -> None:
    add_campaign(sync_db, "Spring")
    add_campaign(sync_db, "Autumn", status="paused")
    data = as_json(cli("list-campaigns", "--json", "--status", "paused"))
    assert [r["name"] for r in data["campaigns"]] == ["Autumn"]

    bad = cli("list-campaigns", "--status", "running")
    assert bad.exit_code == 2
    assert "active, paused, completed, draft" in bad.stderr


def test_list_campaigns_reports_a_malformed_campaign_and_lists_the_rest(cli, sync_db) -> None:
    add_campaign(sync_db, "Spring")
    bad_id = sync_db.campaigns.insert_one({"name": "Broken", "status": "running"}).inserted_id

    data = as_json(cli("list-campaigns", "--json"))
    assert [r["name"] for r in data["campaigns"]] == ["Spring"]
    assert data["invalid_documents"] == [
        {
            "collection": "campaigns",
            "id": str(bad_id),
            "field": "status",
            "reason": data["invalid_documents"][0]["reason"],
        }
    ]
    table = ok(cli("list-campaigns"))
    assert "Spring" in table.stdout
    assert f"campaigns {bad_id}: field 'status'" in table.stderr


# --- show-campaign --------------------------------------------------------------------------------------------


def test_show_campaign_lists_steps_with_template_names_accounts_and_lead_counts(cli, sync_db) -> None:
    first = add_account(sync_db, "one@mail.example")
    add_account(sync_db, "two@mail.example")
    cid = add_campaign(sync_db, "Spring", account_ids=[first, "65f000000000000000000000"])
    tpl = sync_db.templates.insert_one({"name": "Intro", "subject": "Hi", "body_text": "Hello"}).inserted_id
    sync_db.sequence_steps.insert_many(
        [
            {"sequence_id": "seq-Spring", "step_order": 2, "template_id": "nope", "delay_minutes": 1440},
            {"sequence_id": "seq-Spring", "step_order": 1, "template_id": str(tpl), "delay_minutes": 0},
        ]
    )
    add_lead(sync_db, cid, next_due_at=PAST)
    add_lead(sync_db, cid, stopped=True)

    data = as_json(cli("show-campaign", cid, "--json"))
    assert [(s["step_order"], s["template_name"], s["delay_minutes"]) for s in data["steps"]] == [
        (1, "Intro", 0.0),
        (2, None, 1440.0),
    ]
    assert data["accounts"] == [
        {"id": first, "email": "one@mail.example", "status": "active"},
        {"id": "65f000000000000000000000", "email": None, "status": "missing"},
    ]
    assert data["settings"]["daily_limit"] == 40
    assert data["leads"] == {"total": 2, "completed": 0, "stopped": 1, "in_progress": 0, "due": 1, "waiting": 0}
    table = ok(cli("show-campaign", cid)).stdout
    assert "Intro" in table and "nope (missing)" in table


def test_show_campaign_without_account_ids_may_use_every_active_account(cli, sync_db) -> None:
    add_account(sync_db, "one@mail.example")
    add_account(sync_db, "off@mail.example", status="paused")
    cid = add_campaign(sync_db)
    data = as_json(cli("show-campaign", cid, "--json"))
    assert data["account_scope"] == "every active account"
    assert [a["email"] for a in data["accounts"]] == ["one@mail.example"]


def test_show_campaign_with_unknown_id_exits_1_naming_it(cli, sync_db) -> None:
    result = cli("show-campaign", "65f000000000000000000000")
    assert result.exit_code == 1
    assert "campaign 65f000000000000000000000 not found" in result.stderr


# --- show-campaign-progress -----------------------------------------------------------------------------------


def test_show_campaign_progress_counts_per_step_outcomes_and_sends_today(cli, sync_db) -> None:
    cid = add_campaign(sync_db)
    sync_db.sequence_steps.insert_many(
        [{"sequence_id": "seq-Spring", "step_order": n, "template_id": "t", "delay_minutes": 60} for n in (1, 2)]
    )
    done = {"step_1_recipient_0": {"status": "sent"}, "step_1_recipient_1": {"status": "failed"}}
    add_lead(sync_db, cid, current_step_order=2, next_due_at=PAST, processed_recipients=done)
    add_lead(sync_db, cid, next_due_at=FUTURE)
    bad = sync_db.campaign_leads.insert_one({"campaign_id": cid, "lead_data": [{"email": "not an address"}]})
    sync_db.activities.insert_many(
        [
            {"campaign_id": cid, "type": "sent", "created_at": NOW},
            {"campaign_id": cid, "type": "failed", "created_at": NOW},
            {"campaign_id": "other", "type": "sent", "created_at": NOW},
        ]
    )
    sync_db.account_usage.insert_one(
        {"account_id": "a", "day": TODAY, "sent": 3, "committed": 2, "campaigns": {cid: 3}}
    )

    data = as_json(cli("show-campaign-progress", cid, "--json"))
    assert data["steps"] == [
        {"step_order": 1, "leads_at_step": 1, "sent": 1, "failed": 1, "uncertain": 0},
        {"step_order": 2, "leads_at_step": 1, "sent": 0, "failed": 0, "uncertain": 0},
    ]
    assert data["leads"]["due"] == 1 and data["leads"]["waiting"] == 1
    assert data["percent_complete"] == 25.0
    assert (data["sent_today"], data["counted_today"]) == (1, 3)
    assert data["invalid_documents"][0]["id"] == str(bad.inserted_id)
    assert data["invalid_documents"][0]["field"] == "lead_data.0.email"
    table = ok(cli("show-campaign-progress", cid))
    assert "25.0% complete" in table.stdout
    assert "skipped malformed document" in table.stderr


# --- list-accounts / show-account-stats -----------------------------------------------------------------------


def test_list_accounts_never_prints_the_smtp_password(cli, sync_db) -> None:
    acc = add_account(sync_db, status="auth_failed", disabled_reason="535 bad credentials")
    sync_db.email_campaign_settings.insert_one({"email_id": acc, "max_daily_sends": 50, "min_wait_time": 3})
    sync_db.account_usage.insert_one({"account_id": acc, "day": TODAY, "sent": 7, "committed": 7, "campaigns": {}})

    json_result = ok(cli("list-accounts", "--json"))
    table_result = ok(cli("list-accounts"))
    for result in (json_result, table_result):
        assert SECRET not in result.output
        assert "smtp_password" not in result.output
    row = json.loads(json_result.stdout)["accounts"][0]
    assert row["status"] == "auth_failed"
    assert row["disabled_reason"] == "535 bad credentials"
    assert (row["smtp"], row["max_daily_sends"], row["min_wait_time"], row["sent"], row["limit"]) == (
        "127.0.0.1:2525",
        50,
        3.0,
        7,
        50,
    )
    assert "7/50" in table_result.stdout


def test_list_accounts_reports_a_malformed_account_without_its_password(cli, sync_db) -> None:
    add_account(sync_db, "good@mail.example")
    bad = add_account(sync_db, "bad@mail.example", smtp_port=99999)
    result = ok(cli("list-accounts"))
    assert "Accounts (1)" in result.stdout
    assert [a["email"] for a in as_json(cli("list-accounts", "--json"))["accounts"]] == ["good@mail.example"]
    assert f"email_accounts {bad}: field 'smtp_port'" in result.stderr
    assert SECRET not in result.output


def test_show_account_stats_splits_sent_into_committed_and_reserved_for_the_day(cli, sync_db) -> None:
    acc = add_account(sync_db, next_available_at=FUTURE, last_used_at=PAST)
    sync_db.email_campaign_settings.insert_one({"email_id": acc, "max_daily_sends": 10})
    sync_db.account_usage.insert_many(
        [
            {"account_id": acc, "day": "2025-01-31", "sent": 6, "committed": 4, "campaigns": {"c1": 5, "c2": 1}},
            {"account_id": acc, "day": TODAY, "sent": 1, "committed": 1, "campaigns": {"c1": 1}},
        ]
    )
    data = as_json(cli("show-account-stats", "--json", "--day", "2025-01-31"))
    row = data["accounts"][0]
    assert data["day"] == "2025-01-31"
    assert (row["sent"], row["committed"], row["reserved"], row["remaining"]) == (6, 4, 2, 4)
    assert row["campaigns"] == {"c1": 5, "c2": 1}
    # BSON keeps milliseconds.
    assert abs(datetime.fromisoformat(row["next_available_at"]) - FUTURE) < timedelta(milliseconds=1)
    assert abs(datetime.fromisoformat(row["last_used_at"]) - PAST) < timedelta(milliseconds=1)
    assert SECRET not in json.dumps(data)

    today = as_json(cli("show-account-stats", "--json"))
    assert today["day"] == TODAY and today["accounts"][0]["sent"] == 1
    table = ok(cli("show-account-stats", "--day", "2025-01-31")).stdout
    assert "Account usage on 2025-01-31 (UTC)" in table
    assert "sender@mail.example: next available" in table


def test_show_account_stats_refuses_a_malformed_day(cli, sync_db) -> None:
    result = cli("show-account-stats", "--day", "31/01/2025")
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.stderr


# --- show-lead-details ----------------------------------------------------------------------------------------


def test_show_lead_details_shows_progress_recipients_ledger_and_last_20_activities(cli, sync_db) -> None:
    cid = add_campaign(sync_db, "Spring")
    processed = {"step_1_recipient_0": {"status": "sent", "email": "p0@acme.example", "processed_at": PAST}}
    lead = add_lead(
        sync_db, cid, next_due_at=FUTURE, processed_recipients=processed, lease_owner="vm1", lease_until=PAST
    )
    add_send(sync_db, lead, cid)
    sync_db.activities.insert_many(
        [
            {
                "campaign_id": cid,
                "lead_id": lead,
                "type": "sent",
                "email": f"n{i}",
                "created_at": PAST + timedelta(seconds=i),
            }
            for i in range(25)
        ]
    )

    data = as_json(cli("show-lead-details", str(lead), "--json"))
    assert data["campaign"] == {"id": cid, "name": "Spring", "status": "active"}
    assert data["state"] == "waiting"
    assert data["progress"]["lease"]["owner"] == "vm1" and data["progress"]["lease"]["active"] is False
    assert [r["status"] for r in data["recipients"]] == ["contacted", "contacted"]
    assert data["processed_recipients"]["step_1_recipient_0"]["status"] == "sent"
    assert [s["_id"] for s in data["sends"]] == [f"{lead}:1:0"]
    assert len(data["activities"]) == 20
    assert data["activities"][0]["email"] == "n24"  # newest first
    table = ok(cli("show-lead-details", str(lead))).stdout
    assert "p1@acme.example" in table and "Send ledger" in table


def test_show_lead_details_with_unknown_id_exits_1(cli, sync_db) -> None:
    result = cli("show-lead-details", "not-a-lead")
    assert result.exit_code == 1
    assert "lead not-a-lead not found" in result.stderr


# --- show-due-leads -------------------------------------------------------------------------------------------


def test_show_due_leads_lists_only_due_free_open_leads_of_active_campaigns_oldest_first(cli, sync_db) -> None:
    cid = add_campaign(sync_db, "Spring")
    paused = add_campaign(sync_db, "Autumn", status="paused")
    older = add_lead(sync_db, cid, next_due_at=PAST - timedelta(hours=1))
    newer = add_lead(sync_db, cid, next_due_at=PAST, lease_until=PAST)  # an expired lease is free again
    add_lead(sync_db, cid, next_due_at=PAST, lease_until=FUTURE)
    add_lead(sync_db, cid, next_due_at=PAST, stopped=True)
    add_lead(sync_db, cid, next_due_at=PAST, completed=True)
    add_lead(sync_db, cid, next_due_at=FUTURE)
    add_lead(sync_db, paused, next_due_at=PAST)

    data = as_json(cli("show-due-leads", "--json"))
    assert data["found"] == 2
    assert [d["lead_id"] for d in data["leads"]] == [str(older), str(newer)]
    assert data["leads"][0]["recipients_pending"] == 2
    table = ok(cli("show-due-leads", "--limit", "1")).stdout
    assert "Found 2 due leads" in table
    assert str(older) in table and str(newer) not in table


def test_show_due_leads_prints_found_zero_and_scopes_to_one_campaign(cli, sync_db) -> None:
    cid = add_campaign(sync_db, "Spring")
    other = add_campaign(sync_db, "Summer")
    add_lead(sync_db, other, next_due_at=PAST)
    assert "Found 0 due leads" in ok(cli("show-due-leads", "--campaign-id", cid)).stdout
    assert as_json(cli("show-due-leads", "--json", "--campaign-id", other))["found"] == 1
    assert cli("show-due-leads", "--limit", "0").exit_code == 2


# --- reset-lead-progress --------------------------------------------------------------------------------------


def test_reset_lead_progress_without_yes_and_without_terminal_changes_nothing(cli, sync_db) -> None:
    cid = add_campaign(sync_db)
    lead = add_lead(sync_db, cid, current_step_order=2, next_due_at=FUTURE)
    add_send(sync_db, lead, cid)
    before = sync_db.campaign_leads.find_one({"_id": lead})

    result = cli("reset-lead-progress", str(lead))
    assert result.exit_code == 1
    assert "pass --yes" in result.stderr
    assert sync_db.campaign_leads.find_one({"_id": lead}) == before
    assert sync_db.sends.count_documents({}) == 1


def test_reset_lead_progress_resets_that_lead_and_deletes_only_its_ledger(cli, sync_db) -> None:
    cid = add_campaign(sync_db)
    processed = {"step_1_recipient_0": {"status": "sent"}}
    lead = add_lead(
        sync_db,
        cid,
        current_step_order=3,
        completed=True,
        stop_reason="x",
        processed_recipients=processed,
        lease_owner="vm1",
        lease_until=PAST,
    )
    other = add_lead(sync_db, cid, current_step_order=2, next_due_at=FUTURE)
    add_send(sync_db, lead, cid, step=1, idx=0)
    add_send(sync_db, lead, cid, step=2, idx=1)
    add_send(sync_db, other, cid)
    other_before = sync_db.campaign_leads.find_one({"_id": other})

    result = ok(cli("reset-lead-progress", str(lead), "--yes"))
    assert "deleted 2 send ledger entries" in result.stdout
    doc = sync_db.campaign_leads.find_one({"_id": lead})
    progress = doc["progress"]
    assert progress["current_step_order"] == 1
    assert progress["processed_recipients"] == {}
    assert progress["stopped"] is False
    assert abs(progress["next_due_at"] - datetime.now(UTC)) < timedelta(minutes=5)
    for gone in ("completed", "stop_reason", "lease_owner", "lease_token", "lease_until"):
        assert gone not in progress
    assert doc["lead_data"] == [
        {"email": "p0@acme.example", "status": "not_contacted"},
        {"email": "p1@acme.example", "status": "not_contacted"},
    ]
    assert sync_db.campaign_leads.find_one({"_id": other}) == other_before
    assert [s["lead_id"] for s in sync_db.sends.find()] == [other]


def test_reset_lead_progress_refuses_a_lead_a_dispatcher_holds(cli, sync_db) -> None:
    cid = add_campaign(sync_db)
    lead = add_lead(sync_db, cid, current_step_order=2, lease_owner="vm1", lease_token="t", lease_until=FUTURE)
    add_send(sync_db, lead, cid)
    result = cli("reset-lead-progress", str(lead), "--yes")
    assert result.exit_code == 1
    assert "being processed by dispatcher vm1" in result.stderr
    assert sync_db.campaign_leads.find_one({"_id": lead})["progress"]["current_step_order"] == 2
    assert sync_db.sends.count_documents({}) == 1


def test_reset_lead_progress_with_unknown_id_exits_1(cli, sync_db) -> None:
    result = cli("reset-lead-progress", "65f000000000000000000000", "--yes")
    assert result.exit_code == 1
    assert "lead 65f000000000000000000000 not found" in result.stderr


# --- reset-campaign-progress ----------------------------------------------------------------------------------


def test_reset_campaign_progress_resets_every_free_lead_and_nothing_in_other_campaigns(cli, sync_db) -> None:
    cid = add_campaign(sync_db, "Spring")
    other_cid = add_campaign(sync_db, "Summer")
    leads = [add_lead(sync_db, cid, current_step_order=2, stopped=True) for _ in range(3)]
    held = add_lead(sync_db, cid, current_step_order=2, lease_owner="vm1", lease_token="t", lease_until=FUTURE)
    other = add_lead(sync_db, other_cid, current_step_order=2)
    for lead in [*leads, held, other]:
        add_send(sync_db, lead, str(lead))
    other_before = sync_db.campaign_leads.find_one({"_id": other})

    refused = cli("reset-campaign-progress", cid)
    assert refused.exit_code == 1 and "pass --yes" in refused.stderr
    assert sync_db.campaign_leads.count_documents({"progress.current_step_order": 2}) == 5

    result = ok(cli("reset-campaign-progress", cid, "--yes"))
    assert "Reset 3 leads; deleted 3 send ledger entries" in result.stdout
    assert "1 leads are held by a dispatcher" in result.stderr
    for lead in leads:
        progress = sync_db.campaign_leads.find_one({"_id": lead})["progress"]
        assert (progress["current_step_order"], progress["stopped"], progress.get("lease_token")) == (1, False, None)
    assert sync_db.campaign_leads.find_one({"_id": held})["progress"]["lease_token"] == "t"
    assert sync_db.campaign_leads.find_one({"_id": other}) == other_before
    assert sorted(s["lead_id"] for s in sync_db.sends.find()) == sorted([held, other])


# --- bulk-update-status ---------------------------------------------------------------------------------------


def test_bulk_update_status_refuses_an_unknown_status_listing_the_valid_ones(cli, sync_db) -> None:
    cid = add_campaign(sync_db)
    lead = add_lead(sync_db, cid)
    before = sync_db.campaign_leads.find_one({"_id": lead})
    result = cli("bulk-update-status", "--campaign-id", cid, "--status", "ghosted", "--yes")
    assert result.exit_code == 2
    assert "not_contacted, contacted, failed, replied, unsubscribed, bounced, uncertain" in result.stderr
    assert sync_db.campaign_leads.find_one({"_id": lead}) == before


def test_bulk_update_status_replied_stops_the_campaigns_leads_only(cli, sync_db) -> None:
    cid = add_campaign(sync_db, "Spring")
    other_cid = add_campaign(sync_db, "Summer")
    leads = [add_lead(sync_db, cid, next_due_at=PAST) for _ in range(2)]
    other = add_lead(sync_db, other_cid, next_due_at=PAST)
    other_before = sync_db.campaign_leads.find_one({"_id": other})

    refused = cli("bulk-update-status", "--campaign-id", cid, "--status", "replied")
    assert refused.exit_code == 1 and "pass --yes" in refused.stderr
    assert sync_db.campaign_leads.count_documents({"progress.stopped": True}) == 0

    result = ok(cli("bulk-update-status", "--campaign-id", cid, "--status", "replied", "--yes"))
    assert "Updated recipients of 2 leads" in result.stdout
    for lead in leads:
        doc = sync_db.campaign_leads.find_one({"_id": lead})
        assert {r["status"] for r in doc["lead_data"]} == {"replied"}
        assert (doc["progress"]["stopped"], doc["progress"]["stop_reason"]) == (True, "replied")
    assert sync_db.campaign_leads.find_one({"_id": other}) == other_before


def test_bulk_update_status_with_email_filter_touches_only_matching_recipients(cli, sync_db) -> None:
    cid = add_campaign(sync_db)
    lead = add_lead(sync_db, cid, recipients=2)
    untouched = add_lead(sync_db, cid, recipients=1)
    sync_db.campaign_leads.update_one({"_id": untouched}, {"$set": {"lead_data.0.email": "x@other.example"}})

    ok(cli("bulk-update-status", "--campaign-id", cid, "--status", "contacted", "--email-filter", "P1@ACME", "--yes"))
    ok(cli("bulk-update-status", "--campaign-id", cid, "--status", "not_contacted", "--email-filter", "p0@", "--yes"))
    doc = sync_db.campaign_leads.find_one({"_id": lead})
    assert [r["status"] for r in doc["lead_data"]] == ["not_contacted", "contacted"]
    assert doc["progress"]["stopped"] is False
    assert sync_db.campaign_leads.find_one({"_id": untouched})["lead_data"][0]["status"] == "contacted"


def test_bulk_update_status_leaves_malformed_leads_alone_and_says_so(cli, sync_db) -> None:
    cid = add_campaign(sync_db)
    add_lead(sync_db, cid)
    bad = sync_db.campaign_leads.insert_one({"campaign_id": cid, "lead_data": "oops", "progress": "oops"}).inserted_id
    result = ok(cli("bulk-update-status", "--campaign-id", cid, "--status", "bounced", "--yes"))
    assert "1 malformed leads" in result.stderr
    assert sync_db.campaign_leads.find_one({"_id": bad})["progress"] == "oops"
    assert sync_db.campaign_leads.count_documents({"progress.stop_reason": "bounced"}) == 1


def test_bulk_update_status_for_unknown_campaign_exits_1(cli, sync_db) -> None:
    result = cli("bulk-update-status", "--campaign-id", "nope", "--status", "replied", "--yes")
    assert result.exit_code == 1
    assert "campaign nope not found" in result.stderr


# --- reset-account-limits -------------------------------------------------------------------------------------


def test_reset_account_limits_clears_the_days_usage_wait_window_and_auth_failure(cli, sync_db) -> None:
    acc = add_account(
        sync_db, status="auth_failed", disabled_reason="535", next_available_at=FUTURE, reservation_token="tok"
    )
    other = add_account(sync_db, "other@mail.example", next_available_at=FUTURE)
    sync_db.account_usage.insert_many(
        [
            {"account_id": acc, "day": TODAY, "sent": 9, "committed": 8, "campaigns": {}},
            {"account_id": acc, "day": "2025-01-31", "sent": 3, "committed": 3, "campaigns": {}},
            {"account_id": other, "day": TODAY, "sent": 2, "committed": 2, "campaigns": {}},
        ]
    )

    refused = cli("reset-account-limits", acc)
    assert refused.exit_code == 1 and "pass --yes" in refused.stderr
    assert sync_db.account_usage.count_documents({}) == 3

    result = ok(cli("reset-account-limits", acc, "--yes"))
    assert "sent 9, committed 8" in result.stdout
    assert "auth_failed -> active" in result.stdout
    assert SECRET not in result.output
    doc = sync_db.email_accounts.find_one({"_id": ObjectId(acc)})
    assert doc["status"] == "active"
    for gone in ("next_available_at", "reservation_token", "disabled_reason"):
        assert gone not in doc
    assert sorted((u["account_id"], u["day"]) for u in sync_db.account_usage.find()) == sorted(
        [(acc, "2025-01-31"), (other, TODAY)]
    )
    assert "next_available_at" in sync_db.email_accounts.find_one({"_id": ObjectId(other)})


def test_reset_account_limits_for_another_day_and_unknown_account(cli, sync_db) -> None:
    acc = add_account(sync_db)
    sync_db.account_usage.insert_one({"account_id": acc, "day": "2025-01-31", "sent": 3, "committed": 3})
    ok(cli("reset-account-limits", acc, "--day", "2025-01-31", "--yes"))
    assert sync_db.account_usage.count_documents({}) == 0

    missing = cli("reset-account-limits", "65f000000000000000000000", "--yes")
    assert missing.exit_code == 1
    assert "account 65f000000000000000000000 not found" in missing.stderr
    assert cli("reset-account-limits", acc, "--day", "tomorrow", "--yes").exit_code == 2
