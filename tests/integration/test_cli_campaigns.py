"""list-campaigns, show-campaign and show-campaign-progress against a real database: what they print."""

from __future__ import annotations

from tests.integration.cli_documents import (
    FUTURE,
    NOW,
    PAST,
    TODAY,
    add_account,
    add_campaign,
    add_lead,
    as_json,
    ok,
)

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
            {"campaign_id": cid, "type": "replied", "step_order": 1, "created_at": NOW},
            {"campaign_id": cid, "type": "bounced", "step_order": 2, "created_at": NOW},
            {"campaign_id": cid, "type": "unsubscribed", "step_order": 2, "created_at": NOW},
            {"campaign_id": "other", "type": "replied", "step_order": 1, "created_at": NOW},
        ]
    )
    sync_db.account_usage.insert_one(
        {"account_id": "a", "day": TODAY, "sent": 3, "committed": 2, "campaigns": {cid: 3}}
    )

    data = as_json(cli("show-campaign-progress", cid, "--json"))
    none = {"replied": 0, "auto_replies": 0, "bounced": 0, "soft_bounces": 0, "unsubscribed": 0, "variants": []}
    assert data["steps"] == [
        {"step_order": 1, "leads_at_step": 1, "sent": 1, "failed": 1, "uncertain": 0, **none, "replied": 1},
        {"step_order": 2, "leads_at_step": 1, "sent": 0, "failed": 0, "uncertain": 0}
        | {**none, "bounced": 1, "unsubscribed": 1},
    ]
    assert data["leads"]["due"] == 1 and data["leads"]["waiting"] == 1
    assert data["percent_complete"] == 25.0
    assert (data["sent_today"], data["counted_today"]) == (1, 3)
    assert data["invalid_documents"][0]["id"] == str(bad.inserted_id)
    assert data["invalid_documents"][0]["field"] == "lead_data.0.email"
    table = ok(cli("show-campaign-progress", cid))
    assert "25.0% complete" in table.stdout
    assert "skipped malformed document" in table.stderr
