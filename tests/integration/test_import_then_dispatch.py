"""Recipients imported into a lead that is already under way, finished, or held by a dispatcher are not lost."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import pytest

from app.domain.importing import open_stream
from app.store import leases, schema
from app.store.lead_import import import_leads
from tests.factories import add_account, add_campaign
from tests.integration.test_dispatcher import run_once


async def import_csv(db, campaign_id: str, text: str) -> None:
    await import_leads(db, campaign_id, open_stream(io.StringIO(text), "csv", "leads.csv"), now=datetime.now(UTC))


async def test_a_recipient_imported_into_a_completed_lead_gets_every_step(db, smtp) -> None:
    campaign = await add_campaign(
        db, steps=[{"subject": "One", "body_text": "1"}, {"subject": "Two", "body_text": "2"}]
    )
    await add_account(db, smtp.port, email="s@example.com")
    await import_csv(db, campaign, "email,company_name\nann@acme.example,Acme\n")
    await run_once(db)
    lead = await db[schema.CAMPAIGN_LEADS].find_one({})
    assert lead["progress"]["completed"] is True

    await import_csv(db, campaign, "email,company_name\nann@acme.example,Acme\nbob@acme.example,Acme\n")
    await run_once(db)

    sent = [(m.recipients[0], m.parse()["Subject"]) for m in smtp.messages]
    assert sent == [
        ("ann@acme.example", "One"),
        ("ann@acme.example", "Two"),
        ("bob@acme.example", "One"),
        ("bob@acme.example", "Two"),
    ]
    lead = await db[schema.CAMPAIGN_LEADS].find_one({})
    assert lead["progress"]["completed"] is True and len(lead["lead_data"]) == 2


async def test_a_recipient_imported_while_a_dispatcher_holds_the_lead_is_picked_up_later(db, smtp) -> None:
    campaign = await add_campaign(db)
    await add_account(db, smtp.port, email="s@example.com")
    await import_csv(db, campaign, "email,company_name\nann@acme.example,Acme\n")
    doc = await db[schema.CAMPAIGN_LEADS].find_one({})
    claimed = await leases.claim_many(
        db[schema.CAMPAIGN_LEADS], [doc["_id"]], owner="stale", now=datetime.now(UTC), lease_seconds=0.5
    )
    assert len(claimed) == 1
    lease = claimed[0][1]

    await import_csv(db, campaign, "email,company_name\nbob@acme.example,Acme\n")
    # The holder, working from its copy with one recipient, cannot complete the lead without the newcomer.
    with pytest.raises(leases.LeaseLost):
        await leases.release(db[schema.CAMPAIGN_LEADS], lease, None, {"progress.completed": True})

    await asyncio.sleep(0.6)  # the stale holder's lease runs out
    await run_once(db)
    assert sorted(m.recipients[0] for m in smtp.messages) == ["ann@acme.example", "bob@acme.example"]
