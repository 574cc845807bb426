"""Reading the files people have: delimiters, encodings, header aliases, ragged rows, nested JSON, workbooks.

Pure logic on values and in-memory files; the fixtures under tests/fixtures/imports are real-shaped exports.
"""

from __future__ import annotations

import codecs
import io
import json
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from app.domain.import_rows import Candidate
from app.domain.importing import (
    ColumnMapping,
    ImportFileError,
    ImportOptions,
    ImportPreview,
    RawRow,
    Rejection,
    cell_text,
    choose_encoding,
    codec_name,
    first_undecodable,
    json_row,
    map_columns,
    open_file,
    open_stream,
    parse_delimiter,
    parse_map_options,
    resolve_column,
    sniff_delimiter,
    to_candidate,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "imports"


def opened(data: bytes, name: str = "leads.csv", **options: Any) -> list[RawRow | Rejection]:
    return list(open_file(io.BytesIO(data), name, ImportOptions(**options)).rows)


def fields_of(rows: list[RawRow | Rejection]) -> list[Any]:
    return [dict(r.fields) if isinstance(r, RawRow) else r for r in rows]


# Delimiters


@pytest.mark.parametrize(
    ("sample", "delimiter"),
    [
        (["email,name\n", "a@x.example,A\n"], ","),
        (["email;name;company\n", "a@x.example;A;Acme, Inc.\n"], ";"),
        (["email\tname\n", "a@x.example\tA, B\n"], "\t"),
        (["email|name\n", "a@x.example|A\n"], "|"),
        (['"Email";"Name, full"\n', '"a@x.example";"Lee, Ann"\n'], ";"),  # a quoted comma is not a delimiter
        (["email,note\n", 'a@x.example,"a;b;c|d"\n'], ","),
        (["email,a|b,c\n", "a@x.example,1,2\n"], ","),  # a pipe in one heading: the rows decide
        (["email\n", "a@x.example\n"], ","),  # one column
        (["email;name\n"], ";"),  # a header alone
    ],
)
def test_the_delimiter_is_the_one_that_splits_the_header_and_the_rows_alike(sample, delimiter):
    assert sniff_delimiter(sample) == delimiter


@pytest.mark.parametrize(
    ("option", "delimiter"), [(",", ","), ("semicolon", ";"), (";", ";"), ("tab", "\t"), ("\\t", "\t"), ("|", "|")]
)
def test_the_delimiter_option_takes_the_character_or_its_name(option, delimiter):
    assert parse_delimiter(option) == delimiter


def test_an_unknown_delimiter_option_is_refused():
    with pytest.raises(ImportFileError, match=r"unknown --delimiter ':'"):
        parse_delimiter(":")


def test_a_forced_delimiter_wins_and_a_wrong_one_says_what_the_header_looks_like():
    text = "email;name,title\na@x.example;Lee, CEO\n"  # as wide split at ',' as at ';': the sniffer says ','
    with pytest.raises(ImportFileError, match=r"looks separated by ';': pass --delimiter ';'"):
        open_stream(io.StringIO(text))

    stream = open_stream(io.StringIO(text), delimiter=";")

    assert stream.delimiter == ";"
    assert list(stream.rows) == [RawRow(2, {"email": "a@x.example", "name_title": "Lee, CEO"})]


# Encodings


@pytest.mark.parametrize(
    ("head", "requested", "codec", "label"),
    [
        (b"email\n", None, "utf-8", "utf-8"),
        (codecs.BOM_UTF8 + b"email\n", None, "utf-8-sig", "utf-8 (BOM)"),
        (codecs.BOM_UTF16_LE + "email".encode("utf-16-le"), None, "utf-16", "utf-16 (BOM)"),
        (codecs.BOM_UTF16_BE + "email".encode("utf-16-be"), "auto", "utf-16", "utf-16 (BOM)"),
        (b"email\n", "cp1252", "cp1252", "cp1252 (--encoding)"),
        (b"email\n", "Windows-1252", "cp1252", "cp1252 (--encoding)"),
        (b"email\n", "latin1", "iso8859-1", "iso8859-1 (--encoding)"),
        (codecs.BOM_UTF8 + b"email\n", "utf8", "utf-8-sig", "utf-8 (BOM)"),
        (codecs.BOM_UTF16_LE + b"e\x00", "utf-16-le", "utf-16", "utf-16 (BOM)"),
    ],
)
def test_the_encoding_is_the_bom_s_else_the_option_s_else_utf8(head, requested, codec, label):
    chosen = choose_encoding(head, requested)

    assert (chosen.codec, chosen.label) == (codec, label)


@pytest.mark.parametrize(
    ("head", "requested", "message"),
    [
        ("email\n".encode("utf-16-le"), None, "pass --encoding utf-16-le"),
        ("email\n".encode("utf-16-be"), None, "pass --encoding utf-16-be"),
        (codecs.BOM_UTF8 + b"email", "cp1252", "starts with a UTF-8 byte-order mark, so it is UTF-8, not cp1252"),
        (b"email", "klingon", "unknown --encoding 'klingon'"),
        (b"email", "base64", "unknown --encoding 'base64'"),
    ],
)
def test_an_encoding_that_cannot_be_right_is_refused_saying_what_to_pass(head, requested, message):
    with pytest.raises(ImportFileError, match=message):
        choose_encoding(head, requested)


def test_codec_names_are_python_s():
    assert codec_name(" CP1252 ") == "cp1252"


@pytest.mark.parametrize(
    ("chunks", "codec", "found"),
    [
        ([b"email\nann@x.example\n"], "utf-8", None),
        (["é\nü\n".encode()[:1], "é\nü\n".encode()[1:]], "utf-8", None),  # a character split between reads
        ([b"email\nok\nJos\xe9\n"], "utf-8", (3, 12, 0xE9)),
        ([b"email\nok\n", b"Jos\xe9\n"], "utf-8", (3, 12, 0xE9)),
        ([b"email\n\xc3"], "utf-8", (2, 6, 0xC3)),  # cut short at the end of the file
        ([b"a\n\x81\n"], "cp1252", (2, 2, 0x81)),  # a byte cp1252 leaves undefined
        ([b"Jos\xe9\n"], "cp1252", None),
        ([bytes(range(256))], "latin-1", None),
    ],
)
def test_the_first_undecodable_byte_is_found_with_its_line_and_offset(chunks, codec, found):
    result = first_undecodable(chunks, codec)

    assert (None if result is None else (result.line, result.offset, result.byte)) == found


def test_a_cp1252_file_read_as_utf8_is_refused_naming_the_row_byte_and_encoding_to_pass():
    data = "email;first_name\nann@x.example;Ann\nrene@x.example;René\n".encode("cp1252")

    with pytest.raises(ImportFileError) as caught:
        opened(data)

    message = str(caught.value)
    assert "row 3 has byte 0xE9 (file offset 53)" in message
    assert "--encoding cp1252" in message


def test_the_excel_semicolon_cp1252_export_reads_with_its_aliases_and_accents():
    data = (FIXTURES / "excel_semicolon_cp1252.csv").read_bytes()

    stream = open_file(io.BytesIO(data), "export.csv", ImportOptions(encoding="cp1252"))
    rows = list(stream.rows)

    assert (stream.delimiter, stream.encoding) == (";", "cp1252 (--encoding)")
    assert stream.columns == ("email", "company_name", "first_name", "last_name", "title", "budget")
    assert [m.how for m in stream.mappings] == ["alias", "alias", "field", "field", "alias", "custom"]
    assert rows[0] == RawRow(
        2,
        {
            "email": "rene.dubois@lumiere.example",
            "company_name": "Lumière SARL",
            "first_name": "René",
            "last_name": "Dubois",
            "title": "Directeur général",
            "budget": "5 000 €",
        },
    )
    assert fields_of(rows)[3]["company_name"] == "Peña & Hijos; S.L."
    assert len(rows) == 4  # the trailing row of delimiters only is blank
    keys = {to_candidate(r).lead_key for r in rows if isinstance(r, RawRow)}  # type: ignore[union-attr]
    assert keys == {"company_name:lumière sarl", "company_name:bäckerei müller gmbh", "company_name:peña & hijos; s.l."}


def test_excel_unicode_text_is_utf16_with_tabs_detected_from_its_bom():
    stream = open_file(io.BytesIO((FIXTURES / "unicode_text_utf16.txt").read_bytes()), "export.txt")
    rows = fields_of(list(stream.rows))

    assert (stream.format, stream.delimiter, stream.encoding) == ("csv", "\t", "utf-16 (BOM)")
    assert rows == [
        {
            "email": "akira@kaisha.example",
            "name": "山田 明",
            "company_name": "株式会社カイシャ",
            "phone": "+81 3 1234 5678",
            "timezone": "Asia/Tokyo",
        },
        {
            "email": "zoe@kaisha.example",
            "name": "Zoë Ångström",
            "company_name": "株式会社カイシャ",
            "timezone": "Europe/Stockholm",
        },
    ]


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8])
def test_utf8_with_or_without_a_bom_needs_no_option(bom):
    rows = opened(bom + "Email,First Name\nzoe@x.example,Zoë\n".encode())

    assert fields_of(rows) == [{"email": "zoe@x.example", "first_name": "Zoë"}]


