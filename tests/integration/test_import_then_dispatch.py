"""Imported leads are sent: a Windows spreadsheet export goes from `import-leads` to `run-dispatcher --once`, and
recipients imported into a lead that is already under way, finished, or held by a dispatcher are not lost."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.domain.importing import open_stream
from app.store import leases, schema
from app.store.client import make_client
from app.store.lead_import import import_leads
from app.transport.mailbox import MailboxServer, background
from tests.factories import add_account, add_campaign
from tests.integration.test_dispatcher import run_once

EXPORT = Path(__file__).resolve().parent.parent / "fixtures" / "imports" / "excel_semicolon_cp1252.csv"


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


@pytest.fixture
def mailbox(tmp_path: Path) -> Any:
    with background(MailboxServer(tmp_path / "mail")) as server:
        yield server


def campaign_on(mongo_uri: str, db_name: str, port: int) -> str:
    """A campaign greeting each recipient by first name and company, and one account on the test server."""

    async def go() -> str:
        client = make_client(mongo_uri)
        try:
            db = client[db_name]
            step = {"subject": "Bonjour {{ first_name }}", "body_text": "{{ company_name }}: {{ title | default('') }}"}
            campaign = await add_campaign(db, steps=[step])
            await add_account(db, port, email="sender@example.com")
            return campaign
        finally:
            await client.close()

    return asyncio.run(go())


def test_a_semicolon_cp1252_export_with_email_address_and_company_headers_is_imported_then_sent(
    cli, mongo_uri, db_name, sync_db, mailbox
) -> None:
    campaign = campaign_on(mongo_uri, db_name, mailbox.port)

    imported = cli("import-leads", "--campaign-id", campaign, str(EXPORT), "--encoding", "cp1252", "--json")
    sent = cli("run-dispatcher", "--once", "--json", "--poll-interval", "0.05", "--no-inbox")

    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.stdout)
    assert (report["delimiter"], report["encoding"]) == (";", "cp1252 (--encoding)")
    assert (report["rows_read"], report["leads_created"], report["recipients_added"]) == (4, 3, 4)
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["outcomes"] == {"sent": 4}
    messages = {m.recipients[0]: m.parse() for m in mailbox.messages}
    assert sorted(messages) == [
        "francoise.leclerc@lumiere.example",
        "juergen.mueller@baeckerei.example",
        "nuria@pena.example",
        "rene.dubois@lumiere.example",
    ]
    rene = messages["rene.dubois@lumiere.example"]
    assert rene["Subject"] == "Bonjour René"
    assert rene.get_content().startswith("Lumière SARL: Directeur général")
    assert messages["nuria@pena.example"].get_content().startswith("Peña & Hijos; S.L.:")
    # Rows of one company (spelt "Lumière SARL" and "LUMIÈRE SARL ") are one lead with two recipients.
    lumiere = sync_db[schema.CAMPAIGN_LEADS].find_one({"lead_key": "company_name:lumière sarl"})
    assert [r["first_name"] for r in lumiere["lead_data"]] == ["René", "Françoise"]
    assert all(r["status"] == "contacted" for r in lumiere["lead_data"])
