"""`outbound demo seed`: valid, idempotent demo data on loopback SMTP with example domains only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.demo_data import build_demo
from app.demo_seed import VALIDATORS, validate_demo
from app.domain import models
from app.domain.gates import GateContext, sending_window_gate
from app.domain.templating import Renderer, build_context
from app.store import schema

DEMO_DOMAINS = ("example.com", "example.org", "example.net")


def seed(cli: Any, *args: str) -> dict[str, Any]:
    result = cli("demo", "seed", "--json", *args)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def snapshot(sync_db: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: list(sync_db[name].find().sort("_id", 1)) for name in VALIDATORS}


def test_demo_has_three_active_and_one_paused_campaign_with_short_sequences():
    data = build_demo(datetime(2026, 1, 1, tzinfo=UTC))
    campaigns = data.documents[schema.CAMPAIGNS]
    steps = data.documents[schema.SEQUENCE_STEPS]
    leads = data.documents[schema.CAMPAIGN_LEADS]

    assert sorted(c["status"] for c in campaigns) == ["active", "active", "active", "paused"]
    for campaign in campaigns:
        delays = [s["delay_minutes"] for s in steps if s["sequence_id"] == campaign["sequence_id"]]
        assert 2 <= len(delays) <= 3
        assert all(d <= 1 for d in delays)
    assert 35 <= len(leads) <= 45
    assert {len(lead["lead_data"]) for lead in leads} == {1, 2, 3}
    assert len(data.documents[schema.EMAIL_ACCOUNTS]) == 5


@pytest.mark.parametrize(
    "now",
    [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m) for m in range(0, 24 * 60, 20)]
    + [datetime(2026, 7, 4, tzinfo=UTC) + timedelta(minutes=m) for m in range(0, 24 * 60, 20)],
)
def test_the_windowed_demo_campaign_has_recipients_inside_and_outside_their_window_at_any_time(now: datetime):
    data = build_demo(now)
    campaign = next(
        models.Campaign.from_doc(c) for c in data.documents[schema.CAMPAIGNS] if "schedule" in c["settings"]
    )
    window = campaign.settings.schedule
    assert window is not None and window.recipient_timezone
    leads = [models.Lead.from_doc(d) for d in data.documents[schema.CAMPAIGN_LEADS] if d["campaign_id"] == campaign.id]
    verdicts = {sending_window_gate(lead.recipients[0], GateContext(now, schedule=window)) is None for lead in leads}
    assert verdicts == {True, False}  # some are sent at once, the others wait for their window


def test_every_demo_document_passes_the_models_validation():
    data = build_demo(datetime(2026, 1, 1, tzinfo=UTC))

    assert validate_demo(data) == sum(len(docs) for docs in data.documents.values())


def test_demo_addresses_are_on_example_domains_and_never_repeat():
    data = build_demo(datetime(2026, 1, 1, tzinfo=UTC))
    recipients = [r["email"] for lead in data.documents[schema.CAMPAIGN_LEADS] for r in lead["lead_data"]]
    senders = [a["email"] for a in data.documents[schema.EMAIL_ACCOUNTS]]

    for address in recipients + senders:
        assert address.split("@")[1].endswith(DEMO_DOMAINS), address
        assert models.normalize_email(address) == address
    assert len(recipients) == len(set(recipients))


def test_every_demo_template_renders_for_every_recipient_of_its_campaign():
    data = build_demo(datetime(2026, 1, 1, tzinfo=UTC))
    docs = data.documents
    templates = {str(t["_id"]): models.Template.from_doc(t) for t in docs[schema.TEMPLATES]}
    account = models.EmailAccount.from_doc(docs[schema.EMAIL_ACCOUNTS][0])
    general = models.GeneralSettings.from_doc(docs[schema.EMAIL_GENERAL_SETTINGS][0])
    renderer = Renderer()
    rendered = 0
    for campaign_doc in docs[schema.CAMPAIGNS]:
        campaign = models.Campaign.from_doc(campaign_doc)
        steps = [s for s in docs[schema.SEQUENCE_STEPS] if s["sequence_id"] == campaign.sequence_id]
        leads = [models.Lead.from_doc(d) for d in docs[schema.CAMPAIGN_LEADS] if d["campaign_id"] == campaign.id]
        for step in steps:
            for lead in leads:
                for index in range(len(lead.recipients)):
                    context = build_context(
                        campaign=campaign,
                        lead=lead,
                        recipient_index=index,
                        step_order=step["step_order"],
                        account=account,
                        general=general,
                    )
                    email = renderer.render(templates[step["template_id"]], context)
                    assert email.subject
                    assert "Alex Carter" in email.text
                    rendered += 1
    assert rendered > 100
    assert any(t.body_html for t in templates.values())
    assert any(d["body_text"].startswith("Subject:") for d in docs[schema.TEMPLATES])


def test_seeding_twice_leaves_the_same_data(cli, sync_db):
    first = seed(cli)
    before = snapshot(sync_db)

    second = seed(cli)

    assert sum(first["created"].values()) == sum(len(docs) for docs in before.values())
    assert sum(second["created"].values()) == 0
    assert snapshot(sync_db) == before


def test_every_seeded_document_validates_and_accounts_use_the_local_smtp_port(cli, sync_db):
    seed(cli, "--smtp-port", "2626")

    for name, model in VALIDATORS.items():
        docs = list(sync_db[name].find())
        assert docs, name
        for doc in docs:
            model(doc)
    accounts = list(sync_db[schema.EMAIL_ACCOUNTS].find())
    assert {(a["smtp_host"], a["smtp_port"], a["smtp_security"]) for a in accounts} == {("127.0.0.1", 2626, "none")}


def test_seeding_again_keeps_lead_progress_but_restores_configuration(cli, sync_db):
    seed(cli)
    lead_id = sync_db[schema.CAMPAIGN_LEADS].find_one()["_id"]
    sync_db[schema.CAMPAIGN_LEADS].update_one({"_id": lead_id}, {"$set": {"progress.current_step_order": 2}})
    sync_db[schema.CAMPAIGNS].update_many({}, {"$set": {"status": "completed"}})

    seed(cli)

    assert sync_db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})["progress"]["current_step_order"] == 2
    assert sorted(c["status"] for c in sync_db[schema.CAMPAIGNS].find()) == ["active", "active", "active", "paused"]


def test_reset_removes_demo_leads_and_sends_but_not_other_data(cli, sync_db):
    first = seed(cli)
    demo_campaign = first["campaigns"][0]["id"]
    sync_db[schema.CAMPAIGN_LEADS].insert_one(
        {"campaign_id": demo_campaign, "lead_key": "email:x@example.com", "lead_data": [{"email": "x@example.com"}]}
    )
    sync_db[schema.SENDS].insert_one({"_id": "l:1:0", "campaign_id": demo_campaign, "message_id": "<m@example.com>"})
    sync_db[schema.CAMPAIGNS].insert_one({"name": "Real", "status": "active", "settings": {}})
    before = snapshot(sync_db)

    summary = seed(cli, "--reset")

    assert summary["deleted"][schema.CAMPAIGN_LEADS] == len(before[schema.CAMPAIGN_LEADS])
    assert summary["deleted"][schema.SENDS] == 1
    assert sync_db[schema.CAMPAIGN_LEADS].count_documents({"lead_key": "email:x@example.com"}) == 0
    assert sync_db[schema.CAMPAIGNS].count_documents({"name": "Real"}) == 1
    assert sync_db[schema.CAMPAIGN_LEADS].count_documents({}) == len(before[schema.CAMPAIGN_LEADS]) - 1


def test_text_summary_lists_campaigns_and_accounts(cli):
    result = cli("demo", "seed")

    assert result.exit_code == 0, result.output
    assert "Demo: Agency outreach" in result.stdout
    assert "alex.carter@outreach.example.net" in result.stdout
    assert "127.0.0.1:2525" in result.stdout