def test_an_old_excel_workbook_is_refused_with_what_to_save_it_as():
    with pytest.raises(ImportFileError, match=r"\.xls\) or password-protected workbook: save it as \.xlsx"):
        opened(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "old.xls")


# Headers


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Email", "email"),
        ("E-mail", "email"),
        ("EMAIL ADDRESS", "email"),
        ("email_address", "email"),
        ("Work Email", "email"),
        ("Company", "company_name"),
        ("Company Name", "company_name"),
        ("Organisation", "company_name"),
        ("First Name", "first_name"),
        ("firstname", "first_name"),
        ("Last-Name", "last_name"),
        ("Full Name", "name"),
        ("Name", "name"),
        ("URL", "website"),
        ("Domain", "website"),
        ("Web Site", "website"),
        ("Phone Number", "phone"),
        ("Job Title", "title"),
        ("Time Zone", "timezone"),
        ("Lead Source", "lead_source"),
        ("Revenue ($)", "revenue"),
        ("company.name", "company_name"),
    ],
)
def test_headers_are_matched_to_fields_ignoring_case_spaces_underscores_and_hyphens(header, field):
    (mapping,) = map_columns([header], {})

    assert mapping.field == field


def test_the_best_spelling_takes_the_field_and_the_other_stays_a_custom_field():
    mappings = map_columns(["Work Email", "Email", "Company", "Company Name", "status", "   "], {})

    assert mappings == [
        ColumnMapping("Work Email", "work_email", "custom"),
        ColumnMapping("Email", "email", "field"),
        ColumnMapping("Company", "company", "custom"),
        ColumnMapping("Company Name", "company_name", "field"),
        ColumnMapping("status", "", "reserved"),
        ColumnMapping("   ", "", "unnamed"),
    ]


