"""reset-lead-progress, reset-campaign-progress and bulk-update-status against a real database: what they change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.store.client import make_client
from app.transport.mailbox import MailboxServer, background
from tests import factories
from tests.integration.cli_documents import (
    FUTURE,
    PAST,
    add_campaign,
    add_lead,
    add_send,
    ok,
)

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
        stopped_reason="x",
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
    for gone in ("completed", "stopped_reason", "lease_owner", "lease_token", "lease_until"):
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
        assert (doc["progress"]["stopped"], doc["progress"]["stopped_reason"]) == (True, "replied")
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
    assert sync_db.campaign_leads.count_documents({"progress.stopped_reason": "bounced"}) == 1


def test_bulk_update_status_for_unknown_campaign_exits_1(cli, sync_db) -> None:
    result = cli("bulk-update-status", "--campaign-id", "nope", "--status", "replied", "--yes")
    assert result.exit_code == 1
    assert "campaign nope not found" in result.stderr


@pytest.mark.parametrize("status", ["unsubscribed", "bounced"])
def test_bulk_update_to_unsubscribed_or_bounced_suppresses_the_addresses_for_every_campaign(
    cli, sync_db, status: str
) -> None:
    cid = add_campaign(sync_db)
    add_lead(sync_db, cid, recipients=2)
    sync_db.suppressions.insert_one({"value": "p1@acme.example", "reason": "complaint", "detail": "earlier"})

    result = ok(cli("bulk-update-status", "--campaign-id", cid, "--status", status, "--yes"))

    assert (
        "Suppressed 2 addresses in every campaign" in result.stdout and "added 1, already suppressed 1" in result.stdout
    )
    entries = {d["value"]: (d["reason"], d["detail"]) for d in sync_db.suppressions.find()}
    assert entries == {"p0@acme.example": (status, "bulk-update-status"), "p1@acme.example": ("complaint", "earlier")}


def test_bulk_update_with_an_email_filter_suppresses_only_the_matching_recipients(cli, sync_db) -> None:
    cid = add_campaign(sync_db)
    add_lead(sync_db, cid, recipients=3)

    ok(cli("bulk-update-status", "--campaign-id", cid, "--status", "bounced", "--email-filter", "P1@", "--yes"))

    assert [d["value"] for d in sync_db.suppressions.find()] == ["p1@acme.example"]


@pytest.mark.parametrize("status", ["replied", "contacted", "failed"])
def test_other_statuses_suppress_nothing(cli, sync_db, status: str) -> None:
    cid = add_campaign(sync_db)
    add_lead(sync_db, cid)

    result = ok(cli("bulk-update-status", "--campaign-id", cid, "--status", status, "--yes"))

    assert "Suppressed" not in result.stdout
    assert sync_db.suppressions.count_documents({}) == 0


def test_a_person_unsubscribed_by_hand_in_one_campaign_is_skipped_by_another(
    cli, mongo_uri, db_name, sync_db, tmp_path
) -> None:
    async def seed(port: int) -> tuple[str, str, Any]:
        client = make_client(mongo_uri)
        try:
            db = client[db_name]
            spring = await factories.add_campaign(db, name="Spring", steps=[{"subject": "Hi", "body_text": "One"}])
            summer = await factories.add_campaign(db, name="Summer", steps=[{"subject": "Hey", "body_text": "Two"}])
            await factories.add_account(db, port, email="sender@example.com", password=None)
            await factories.add_lead(db, spring, [{"email": "Zoe@Shared.example"}], due=FUTURE)
            lead = await factories.add_lead(db, summer, [{"email": "zoe@shared.example"}, {"email": "al@b.example"}])
            return spring, summer, lead
        finally:
            await client.close()

    with background(MailboxServer(tmp_path / "mail")) as server:
        spring, summer, lead = asyncio.run(seed(server.port))
        ok(cli("bulk-update-status", "--campaign-id", spring, "--status", "unsubscribed", "--yes"))
        ok(cli("run-dispatcher", "--once", "--campaign-id", summer, "--poll-interval", "0.05"))
        delivered = [m.recipients for m in server.messages]

    assert delivered == [("al@b.example",)]
    skipped = sync_db.activities.find_one({"lead_id": lead, "type": "skipped"})
    assert skipped["email"] == "zoe@shared.example"
    assert skipped["error"] == "suppressed (unsubscribed): zoe@shared.example"
