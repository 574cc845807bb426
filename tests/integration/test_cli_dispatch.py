"""`run-dispatcher` and `update-lead-statuses` from the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from app.store import schema
from app.store.client import make_client
from app.transport.mailbox import MailboxServer, background
from tests.factories import add_account, add_campaign, add_lead


def seed(mongo_uri: str, db_name: str, port: int) -> dict[str, Any]:
    """Two campaigns' worth of leads on one account, inserted through the async factories."""

    async def go() -> dict[str, Any]:
        client = make_client(mongo_uri)
        db = client[db_name]
        try:
            first = await add_campaign(
                db, name="First", steps=[{"subject": "Hi {{ first_name | default('there') }}", "body_text": "One"}]
            )
            second = await add_campaign(db, name="Second", steps=[{"subject": "Hello", "body_text": "Two"}])
            account = await add_account(db, port, email="sender@example.com", password=None)
            leads = [
                await add_lead(db, first, [{"email": "ann@a.example", "first_name": "Ann"}, {"email": "bo@a.example"}]),
                await add_lead(db, second, [{"email": "cy@b.example"}]),
            ]
            return {"first": first, "second": second, "account": account, "leads": leads}
        finally:
            await client.close()

    return asyncio.run(go())


def snapshot(sync_db: Any) -> dict[str, list[Any]]:
    return {name: list(sync_db[name].find(sort=[("_id", 1)])) for name in sync_db.list_collection_names()}


def index_snapshot(sync_db: Any) -> dict[str, list[Any]]:
    """Every collection's index list, exactly as the server reports it."""
    return {name: list(sync_db[name].list_indexes()) for name in sync_db.list_collection_names()}


def index_names(sync_db: Any, collection: str) -> set[str]:
    return {index["name"] for index in sync_db[collection].list_indexes()}


@pytest.fixture
def mailbox(tmp_path: Path):
    with background(MailboxServer(tmp_path / "mail")) as server:
        yield server