def test_map_names_a_column_the_aliases_do_not_know_and_wins_over_them():
    overrides = parse_map_options(["email=Contact", "Company=Employer"])

    mappings = map_columns(["Email", "Contact", "Employer"], overrides)

    assert overrides == {"email": "Contact", "company_name": "Employer"}
    assert mappings == [
        ColumnMapping("Email", "", "replaced"),
        ColumnMapping("Contact", "email", "--map"),
        ColumnMapping("Employer", "company_name", "--map"),
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["email"], "expected FIELD=COLUMN"),
        (["=Work Email"], "expected FIELD=COLUMN"),
        (["email="], "expected FIELD=COLUMN"),
        (["email=A", "E-mail=B"], "--map names 'email' twice"),
    ],
)
def test_malformed_map_options_are_refused(values, message):
    with pytest.raises(ImportFileError, match=message):
        parse_map_options(values)


def test_a_map_naming_a_missing_column_is_refused_listing_the_columns():
    with pytest.raises(ImportFileError, match=r"--map email='Work Email': the file has no column 'Work Email'"):
        map_columns(["Contact", "Name"], {"email": "Work Email"})


def test_two_columns_stored_under_one_name_are_a_file_error():
    with pytest.raises(ImportFileError, match="columns 1 and 2 are both named 'lead_source'"):
        map_columns(["Lead Source", "lead-source"], {})


def test_a_missing_email_column_names_the_option_to_map_it():
    with pytest.raises(ImportFileError, match=r"required column 'email' is missing .*--map email=COLUMN"):
        open_stream(io.StringIO("Contact,Name\na@x.example,A\n"))


@pytest.mark.parametrize(
    ("name", "field"),
    [("Company", "company_name"), ("company_name", "company_name"), ("Region", "region"), ("Owner", None)],
)
def test_group_by_may_name_the_heading_or_the_field(name, field):
    mappings = map_columns(["Email", "Company", "Region"], {})

    assert resolve_column(name, mappings) == field


