"""`outbound import-leads` against a real database: grouping, idempotency, rejections, streaming."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from openpyxl import Workbook

from app.domain.importing import open_stream
from app.domain.models import Lead
from app.store import lead_import, schema
from app.store.lead_import import import_leads

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "imports"


@pytest.fixture
def campaign_id(sync_db: Any) -> str:
    """An active campaign whose sequence starts 30 minutes after enrolment."""
    oid = ObjectId()
    sync_db[schema.CAMPAIGNS].insert_one(
        {
            "_id": oid,
            "name": "Import test",
            "status": "active",
            "created_at": datetime.now(UTC),
            "sequence_id": "seq-import",
            "settings": {"daily_limit": 10, "min_wait_time": 1, "batch_size": 5},
        }
    )
    sync_db[schema.SEQUENCE_STEPS].insert_one(
        {"sequence_id": "seq-import", "step_order": 1, "template_id": "t1", "delay_minutes": 30}
    )
    return str(oid)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_import(cli: Any, campaign_id: str, path: Path, *extra: str) -> dict[str, Any]:
    result = cli("import-leads", "--campaign-id", campaign_id, str(path), "--json", *extra)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def leads_of(sync_db: Any, campaign_id: str) -> list[dict[str, Any]]:
    return list(sync_db[schema.CAMPAIGN_LEADS].find({"campaign_id": campaign_id}).sort("lead_key", 1))


def all_emails(leads: list[dict[str, Any]]) -> list[str]:
    return [r["email"] for lead in leads for r in lead["lead_data"]]


GROUPED_CSV = (
    "Email,First Name,Last Name,Company Name,Website\n"
    "ann@acme.example.com,Ann,Lee,Acme,https://www.acme.example.com/about\n"
    "bob@acme.example.com,Bob,,ACME ,acme.example.com\n"
    "cy@globex.example.org,Cy,Ng,Globex,\n"
    "dee@globex.example.org,Dee,,globex,\n"
    "solo@example.net,Solo,,,\n"
)


def test_rows_sharing_a_website_or_company_become_one_lead_with_several_recipients(cli, sync_db, campaign_id, tmp_path):
    before = datetime.now(UTC)
    report = run_import(cli, campaign_id, write(tmp_path, "leads.csv", GROUPED_CSV))

    assert report["rows_read"] == 5
    assert report["leads_created"] == 3
    assert report["recipients_added"] == 5
    leads = leads_of(sync_db, campaign_id)
    assert [lead["lead_key"] for lead in leads] == [
        "company_name:globex",
        "email:solo@example.net",
        "website:acme.example.com",
    ]
    acme = leads[2]
    assert [r["email"] for r in acme["lead_data"]] == ["ann@acme.example.com", "bob@acme.example.com"]
    assert acme["lead_data"][0] == {
        "email": "ann@acme.example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "company_name": "Acme",
        "website": "https://www.acme.example.com/about",
        "status": "not_contacted",
    }
    assert "last_name" not in acme["lead_data"][1]  # empty cells are omitted
    progress = acme["progress"]
    assert progress["current_step_order"] == 1
    assert progress["stopped"] is False
    assert progress["processed_recipients"] == {}
    assert progress["next_due_at"] >= before + timedelta(minutes=30)
    assert progress["next_due_at"] <= datetime.now(UTC) + timedelta(minutes=30)
    # New leads are due a millisecond apart in file order, so a due query can take them a batch at a time.
    dues = sorted(lead["progress"]["next_due_at"] for lead in leads)
    assert len(set(dues)) == len(dues)
    assert all(b - a == timedelta(milliseconds=1) for a, b in itertools.pairwise(dues))
    for lead in leads:
        assert Lead.from_doc(lead).campaign_id == campaign_id


def test_importing_the_same_file_twice_adds_nothing(cli, sync_db, campaign_id, tmp_path):
    path = write(tmp_path, "leads.csv", GROUPED_CSV)
    run_import(cli, campaign_id, path)
    before = leads_of(sync_db, campaign_id)

    second = run_import(cli, campaign_id, path)

    assert second["leads_created"] == 0
    assert second["recipients_added"] == 0
    assert second["duplicates_skipped"] == 5
    assert leads_of(sync_db, campaign_id) == before


def test_an_address_already_in_another_lead_is_never_added_again(cli, sync_db, campaign_id, tmp_path):
    run_import(cli, campaign_id, write(tmp_path, "a.csv", GROUPED_CSV))
    moved = "email,company_name\nANN@ACME.example.com,Initech\nnew@initech.example.com,Initech\n"

    report = run_import(cli, campaign_id, write(tmp_path, "b.csv", moved))

    assert report["duplicates_skipped"] == 1
    assert report["recipients_added"] == 1
    emails = all_emails(leads_of(sync_db, campaign_id))
    assert sorted(emails) == sorted(set(emails))
    assert "ann@acme.example.com" in emails


def test_a_group_split_across_batches_merges_into_one_lead_without_repeating_anyone(
    cli, sync_db, campaign_id, tmp_path
):
    rows = ["email,company_name"]
    rows += [f"p{i}@acme.example.com,Acme" for i in range(7)]
    rows += ["p3@acme.example.com,Acme", "x@example.org,Other", "p8@acme.example.com,acme"]
    path = write(tmp_path, "split.csv", "\n".join(rows) + "\n")

    report = run_import(cli, campaign_id, path, "--batch-size", "3")

    assert report["leads_created"] == 2
    assert report["leads_updated"] == 3  # the Acme lead was extended by each later batch
    assert report["recipients_added"] == 9
    assert report["duplicates_skipped"] == 1
    acme = sync_db[schema.CAMPAIGN_LEADS].find_one({"campaign_id": campaign_id, "lead_key": "company_name:acme"})
    assert [r["email"] for r in acme["lead_data"]] == [f"p{i}@acme.example.com" for i in (0, 1, 2, 3, 4, 5, 6, 8)]


def test_rejected_rows_are_reported_with_their_row_number_and_the_rest_imported(cli, sync_db, campaign_id, tmp_path):
    text = (
        "email,name\n"
        "good@example.com,Good\n"
        "not-an-address,Bad\n"
        "extra@example.com,Too,Many\n"
        ",Nobody\n"
        "fine@example.org,Fine\n"
    )
    report = run_import(cli, campaign_id, write(tmp_path, "mixed.csv", text))

    assert report["rows_read"] == 5
    assert report["recipients_added"] == 2
    assert report["rejected"] == 3
    reasons = {r["row"]: r["reason"] for r in report["rejections"]}
    assert set(reasons) == {3, 4, 5}
    assert "invalid email" in reasons[3]
    assert "3 cells but the header has 2 columns (extra: 'Many')" in reasons[4]
    assert "no email" in reasons[5]
    assert sorted(all_emails(leads_of(sync_db, campaign_id))) == ["fine@example.org", "good@example.com"]


def test_an_internationalised_address_is_imported(cli, sync_db, campaign_id, tmp_path):
    text = "email,first_name\nzoë@müller.example,Zoë\nann@example.com,Ann\n"
    report = run_import(cli, campaign_id, write(tmp_path, "intl.csv", text))

    assert (report["recipients_added"], report["rejected"]) == (2, 0)
    assert sorted(all_emails(leads_of(sync_db, campaign_id))) == ["ann@example.com", "zoë@müller.example"]


def test_text_report_lists_the_first_twenty_rejections_and_ends_with_the_counts(cli, campaign_id, tmp_path):
    text = "email\nok@example.com\n" + "".join(f"bad{i}\n" for i in range(25))
    result = cli("import-leads", "--campaign-id", campaign_id, str(write(tmp_path, "bad.csv", text)))

    assert result.exit_code == 0, result.output
    assert "first 20 of 25" in result.stdout
    assert "row 22:" in result.stdout
    assert "row 23:" not in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].split() == ["rejected", "25"]


def test_an_import_whose_every_row_is_rejected_exits_non_zero_after_its_report(cli, sync_db, campaign_id, tmp_path):
    text = "email\nbad1\nbad2\n"

    result = cli("import-leads", "--campaign-id", campaign_id, str(write(tmp_path, "bad.csv", text)), "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["rejected"]) == (2, 2)
    assert sync_db[schema.CAMPAIGN_LEADS].count_documents({}) == 0


def test_json_lines_and_json_arrays_import_the_same_leads(cli, sync_db, campaign_id, tmp_path):
    people = [
        {"Email": "a@acme.example.com", "first_name": "Ä", "website": "acme.example.com"},
        {"email": "b@acme.example.com", "website": "http://www.ACME.example.com"},
        {"email": "c@example.net", "colleagues": [{"email": "d@example.net"}]},
    ]
    lines = write(tmp_path, "people.jsonl", "\n".join(json.dumps(p) for p in people) + "\n")
    array = write(tmp_path, "people.json", json.dumps(people, indent=2))

    first = run_import(cli, campaign_id, lines)
    second = run_import(cli, campaign_id, array)

    assert (first["format"], second["format"]) == ("jsonl", "json")
    assert first["leads_created"] == 1
    assert first["recipients_added"] == 2
    assert [r["row"] for r in first["rejections"]] == [3]
    assert second["duplicates_skipped"] == 2
    assert second["recipients_added"] == 0
    (lead,) = leads_of(sync_db, campaign_id)
    assert lead["lead_data"][0]["first_name"] == "Ä"


def test_group_by_column_groups_on_that_column_only(cli, sync_db, campaign_id, tmp_path):
    text = "email,Account Owner,company_name\na@example.com,Kim,Acme\nb@example.org,kim ,Globex\nc@example.net,,Acme\n"

    run_import(cli, campaign_id, write(tmp_path, "owners.csv", text), "--group-by", "Account Owner")

    keys = [lead["lead_key"] for lead in leads_of(sync_db, campaign_id)]
    assert keys == ["account_owner:kim", "email:c@example.net"]


def test_dry_run_counts_like_an_import_but_writes_nothing(cli, sync_db, campaign_id, tmp_path):
    path = write(tmp_path, "leads.csv", GROUPED_CSV)

    report = run_import(cli, campaign_id, path, "--dry-run", "--batch-size", "2")

    assert report["dry_run"] is True
    assert (report["leads_created"], report["recipients_added"]) == (3, 5)
    assert leads_of(sync_db, campaign_id) == []


def test_unknown_campaign_is_refused_and_nothing_changes(cli, sync_db, tmp_path):
    missing = str(ObjectId())
    result = cli("import-leads", "--campaign-id", missing, str(write(tmp_path, "l.csv", GROUPED_CSV)))

    assert result.exit_code == 1
    assert f"campaign {missing} not found" in result.stderr
    assert sync_db[schema.CAMPAIGN_LEADS].count_documents({}) == 0


def test_missing_email_column_is_refused_naming_the_column(cli, sync_db, campaign_id, tmp_path):
    result = cli("import-leads", "--campaign-id", campaign_id, str(write(tmp_path, "l.csv", "name,website\nA,x.com\n")))

    assert result.exit_code == 1
    assert "required column 'email' is missing" in result.stderr
    assert sync_db[schema.CAMPAIGN_LEADS].count_documents({}) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.csv"], "no such file"),
        (["--format", "xml", "l.csv"], "unknown --format 'xml'"),
        (["--group-by", "region", "l.csv"], "--group-by 'region': the file has no such column"),
        (["empty.csv"], "is empty"),
        (["--delimiter", ":", "l.csv"], "unknown --delimiter ':'"),
        (["--encoding", "klingon", "l.csv"], "unknown --encoding 'klingon'"),
        (["--map", "email", "l.csv"], "--map 'email': expected FIELD=COLUMN"),
        (["--map", "email=Work Email", "l.csv"], "--map email='Work Email': the file has no column 'Work Email'"),
        (["--sheet", "Leads", "l.csv"], "--sheet is for .xlsx workbooks"),
    ],
)
def test_bad_file_arguments_get_a_clear_error(cli, campaign_id, tmp_path, args, message):
    write(tmp_path, "l.csv", GROUPED_CSV)
    write(tmp_path, "empty.csv", "")
    paths = [str(tmp_path / a) if a.endswith(".csv") else a for a in args]

    result = cli("import-leads", "--campaign-id", campaign_id, *paths)

    assert result.exit_code != 0
    assert message in result.stderr


def test_a_file_that_is_not_utf8_is_refused_naming_the_row_and_byte_until_its_encoding_is_given(
    cli, sync_db, campaign_id, tmp_path
):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"email,name\nok@example.com,Ok\nbad@example.com,Jos\xe9\n")

    refused = cli("import-leads", "--campaign-id", campaign_id, str(path))

    assert refused.exit_code == 1
    assert "row 3 has byte 0xE9" in refused.stderr
    assert "--encoding cp1252" in refused.stderr
    assert "nothing was imported" in refused.stderr
    assert sync_db[schema.CAMPAIGN_LEADS].count_documents({}) == 0
    report = run_import(cli, campaign_id, path, "--encoding", "cp1252")
    assert report["recipients_added"] == 2
    names = {r["email"]: r["name"] for lead in leads_of(sync_db, campaign_id) for r in lead["lead_data"]}
    assert names["bad@example.com"] == "José"


def test_a_twenty_thousand_row_file_streams_into_leads(cli, sync_db, campaign_id, tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("email,first_name,company_name\n")
        for i in range(20_000):
            out.write(f"person{i}@c{i // 2}.example.com,P{i},Company {i // 2}\n")

    report = run_import(cli, campaign_id, path, "--batch-size", "1000")

    assert report["rows_read"] == 20_000
    assert report["leads_created"] == 10_000
    assert report["recipients_added"] == 20_000
    assert sync_db[schema.CAMPAIGN_LEADS].count_documents({"campaign_id": campaign_id}) == 10_000
    two = sync_db[schema.CAMPAIGN_LEADS].find_one({"lead_key": "company_name:company 4321"})
    assert [r["email"] for r in two["lead_data"]] == ["person8642@c4321.example.com", "person8643@c4321.example.com"]


async def test_two_imports_racing_on_the_same_rows_never_store_an_address_twice(db, tmp_path):
    campaign = {"_id": ObjectId(), "name": "Race", "status": "active", "sequence_id": "none", "settings": {}}
    await db[schema.CAMPAIGNS].insert_one(campaign)
    text = "email,company_name\n" + "".join(f"p{i}@c{i // 4}.example.com,Company {i // 4}\n" for i in range(400))
    now = datetime.now(UTC)

    async def one_import() -> Any:
        stream = open_stream(io.StringIO(text), "csv")
        return await import_leads(db, str(campaign["_id"]), stream, now=now, batch_size=7)

    reports = await asyncio.gather(one_import(), one_import(), one_import())

    leads = [doc async for doc in db[schema.CAMPAIGN_LEADS].find({"campaign_id": str(campaign["_id"])})]
    emails = all_emails(leads)
    assert len(leads) == 100
    assert sorted(emails) == sorted({f"p{i}@c{i // 4}.example.com" for i in range(400)})
    assert sum(r.leads_created for r in reports) == 100
    assert sum(r.recipients_added for r in reports) == 400
    assert sum(r.duplicates_skipped for r in reports) == 2 * 400


async def test_imports_grouping_differently_racing_on_one_campaign_put_each_address_in_one_lead(db, tmp_path):
    campaign = {"_id": ObjectId(), "name": "Race", "status": "active", "sequence_id": "none", "settings": {}}
    await db[schema.CAMPAIGNS].insert_one(campaign)
    campaign_id = str(campaign["_id"])
    rows = 300
    text = "email,website,company_name\n" + "".join(
        f"p{i}@example.com,w{i // 2}.example.com,Company {i // 3}\n" for i in range(rows)
    )
    now = datetime.now(UTC)

    async def one_import(group_by: str) -> Any:
        stream = open_stream(io.StringIO(text), "csv")
        return await import_leads(
            db, campaign_id, stream, now=now, group_by=group_by, batch_size=7, keep_rejections=None
        )

    by_website, by_company = await asyncio.gather(one_import("website"), one_import("company_name"))

    leads = [doc async for doc in db[schema.CAMPAIGN_LEADS].find({"campaign_id": campaign_id})]
    emails = all_emails(leads)
    assert sorted(emails) == sorted(f"p{i}@example.com" for i in range(rows)), "each address once, none lost"
    for report in (by_website, by_company):
        assert report.recipients_added + report.duplicates_skipped + report.rejected == report.rows_read == rows
    assert by_website.recipients_added + by_company.recipients_added == rows
    # The import that lost a row's race rejects it by row number, naming the lead the other import put it in.
    assert by_website.rejected + by_company.rejected > 0, "the imports' writes interleave batch by batch"
    lead_of = {r["email"]: lead["lead_key"] for lead in leads for r in lead["lead_data"]}
    for report, winner in ((by_website, "company_name:"), (by_company, "website:")):
        for rejection in report.rejections:
            email = f"p{rejection.row - 2}@example.com"
            assert lead_of[email].startswith(winner)
            assert email in rejection.reason
            assert f"lead {lead_of[email]!r}" in rejection.reason
            assert "another import" in rejection.reason

    again = await one_import("website")
    assert (again.recipients_added, again.duplicates_skipped, again.rejected) == (0, rows, 0)


async def test_rows_whose_address_another_lead_took_after_the_duplicate_check_are_rejected_by_row(db, monkeypatch):
    campaign = {"_id": ObjectId(), "name": "Race", "status": "active", "sequence_id": "none", "settings": {}}
    await db[schema.CAMPAIGNS].insert_one(campaign)
    campaign_id = str(campaign["_id"])
    progress = {"current_step_order": 1, "stopped": False, "processed_recipients": {}}
    # Another import, grouping by company, stored ann and dee between this import's check and its write.
    await db[schema.CAMPAIGN_LEADS].insert_many(
        [
            {
                "campaign_id": campaign_id,
                "lead_key": "company_name:acme",
                "lead_data": [{"email": "ann@acme.example.com"}, {"email": "dee@acme.example.com"}],
                "progress": progress,
            },
            {
                "campaign_id": campaign_id,
                "lead_key": "website:globex.example.org",
                "lead_data": [{"email": "old@globex.example.org"}],
                "progress": progress,
            },
        ]
    )
    checked = lead_import._Writer.stored_in
    calls = 0

    async def blind_first_check(self: Any, emails: Any) -> dict[str, str | None]:
        nonlocal calls
        calls += 1
        return {} if calls == 1 else await checked(self, emails)

    monkeypatch.setattr(lead_import._Writer, "stored_in", blind_first_check)
    text = (
        "email,website\n"
        "ann@acme.example.com,acme.example.com\n"  # a new lead: refused, ann is taken
        "bo@acme.example.com,acme.example.com\n"
        "dee@acme.example.com,globex.example.org\n"  # appended to an existing lead: refused, dee is taken
    )

    report = await import_leads(db, campaign_id, open_stream(io.StringIO(text), "csv"), now=datetime.now(UTC))

    assert [r.row for r in report.rejections] == [2, 4]
    assert all("lead 'company_name:acme'" in r.reason and "another import" in r.reason for r in report.rejections)
    assert (report.leads_created, report.recipients_added, report.rejected) == (1, 1, 2)
    leads = {doc["lead_key"]: doc async for doc in db[schema.CAMPAIGN_LEADS].find({"campaign_id": campaign_id})}
    assert [r["email"] for r in leads["website:acme.example.com"]["lead_data"]] == ["bo@acme.example.com"]
    assert [r["email"] for r in leads["website:globex.example.org"]["lead_data"]] == ["old@globex.example.org"]
    assert sorted(all_emails(list(leads.values()))) == sorted(set(all_emails(list(leads.values()))))


def test_dry_run_shows_the_mapping_grouping_first_rows_and_rejections_and_writes_nothing_not_even_the_schema(
    cli, sync_db, campaign_id, tmp_path
):
    collections = sorted(sync_db.list_collection_names())
    indexes = {name: list(sync_db[name].list_indexes()) for name in collections}
    export = (FIXTURES / "excel_semicolon_cp1252.csv").read_bytes()
    path = tmp_path / "export.csv"
    path.write_bytes(export.replace(b"nuria@pena.example", b"nuria-at-pena.example"))

    result = cli("import-leads", "--campaign-id", campaign_id, str(path), "--encoding", "cp1252", "--dry-run")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Dry run (nothing written)" in out
    assert "read as csv, delimiter ';', encoding cp1252 (--encoding)" in out
    assert "Email Address  -> email (recognised heading)" in out
    assert "Company        -> company_name (recognised heading)" in out
    assert "Budget         -> budget (custom field)" in out
    assert "company_name:lumière sarl (new lead): rows 2, 3: rene.dubois@lumiere.example, francoise" in out
    assert (
        'row 2 -> company_name:lumière sarl: {"email": "rene.dubois@lumiere.example", "company_name": "Lumière' in out
    )
    assert "row 5: invalid email" in out
    assert out.rstrip().splitlines()[-3:] == [
        "  recipients added             3",
        "  duplicates skipped           0",
        "  rejected                     1",
    ]
    assert sorted(sync_db.list_collection_names()) == collections
    assert {name: list(sync_db[name].list_indexes()) for name in collections} == indexes


def test_dry_run_in_json_lists_the_preview_and_every_rejection(cli, campaign_id, tmp_path):
    text = "email,company\n" + "".join(f"bad{i},Acme\n" for i in range(30)) + "ok@acme.example,Acme\n"

    report = run_import(cli, campaign_id, write(tmp_path, "leads.csv", text), "--dry-run")

    assert len(report["rejections"]) == 30
    assert report["columns"] == [
        {"source": "email", "field": "email", "how": "field"},
        {"source": "company", "field": "company_name", "how": "alias"},
    ]
    assert report["preview"]["leads"] == [
        {"lead_key": "company_name:acme", "new": True, "recipients": 1, "rows": [32], "emails": ["ok@acme.example"]}
    ]
    assert report["preview"]["rows"][0]["recipient"] == {
        "email": "ok@acme.example",
        "company_name": "Acme",
        "status": "not_contacted",
    }


def test_a_dry_run_whose_every_row_is_rejected_exits_non_zero(cli, campaign_id, tmp_path):
    result = cli(
        "import-leads", "--campaign-id", campaign_id, str(write(tmp_path, "l.csv", "email\nnope\n")), "--dry-run"
    )

    assert result.exit_code == 1
    assert "Every row was rejected" in result.stdout


def test_excel_unicode_text_imports_as_tab_separated_utf16(cli, sync_db, campaign_id):
    report = run_import(cli, campaign_id, FIXTURES / "unicode_text_utf16.txt")

    assert (report["delimiter"], report["encoding"]) == ("\t", "utf-16 (BOM)")
    (lead,) = leads_of(sync_db, campaign_id)
    assert lead["lead_key"] == "company_name:株式会社カイシャ"
    assert [r["name"] for r in lead["lead_data"]] == ["山田 明", "Zoë Ångström"]


def test_a_workbook_sheet_imports_with_map_and_aliases(cli, sync_db, campaign_id, tmp_path):
    book = Workbook()
    book.active.title = "Notes"
    book.active.append(["nothing to import"])
    sheet = book.create_sheet("Leads")
    sheet.append(["Contact", "Organization", "Employees", "Since"])
    sheet.append(["ann@acme.example", "Acme", 250, datetime(2021, 6, 1)])
    sheet.append(["bob@acme.example", "ACME"])
    path = tmp_path / "leads.xlsx"
    book.save(path)

    report = run_import(cli, campaign_id, path, "--sheet", "Leads", "--map", "email=contact")

    assert (report["format"], report["leads_created"], report["recipients_added"]) == ("xlsx", 1, 2)
    (lead,) = leads_of(sync_db, campaign_id)
    assert lead["lead_data"][0] == {
        "email": "ann@acme.example",
        "company_name": "Acme",
        "employees": "250",
        "since": "2021-06-01",
        "status": "not_contacted",
    }


def test_ragged_rows_import_and_only_the_row_with_extra_cells_is_rejected(cli, sync_db, campaign_id):
    report = run_import(cli, campaign_id, FIXTURES / "ragged.csv")

    assert (report["rows_read"], report["recipients_added"], report["rejected"]) == (5, 4, 1)
    assert report["rejections"][0]["row"] == 6
    assert [lead["lead_key"] for lead in leads_of(sync_db, campaign_id)] == [
        "company_name:acme",
        "company_name:globex",
        "email:cy@globex.example",
    ]


def test_nested_json_is_flattened_and_groups_by_an_aliased_column(cli, sync_db, campaign_id):
    report = run_import(cli, campaign_id, FIXTURES / "nested.json", "--group-by", "Company")

    assert report["group_by"] == ["company_name"]
    assert (report["recipients_added"], report["rejected"]) == (2, 1)
    (lead,) = leads_of(sync_db, campaign_id)
    assert lead["lead_key"] == "company_name:acme"
    ann, bob = lead["lead_data"]
    assert (ann["address_city"], ann["tags"], ann["website"]) == ("Lyon", ["vip", "2024"], "https://acme.example")
    assert (bob["email"], bob["address_geo_lat"]) == ("bob@acme.example", 48.85)