def test_dry_run_shows_what_would_be_sent_and_changes_nothing(cli, mongo_uri, db_name, sync_db, mailbox) -> None:
    # Seeded by the factories, not by a command: the database has documents but none of Outbound's indexes.
    seed(mongo_uri, db_name, mailbox.port)
    documents, indexes = snapshot(sync_db), index_snapshot(sync_db)

    result = cli("run-dispatcher", "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    sends = [r for r in rows if r["action"] == "send"]
    assert sorted(r["email"] for r in sends) == ["ann@a.example", "bo@a.example", "cy@b.example"]
    assert {r["subject"] for r in sends} == {"Hi Ann", "Hi there", "Hello"}
    assert all(r["account"] == "sender@example.com" and r["problem"] is None for r in sends)
    assert [r["action"] for r in rows if r["action"] != "send"] == ["complete", "complete"]
    assert snapshot(sync_db) == documents
    assert index_snapshot(sync_db) == indexes
    assert mailbox.messages == []


def test_dry_run_warns_of_the_collections_and_indexes_a_real_run_would_create(
    cli, mongo_uri, db_name, sync_db, mailbox
) -> None:
    seed(mongo_uri, db_name, mailbox.port)

    result = cli("run-dispatcher", "--dry-run")

    assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert f"warning: database {db_name} lacks collections or indexes" in warning
    assert "missing collections (read as empty here): activities, sends, account_usage, suppressions" in warning
    assert "missing index campaign_leads.campaign_due (campaign_id, progress.next_due_at)" in warning
    assert "missing index sequence_steps.sequence_step (sequence_id, step_order)" in warning
    assert "sends.send_key" not in warning  # named through its missing collection
    assert "`outbound run-dispatcher` without --dry-run creates them" in warning
    assert "3 emails would be sent" in result.stdout


def test_dry_run_on_a_database_that_does_not_exist_leaves_it_absent(cli, db_name, sync_db) -> None:
    result = cli("run-dispatcher", "--dry-run")

    assert result.exit_code == 0, result.output
    assert db_name not in sync_db.client.list_database_names()
    assert "0 emails would be sent" in result.stdout
    warning = " ".join(result.stderr.split())
    assert "missing collections (read as empty here): " + ", ".join(schema.ALL_COLLECTIONS) in warning
    assert "`outbound run-dispatcher` without --dry-run creates them" in warning

    assert json.loads(cli("run-dispatcher", "--dry-run", "--json").stdout) == []
    assert db_name not in sync_db.client.list_database_names()


def test_dry_run_on_a_complete_schema_warns_of_nothing_and_changes_nothing(cli, sync_db) -> None:
    assert cli("demo", "seed").exit_code == 0
    documents, indexes = snapshot(sync_db), index_snapshot(sync_db)

    result = cli("run-dispatcher", "--dry-run", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout), "the demo has leads due now"
    assert "warning" not in result.stderr
    assert snapshot(sync_db) == documents
    assert index_snapshot(sync_db) == indexes


def test_dry_run_names_a_dropped_index_and_does_not_rebuild_it(cli, sync_db) -> None:
    assert cli("demo", "seed").exit_code == 0
    sync_db[schema.SENDS].drop_index("state")
    indexes = index_snapshot(sync_db)

    result = cli("run-dispatcher", "--dry-run")

    assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert warning.count("missing index") == 1
    assert "missing index sends.state (state, updated_at)" in warning
    assert "missing collections" not in warning
    assert index_snapshot(sync_db) == indexes


def test_real_run_creates_every_collection_and_index_first(cli, db_name, sync_db) -> None:
    result = cli("run-dispatcher", "--once", "--poll-interval", "0.05")

    assert result.exit_code == 0, result.output
    assert set(schema.ALL_COLLECTIONS) <= set(sync_db.list_collection_names())
    for collection, indexes in schema.INDEXES.items():
        assert {index.document["name"] for index in indexes} <= index_names(sync_db, collection), collection
    assert "warning" not in cli("run-dispatcher", "--dry-run").stderr


def test_run_dispatcher_once_sends_everything_due_and_exits(cli, mongo_uri, db_name, sync_db, mailbox) -> None:
    ids = seed(mongo_uri, db_name, mailbox.port)

    result = cli("run-dispatcher", "--once", "--json", "--poll-interval", "0.05")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcomes"] == {"sent": 3}
    assert sorted(m.recipients[0] for m in mailbox.messages) == ["ann@a.example", "bo@a.example", "cy@b.example"]
    assert sync_db[schema.CAMPAIGN_LEADS].count_documents({"progress.completed": True}) == 2
    assert sync_db[schema.ACCOUNT_USAGE].find_one({"account_id": ids["account"]})["committed"] == 3


def test_run_dispatcher_only_sends_for_the_given_campaign(cli, mongo_uri, db_name, mailbox) -> None:
    ids = seed(mongo_uri, db_name, mailbox.port)
    result = cli("run-dispatcher", "--once", "--campaign-id", ids["second"], "--poll-interval", "0.05")
    assert result.exit_code == 0, result.output
    assert [m.recipients[0] for m in mailbox.messages] == ["cy@b.example"]


def test_run_dispatcher_refuses_unknown_campaign_and_account(cli, mongo_uri, db_name, sync_db, mailbox) -> None:
    seed(mongo_uri, db_name, mailbox.port)
    before = snapshot(sync_db)
    result = cli("run-dispatcher", "--once", "--campaign-id", "665f1c2a9b1e8a0012345678")
    assert result.exit_code == 1
    assert "campaign 665f1c2a9b1e8a0012345678 not found" in result.stderr
    result = cli("run-dispatcher", "--once", "--account-filter", "nope")
    assert result.exit_code == 1
    assert "account nope not found" in result.stderr
    assert mailbox.messages == []
    after = snapshot(sync_db)
    assert after[schema.CAMPAIGN_LEADS] == before[schema.CAMPAIGN_LEADS]


def test_update_lead_statuses_rebuilds_from_activities(cli, mongo_uri, db_name, sync_db, mailbox) -> None:
    ids = seed(mongo_uri, db_name, mailbox.port)
    assert cli("run-dispatcher", "--once", "--poll-interval", "0.05").exit_code == 0
    lead_id = ids["leads"][0]
    # Simulate a lost lead write: statuses and records wiped, activities kept.
    sync_db[schema.CAMPAIGN_LEADS].update_one(
        {"_id": lead_id},
        {
            "$set": {"lead_data.0.status": "not_contacted", "lead_data.1.status": "replied"},
            "$unset": {"progress.processed_recipients.step_1_recipient_0": "", "lead_data.0.last_contacted_at": ""},
        },
    )

    result = cli("update-lead-statuses", "--json")

    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert counts["changed"] == 1 and counts["examined"] == 2
    lead = sync_db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
    assert lead["lead_data"][0]["status"] == "contacted"
    assert lead["lead_data"][0]["last_step"] == 1
    assert lead["lead_data"][1]["status"] == "replied"  # a person's reply is never overwritten
    assert lead["progress"]["processed_recipients"]["step_1_recipient_0"]["status"] == "sent"
    again = json.loads(cli("update-lead-statuses", "--json").stdout)
    assert again["changed"] == 0