def test_group_by_a_json_field_takes_its_spelling():
    assert resolve_column("Company", None) == "company_name"
    assert resolve_column("Account Owner", None) == "account_owner"


# Ragged rows


def test_ragged_rows_have_missing_trailing_cells_empty_and_extra_filled_cells_rejected():
    rows = opened((FIXTURES / "ragged.csv").read_bytes(), "ragged.csv")

    assert fields_of(rows) == [
        {
            "email": "ann@acme.example",
            "first_name": "Ann",
            "last_name": "Lee",
            "company_name": "Acme",
            "phone": "+1 555 0100",
        },
        {"email": "bob@acme.example", "first_name": "Bob", "last_name": "Stone", "company_name": "Acme"},
        {"email": "cy@globex.example", "first_name": "Cy"},
        {
            "email": "dee@globex.example",
            "first_name": "Dee",
            "last_name": "Ng",
            "company_name": "Globex",
            "phone": "+1 555 0101",
        },
        Rejection(6, "has 6 cells but the header has 5 columns (extra: 'sales team'); quote a value that holds ','"),
    ]


# Nested JSON


@pytest.mark.parametrize(
    ("item", "fields"),
    [
        ({"email": "a@x.example", "address": {"city": "Lyon"}}, {"email": "a@x.example", "address_city": "Lyon"}),
        ({"contact": {"email": "a@x.example"}}, {"email": "a@x.example"}),
        ({"email": "a@x.example", "company": {"name": "Acme"}}, {"email": "a@x.example", "company_name": "Acme"}),
        ({"email": "a@x.example", "tags": ["vip", " ", None, 3]}, {"email": "a@x.example", "tags": ["vip", 3]}),
        ({"email": "a@x.example", "tags": [], "empty": {}}, {"email": "a@x.example"}),
        ({"email": "a@x.example", "a": {"b": {"c": {"d": 1}}}}, {"email": "a@x.example", "a_b_c_d": 1}),
    ],
)
def test_nested_objects_are_flattened_to_dotted_columns_and_lists_of_scalars_kept(item, fields):
    assert json_row(1, item) == RawRow(1, fields)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (
            {"email": "a@x.example", "colleagues": [{"email": "b@x.example"}]},
            "field 'colleagues' is a list of objects or lists; only lists of text, numbers and true/false are imported",
        ),
        (
            {"email": "a@x.example", "address": {"city": "Lyon"}, "address_city": "Paris"},
            "fields 'address.city' and 'address_city' are the same column 'address_city'",
        ),
        (
            {"email": "a@x.example", "x": {"x": {"x": {"x": {"x": {"x": {"x": {"x": {"x": 1}}}}}}}}},
            "field 'x.x.x.x.x.x.x.x' is nested more than 8 levels deep",
        ),
    ],
)
def test_json_that_cannot_be_a_row_is_rejected_naming_the_field(item, reason):
    assert json_row(4, item) == Rejection(4, reason)


def test_the_nested_json_fixture_flattens_maps_and_rejects_a_list_of_people():
    stream = open_file(io.BytesIO((FIXTURES / "nested.json").read_bytes()), "people.json")
    rows = list(stream.rows)

    assert rows[0] == RawRow(
        1,
        {
            "email": "ann@acme.example",
            "first_name": "Ann",
            "last_name": "Lee",
            "company_name": "Acme",
            "website": "https://acme.example",
            "address_city": "Lyon",
            "address_country": "FR",
            "tags": ["vip", "2024"],
            "score": 7,
        },
    )
    assert rows[1] == RawRow(
        2,
        {
            "email": "bob@acme.example",
            "contact_first_name": "Bob",
            "company_name": "ACME",
            "address_city": "Paris",
            "address_geo_lat": 48.85,
        },
    )
    assert isinstance(rows[2], Rejection) and "'colleagues' is a list of objects" in rows[2].reason
    shown = {m.source: (m.field, m.how) for m in stream.mappings}
    assert shown["contact.email"] == ("email", "alias")
    assert shown["company.website"] == ("website", "alias")
    assert shown["address.city"] == ("address_city", "custom")


def test_map_applies_to_json_keys_and_dotted_paths():
    stream = open_stream(
        io.StringIO('{"who": {"mail": "a@x.example"}, "org": "Acme"}\n'),
        mapping={"email": "who.mail", "company_name": "org"},
    )

    assert list(stream.rows) == [RawRow(1, {"email": "a@x.example", "company_name": "Acme"})]


