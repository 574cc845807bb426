"""`outbound suppress add|remove|list|import` against a real database, and what the dispatcher then skips."""

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
from tests.integration.cli_documents import ok


def values(sync_db: Any) -> dict[str, tuple[str, str]]:
    return {d["value"]: (d["reason"], d["detail"]) for d in sync_db[schema.SUPPRESSIONS].find()}


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- add and remove -------------------------------------------------------------------------------------------


def test_add_stores_an_address_and_a_domain_as_the_send_time_check_compares_them(cli, sync_db) -> None:
    first = ok(cli("suppress", "add", "Ann@Example.COM"))
    assert "added 1, already suppressed 0" in first.stdout
    ok(cli("suppress", "add", "@XN--MLLER-KVA.example", "--reason", "complaint"))

    assert values(sync_db) == {
        "ann@example.com": ("manual", "suppress add"),
        "müller.example": ("complaint", "suppress add"),
    }
    for doc in sync_db[schema.SUPPRESSIONS].find():
        assert doc["created_at"] is not None


def test_adding_an_entry_twice_keeps_the_first_and_says_so(cli, sync_db) -> None:
    ok(cli("suppress", "add", "ann@example.com", "--reason", "unsubscribed"))
    again = ok(cli("suppress", "add", "ANN@example.com", "--reason", "manual"))

    assert "already suppressed" in again.stdout and "added 0, already suppressed 1" in again.stdout
    assert values(sync_db) == {"ann@example.com": ("unsubscribed", "suppress add")}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not-an-address", "write @not-an-address to suppress the whole domain"),
        ("@nodot", "'@nodot' is not a valid domain"),
        ("two@@example.com", "'two@@example.com' is not a valid address"),
        ("@a@b.example", "is not a domain: write it as @example.com"),
    ],
)
def test_add_refuses_an_invalid_value_naming_it_and_changes_nothing(cli, sync_db, value: str, message: str) -> None:
    result = cli("suppress", "add", value)

    assert result.exit_code == 2
    assert message in result.stderr and "nothing was changed" in result.stderr
    assert sync_db[schema.SUPPRESSIONS].count_documents({}) == 0


def test_add_refuses_an_empty_reason(cli, sync_db) -> None:
    result = cli("suppress", "add", "ann@example.com", "--reason", " ")

    assert result.exit_code == 2 and "--reason is empty" in result.stderr
    assert sync_db[schema.SUPPRESSIONS].count_documents({}) == 0


def test_remove_takes_the_entry_off_and_notes_a_domain_that_still_blocks_it(cli, sync_db) -> None:
    ok(cli("suppress", "add", "ann@example.com"))
    ok(cli("suppress", "add", "@example.com"))

    result = ok(cli("suppress", "remove", "Ann@Example.com", "--yes"))

    assert "Removed ann@example.com" in result.stdout
    assert "@example.com is still suppressed" in result.stderr
    assert list(values(sync_db)) == ["example.com"]


def test_remove_asks_first_and_refuses_an_unknown_entry(cli, sync_db) -> None:
    ok(cli("suppress", "add", "@example.com"))

    unconfirmed = cli("suppress", "remove", "@example.com")
    assert unconfirmed.exit_code == 1 and "pass --yes" in unconfirmed.stderr
    unknown = cli("suppress", "remove", "bob@example.com", "--yes")
    assert unknown.exit_code == 1 and "bob@example.com is not on the suppression list" in unknown.stderr
    assert list(values(sync_db)) == ["example.com"]


# --- list -----------------------------------------------------------------------------------------------------


def test_list_shows_addresses_and_at_domains_bounded_by_limit(cli, sync_db) -> None:
    for value in ("zed@example.com", "@blocked.example", "ann@example.com"):
        ok(cli("suppress", "add", value))

    listed = json.loads(ok(cli("suppress", "list", "--json", "--limit", "2")).stdout)

    assert (listed["total"], listed["shown"]) == (3, 2)
    assert [(e["value"], e["kind"]) for e in listed["suppressions"]] == [
        ("ann@example.com", "address"),
        ("@blocked.example", "domain"),
    ]
    assert listed["suppressions"][0]["reason"] == "manual"
    table = ok(cli("suppress", "list")).stdout
    assert "@blocked.example" in table and "zed@example.com" in table and "(3 of 3)" in table


def test_list_of_an_empty_database_creates_nothing(cli, sync_db) -> None:
    listed = json.loads(ok(cli("suppress", "list", "--json")).stdout)

    assert listed == {"total": 0, "shown": 0, "suppressions": []}
    assert schema.SUPPRESSIONS not in sync_db.list_collection_names()


# --- import ---------------------------------------------------------------------------------------------------


