"""show-lead-details and show-due-leads against a real database: what they print."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.cli_documents import (
    FUTURE,
    NOW,
    PAST,
    add_campaign,
    add_lead,
    add_send,
    as_json,
    ok,
)

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
    assert data["leads"][0]["first_recipient"] == "p0@acme.example"
    sync_db.campaign_leads.update_one({"_id": older}, {"$set": {"lead_data.1.company_name": "Acme Corp"}})
    table = ok(cli("show-due-leads", "--limit", "1")).stdout
    assert "Found 2 due leads" in table
    assert str(older) in table and str(newer) not in table
    assert "p0@acme.example" in table and "Acme Corp" in table


def test_show_due_leads_prints_found_zero_and_scopes_to_one_campaign(cli, sync_db) -> None:
    cid = add_campaign(sync_db, "Spring")
    other = add_campaign(sync_db, "Summer")
    add_lead(sync_db, other, next_due_at=PAST)
    assert "Found 0 due leads" in ok(cli("show-due-leads", "--campaign-id", cid)).stdout
    assert as_json(cli("show-due-leads", "--json", "--campaign-id", other))["found"] == 1
    assert cli("show-due-leads", "--limit", "0").exit_code == 2


def test_show_lead_details_lists_the_answers_with_what_the_message_said(cli, sync_db) -> None:
    cid = add_campaign(sync_db)
    lead = add_lead(sync_db, cid, stopped=True, stopped_reason="replied")
    inbound = {
        "message_id": "<r1@acme.example>",
        "date": NOW,
        "subject": "Re: Quick question",
        "snippet": "Sounds good, call me Thursday",
        "matched_by": "message-id",
    }
    sync_db.activities.insert_many(
        [
            {"lead_id": str(lead), "type": "sent", "step_order": 1, "recipient_index": 0, "created_at": NOW},
            {
                "_id": "answer:msg:a:<r1@acme.example>",
                "lead_id": str(lead),
                "type": "replied",
                "step_order": 1,
                "recipient_index": 0,
                "created_at": NOW,
                "source": "inbox",
                "inbound": inbound,
            },
            {
                "_id": "answer:link:x",
                "lead_id": str(lead),
                "type": "unsubscribed",
                "step_order": 1,
                "recipient_index": 1,
                "created_at": NOW,
                "source": "link",
                "inbound": {},
            },
        ]
    )
    data = as_json(cli("show-lead-details", str(lead), "--json"))
    replied = next(a for a in data["activities"] if a["type"] == "replied")
    assert replied["inbound"]["subject"] == "Re: Quick question"
    table = ok(cli("show-lead-details", str(lead))).stdout
    assert "Answers" in table and "Re: Quick question" in table and "Sounds good, call me Thursday" in table
    assert "one-click unsubscribe link" in table and "(replied)" in table