# Workbooks


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("Ann", "Ann"),
        (12, "12"),
        (12.0, "12"),
        (4915112345678.0, "4915112345678"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (True, "TRUE"),
        (False, "FALSE"),
        (datetime(2024, 3, 1), "2024-03-01"),
        (datetime(2024, 3, 1, 14, 30), "2024-03-01 14:30:00"),
        (date(2024, 3, 1), "2024-03-01"),
        (time(9, 30), "09:30:00"),
    ],
)
def test_cells_become_the_text_a_person_sees(value, text):
    assert cell_text(value) == text


def workbook(*sheets: tuple[str, list[list[Any]]]) -> bytes:
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_workbook_s_first_sheet_is_read_with_aliases_and_cells_as_text():
    data = workbook(
        (
            "Leads",
            [
                [],
                ["Email Address", "Company", "Employees", "Since", "Phone"],
                ["ann@acme.example", "Acme", 250, datetime(2021, 6, 1), 4915112345678],
                [],
                ["bob@acme.example", "Acme", 12.5, None, None, None],
                ["cy@globex.example", "Globex", None, None, None, "extra"],
            ],
        ),
        ("Other", [["email"], ["nobody@x.example"]]),
    )

    stream = open_file(io.BytesIO(data), "leads.xlsx")
    rows = list(stream.rows)

    assert (stream.format, stream.columns) == ("xlsx", ("email", "company_name", "employees", "since", "phone"))
    assert fields_of(rows) == [
        {
            "email": "ann@acme.example",
            "company_name": "Acme",
            "employees": "250",
            "since": "2021-06-01",
            "phone": "4915112345678",
        },
        {"email": "bob@acme.example", "company_name": "Acme", "employees": "12.5"},
        Rejection(6, "has 6 cells but the header has 5 columns (extra: 'extra')"),
    ]
    assert rows[0].row == 3  # the sheet's row numbers


def test_sheet_picks_a_sheet_by_name_and_a_wrong_name_lists_the_sheets():
    data = workbook(("Leads", [["email"], ["a@x.example"]]), ("Other", [["E-mail"], ["b@x.example"]]))

    assert fields_of(opened(data, "book.xlsx", sheet="Other")) == [{"email": "b@x.example"}]
    with pytest.raises(
        ImportFileError, match=r"--sheet 'Nope': the workbook has no such sheet \(sheets: Leads, Other\)"
    ):
        opened(data, "book.xlsx", sheet="Nope")


def test_a_workbook_is_recognised_by_its_content_whatever_its_name():
    data = workbook(("Leads", [["email"], ["a@x.example"]]))

    assert open_file(io.BytesIO(data), "download").format == "xlsx"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (workbook(("Empty", [])), "sheet 'Empty' is empty"),
        (b"PK\x03\x04 not really a zip", "not a readable .xlsx workbook"),
    ],
)
def test_a_workbook_that_cannot_be_read_is_a_file_error(data, message):
    with pytest.raises(ImportFileError, match=message):
        opened(data, "book.xlsx")


def test_text_options_on_a_workbook_are_refused():
    with pytest.raises(ImportFileError, match="--encoding and --delimiter are for text files"):
        opened(workbook(("Leads", [["email"]])), "book.xlsx", encoding="cp1252")


# The dry run's preview


def test_the_preview_keeps_the_first_rows_and_leads_with_their_recipients():
    def person(row: int, key: str) -> Candidate:
        return Candidate(row, f"p{row}@x.example", key, {"email": f"p{row}@x.example"})

    preview = ImportPreview()
    preview.add({"company_name:acme": [person(2, "company_name:acme"), person(3, "company_name:acme")]}, set())
    preview.add(
        {"company_name:acme": [person(9, "company_name:acme")], "email:x": [person(10, "email:x")]}, {"email:x"}
    )

    assert [c.row for c in preview.rows] == [2, 3, 9, 10]
    assert json.loads(json.dumps(preview.to_dict()["leads"])) == [
        {
            "lead_key": "company_name:acme",
            "new": True,
            "recipients": 3,
            "rows": [2, 3, 9],
            "emails": ["p2@x.example", "p3@x.example", "p9@x.example"],
        },
        {"lead_key": "email:x", "new": False, "recipients": 1, "rows": [10], "emails": ["p10@x.example"]},
    ]