def test_import_of_a_plain_list_skips_comments_blank_lines_and_repeats(cli, sync_db, tmp_path) -> None:
    ok(cli("suppress", "add", "old@example.com"))
    text = (
        "# unsubscribes from the old tool\n\nAnn@Example.com\n"
        "@blocked.example   # whole domain\nold@example.com\nann@example.com\n"
    )
    path = write(tmp_path, "list.txt", text.encode())

    report = json.loads(ok(cli("suppress", "import", str(path), "--reason", "unsubscribed", "--json")).stdout)

    assert report["format"] == "list"
    assert (report["added"], report["already_suppressed"], report["duplicates_in_file"]) == (2, 1, 1)
    assert values(sync_db) == {
        "old@example.com": ("manual", "suppress add"),
        "ann@example.com": ("unsubscribed", "suppress import list.txt"),
        "blocked.example": ("unsubscribed", "suppress import list.txt"),
    }


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("comma.csv", "Name,Email\nZoë,zoë@müller.example\nAnn,ann@example.com\n".encode()),
        ("bom-semicolon.csv", "\ufeffName;Email Address\nZoë;zoë@müller.example\nAnn;ann@example.com\n".encode()),
        ("excel.csv", "Name;E-mail\nZoë;zoë@müller.example\nAnn;ann@example.com\n".encode("cp1252")),
    ],
)
def test_import_of_a_csv_reads_its_email_column_in_any_usual_encoding(cli, sync_db, tmp_path, name, data) -> None:
    result = ok(cli("suppress", "import", str(write(tmp_path, name, data))))

    assert "added 2, already suppressed 0" in result.stdout
    assert set(values(sync_db)) == {"zoë@müller.example", "ann@example.com"}


def test_import_with_invalid_lines_is_refused_whole_listing_them(cli, sync_db, tmp_path) -> None:
    path = write(tmp_path, "list.txt", b"ann@example.com\nnot-an-address\nbob@example.com\n@nodot\n")

    result = cli("suppress", "import", str(path))

    assert result.exit_code == 2
    assert "2 invalid lines; nothing was imported" in result.stderr
    assert "line 2: 'not-an-address'" in result.stderr and "line 4: '@nodot'" in result.stderr
    assert "--skip-invalid" in result.stderr
    assert sync_db[schema.SUPPRESSIONS].count_documents({}) == 0


def test_import_with_skip_invalid_reports_the_bad_lines_and_adds_the_rest(cli, sync_db, tmp_path) -> None:
    path = write(tmp_path, "people.csv", b"email,name\nann@example.com,Ann\nnope,Nope\n")

    result = ok(cli("suppress", "import", str(path), "--skip-invalid"))

    assert "added 1" in result.stdout and "invalid lines skipped 1" in result.stdout
    assert "line 3: 'nope'" in result.stderr
    assert list(values(sync_db)) == ["ann@example.com"]


def test_import_of_a_csv_without_an_email_column_is_refused(cli, sync_db, tmp_path) -> None:
    result = cli("suppress", "import", str(write(tmp_path, "x.csv", b"name,company\nAnn,Acme\n")))

    assert result.exit_code == 2 and "without an email column" in result.stderr
    assert sync_db[schema.SUPPRESSIONS].count_documents({}) == 0


def test_import_of_a_missing_file_says_so(cli, tmp_path) -> None:
    result = cli("suppress", "import", str(tmp_path / "absent.txt"))

    assert result.exit_code == 1 and "no such file" in result.stderr


# --- what the dispatcher does with it -------------------------------------------------------------------------


def seed_lead(mongo_uri: str, db_name: str, port: int, people: list[dict[str, Any]]) -> Any:
    async def go() -> Any:
        client = make_client(mongo_uri)
        try:
            db = client[db_name]
            campaign = await add_campaign(db, steps=[{"subject": "Hello", "body_text": "Hi"}])
            await add_account(db, port, email="sender@example.com", password=None)
            return await add_lead(db, campaign, people)
        finally:
            await client.close()

    return asyncio.run(go())


def test_a_suppressed_domain_stops_the_send_in_the_batch_and_the_colleague_is_still_mailed(
    cli, mongo_uri, db_name, sync_db, tmp_path
) -> None:
    with background(MailboxServer(tmp_path / "mail")) as server:
        lead = seed_lead(
            mongo_uri, db_name, server.port, [{"email": "cy@Blocked.example"}, {"email": "di@open.example"}]
        )
        ok(cli("suppress", "add", "@blocked.example", "--reason", "do_not_contact"))
        ok(cli("run-dispatcher", "--once", "--poll-interval", "0.05"))
        delivered = [m.recipients for m in server.messages]

    assert delivered == [("di@open.example",)]
    skipped = sync_db[schema.ACTIVITIES].find_one({"lead_id": lead, "type": "skipped"})
    assert (skipped["email"], skipped["error"]) == (
        "cy@blocked.example",
        "suppressed (do_not_contact): blocked.example",
    )
