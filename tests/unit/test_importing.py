"""Import parsing, normalisation and grouping: pure functions, no I/O."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.importing import (
    Candidate,
    ImportFileError,
    ImportReport,
    RawRow,
    Rejection,
    batched,
    detect_format,
    lead_key_for,
    lost_race,
    new_lead_fields,
    normalize_column,
    normalize_group_value,
    normalize_website,
    open_stream,
    plan_batch,
    to_candidate,
)


def rows_of(text: str, fmt: str = "auto", name: str = "") -> list[RawRow | Rejection]:
    return list(open_stream(io.StringIO(text), fmt, name).rows)


class ChunkedSource:
    """A text source that returns at most `size` characters per read, like a file read in small pieces."""

    def __init__(self, text: str, size: int) -> None:
        self.buf = io.StringIO(text)
        self.size = size

    def read(self, size: int = -1, /) -> str:
        return self.buf.read(self.size if size < 0 else min(size, self.size))

    def readline(self, size: int = -1, /) -> str:
        return self.buf.readline(size)


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("Email", "email"),
        ("  First Name ", "first_name"),
        ("\ufeffEMAIL", "email"),
        ("company.name", "company_name"),
        ("$where", "where"),
        ("Größe  Firma", "größe_firma"),
        ("Lead-Source", "lead_source"),
        ("Revenue ($)", "revenue"),
    ],
)
def test_headers_are_normalised_to_safe_field_names(header, column):
    assert normalize_column(header) == column


def test_csv_header_match_for_email_is_case_insensitive_and_quoted_commas_stay_in_one_cell():
    (row,) = rows_of('EMAIL,Company Name\nann@example.com,"Acme, Inc."\n')

    assert row == RawRow(2, {"email": "ann@example.com", "company_name": "Acme, Inc."})


def test_a_utf8_bom_and_unicode_names_are_read_as_text():
    (row,) = rows_of("\ufeffemail,first_name\nzoe@example.com,Zoë Ñúñez\n")

    assert row == RawRow(2, {"email": "zoe@example.com", "first_name": "Zoë Ñúñez"})


def test_empty_cells_are_omitted_and_values_stripped():
    (row,) = rows_of("email,first_name,last_name\n ann@example.com , ,Lee \n")

    assert row == RawRow(2, {"email": "ann@example.com", "last_name": "Lee"})


def test_rows_with_extra_cells_are_rejected_with_their_line_and_short_rows_read_as_empty_cells():
    rows = rows_of("email,name\na@example.com,A,extra\nb@example.com\nc@example.com,C\nd@example.com,D,,\n")

    assert rows == [
        Rejection(2, "has 3 cells but the header has 2 columns (extra: 'extra'); quote a value that holds ','"),
        RawRow(3, {"email": "b@example.com"}),
        RawRow(4, {"email": "c@example.com", "name": "C"}),
        RawRow(5, {"email": "d@example.com", "name": "D"}),
    ]


def test_row_numbers_count_blank_lines_and_quoted_line_breaks():
    rows = rows_of('email,note\n\na@example.com,"two\nlines"\nb@example.com,x\n')

    assert [r.row for r in rows] == [3, 5]


def test_undecodable_cells_reject_their_row():
    rows = rows_of("email,name\nok@example.com,Jos\udce9\n")

    assert rows == [Rejection(2, "is not valid text in the file's encoding")]


def test_missing_email_column_is_a_file_error_naming_the_column():
    with pytest.raises(ImportFileError, match=r"required column 'email' is missing.*'name', 'website'"):
        open_stream(io.StringIO("Name,Website\nA,a.com\n"))


@pytest.mark.parametrize("text", ["", "\n\n  \n", "\ufeff"])
def test_an_empty_file_is_a_file_error(text):
    with pytest.raises(ImportFileError, match="is empty"):
        open_stream(io.StringIO(text), filename="leads.csv")


def test_a_header_only_file_has_no_rows():
    stream = open_stream(io.StringIO("email,name\n"))

    assert stream.columns == ("email", "name")
    assert list(stream.rows) == []


def test_duplicate_columns_after_normalising_are_a_file_error():
    with pytest.raises(ImportFileError, match="columns 1 and 3 are both named 'email'"):
        open_stream(io.StringIO("Email,name,EMAIL \n"))


def test_json_lines_rows_are_objects_and_anything_else_is_rejected_with_its_line():
    text = '{"Email": "a@example.com", "Score": 7, "vip": true, "note": null}\n\n[1]\n{broken\n'

    rows = rows_of(text, name="leads.jsonl")

    assert rows[0] == RawRow(1, {"email": "a@example.com", "score": 7, "vip": True})
    assert rows[1] == Rejection(3, "is a JSON list, expected an object")
    assert isinstance(rows[2], Rejection)
    assert rows[2].row == 4
    assert rows[2].reason.startswith("is not valid JSON")


def test_a_json_array_is_decoded_item_by_item_across_chunk_boundaries():
    people = [{"email": f"p{i}@example.com", "score": 1234567 + i, "name": "Ünal"} for i in range(40)]
    text = json.dumps(people, indent=1)

    stream = open_stream(ChunkedSource(text, 7), "auto", "people.json")  # type: ignore[arg-type]
    rows = list(stream.rows)

    assert stream.format == "json"
    assert [r.fields["score"] for r in rows if isinstance(r, RawRow)] == [1234567 + i for i in range(40)]
    assert rows[39] == RawRow(40, {"email": "p39@example.com", "score": 1234606, "name": "Ünal"})


def test_a_json_array_with_a_non_object_item_rejects_that_item_only():
    rows = rows_of('[{"email": "a@example.com"}, "text", {"email": "b@example.com"}]')

    assert rows == [
        RawRow(1, {"email": "a@example.com"}),
        Rejection(2, "is a JSON str, expected an object"),
        RawRow(3, {"email": "b@example.com"}),
    ]


def test_broken_json_array_syntax_stops_with_a_rejection_at_the_item():
    rows = rows_of('[{"email": "a@example.com"}, {"email": }]')

    assert rows[0] == RawRow(1, {"email": "a@example.com"})
    assert isinstance(rows[1], Rejection)
    assert rows[1].row == 2
    assert "rest of the array cannot be read" in rows[1].reason


def test_empty_json_array_has_no_rows():
    assert rows_of("  []  ") == []


def test_nested_json_objects_are_flattened_and_lists_of_objects_rejected_with_the_field_named():
    rows = rows_of('{"email": "a@example.com", "address": {"city": "Lyon"}}\n{"email": "b@example.com", "x": [{}]}\n')

    assert rows == [
        RawRow(1, {"email": "a@example.com", "address_city": "Lyon"}),
        Rejection(
            2, "field 'x' is a list of objects or lists; only lists of text, numbers and true/false are imported"
        ),
    ]


@pytest.mark.parametrize(
    ("requested", "name", "first", "fmt"),
    [
        ("auto", "leads.csv", "email", "csv"),
        ("auto", "leads.csv", "[", "csv"),
        ("auto", "leads.json", "[", "json"),
        ("auto", "leads.jsonl", "{", "jsonl"),
        ("auto", "export.txt", "{", "jsonl"),
        ("auto", "export", "email", "csv"),
        ("json", "leads.txt", "{", "jsonl"),
        ("csv", "leads.json", "[", "csv"),
    ],
)
def test_format_is_taken_from_the_option_then_the_name_then_the_content(requested, name, first, fmt):
    assert detect_format(requested, name, first) == fmt


def test_unknown_format_is_refused():
    with pytest.raises(ImportFileError, match="unknown format 'xml'"):
        detect_format("xml", "a.xml", "<")


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("https://www.Acme.com/about", "acme.com"),
        ("acme.com", "acme.com"),
        ("WWW.ACME.COM.", "acme.com"),
        ("http://user@shop.acme.com:8080/x?y", "shop.acme.com"),
        ("   ", None),
        ("http://", None),
    ],
)
def test_websites_are_compared_by_host_without_www(raw, host):
    assert normalize_website(raw) == host


def test_company_names_are_compared_case_and_space_insensitively():
    assert normalize_group_value("company_name", "  ACME   Inc ") == normalize_group_value("company_name", "acme inc")


def test_lead_key_prefers_website_then_company_then_the_email():
    email = "ann@example.com"

    assert lead_key_for({"website": "www.acme.com", "company_name": "Acme"}, email) == "website:acme.com"
    assert lead_key_for({"website": "http://", "company_name": "Acme "}, email) == "company_name:acme"
    assert lead_key_for({}, email) == "email:ann@example.com"
    assert lead_key_for({"region": "EU", "website": "a.com"}, email, group_by="region") == "region:eu"
    assert lead_key_for({"website": "a.com"}, email, group_by="region") == "email:ann@example.com"


def test_a_valid_row_becomes_a_not_contacted_recipient_with_a_lower_case_address():
    raw = RawRow(2, {"email": "Ann.Lee@Example.COM", "first_name": "Ann", "status": "replied", "website": "a.com"})

    candidate = to_candidate(raw)

    assert candidate == Candidate(
        2,
        "ann.lee@example.com",
        "website:a.com",
        {"email": "ann.lee@example.com", "first_name": "Ann", "website": "a.com", "status": "not_contacted"},
    )


def test_an_internationalised_address_is_accepted_in_unicode_and_lower_case():
    raw = RawRow(3, {"email": "Zoë@XN--MLLER-KVA.example", "first_name": "Zoë"})

    candidate = to_candidate(raw)

    assert isinstance(candidate, Candidate)
    assert candidate.email == "zoë@müller.example"
    assert candidate.recipient["email"] == "zoë@müller.example"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"name": "No Address"}, "has no email"),
        ({"email": "not-an-address"}, "invalid email"),
        ({"email": "a@b@example.com"}, "invalid email"),
        ({"email": "ann@example.com\r\nBcc: x@example.com"}, "invalid email"),
    ],
)
def test_rows_without_a_mailable_address_are_rejected(fields, reason):
    outcome = to_candidate(RawRow(7, fields))

    assert isinstance(outcome, Rejection)
    assert outcome.row == 7
    assert outcome.reason.startswith(reason)


def candidate(email: str, key: str) -> Candidate:
    return Candidate(1, email, key, {"email": email, "status": "not_contacted"})


def test_a_batch_groups_recipients_by_lead_and_never_repeats_an_address():
    batch = [
        candidate("a@acme.com", "website:acme.com"),
        candidate("b@acme.com", "website:acme.com"),
        candidate("a@acme.com", "company_name:other"),
        candidate("old@acme.com", "website:acme.com"),
        candidate("c@globex.com", "website:globex.com"),
    ]

    plan = plan_batch(batch, existing={"old@acme.com"})

    assert {key: [c.email for c in cs] for key, cs in plan.groups.items()} == {
        "website:acme.com": ["a@acme.com", "b@acme.com"],
        "website:globex.com": ["c@globex.com"],
    }
    assert plan.duplicates == 2
    assert plan.emails == ["a@acme.com", "b@acme.com", "c@globex.com"]


@pytest.mark.parametrize(
    ("stored_in", "reason"),
    [
        ("website:acme.com", None),  # the same row imported twice at once: a duplicate, as on a re-run
        (
            "company_name:acme",
            "a@acme.com was added to lead 'company_name:acme' of this campaign by another import while this one "
            "ran; not added to lead 'website:acme.com'",
        ),
        (
            None,
            "a@acme.com was added to another lead of this campaign by another import while this one ran; "
            "not added to lead 'website:acme.com'",
        ),
    ],
)
def test_a_row_that_lost_a_race_is_a_duplicate_in_its_own_lead_and_rejected_elsewhere(stored_in, reason):
    row = Candidate(7, "a@acme.com", "website:acme.com", {"email": "a@acme.com"})

    rejection = lost_race(row, stored_in)

    assert rejection == (None if reason is None else Rejection(7, reason))


def test_a_new_lead_starts_at_step_one_due_when_given():
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    fields = new_lead_fields(now, now + timedelta(minutes=30))

    assert fields == {
        "created_at": now,
        "progress": {
            "current_step_order": 1,
            "stopped": False,
            "processed_recipients": {},
            "next_due_at": now + timedelta(minutes=30),
        },
    }


def test_the_report_keeps_only_the_first_rejections_but_counts_them_all():
    report = ImportReport("c1", keep_rejections=2)

    for row in range(5):
        report.reject(Rejection(row, "bad"))

    assert report.rejected == 5
    assert report.to_dict()["rejections"] == [{"row": 0, "reason": "bad"}, {"row": 1, "reason": "bad"}]


def test_batched_yields_bounded_lists_lazily():
    def endless() -> Any:
        n = 0
        while True:
            yield n
            n += 1

    batches = batched(endless(), 3)

    assert next(batches) == [0, 1, 2]
    assert next(batches) == [3, 4, 5]
    with pytest.raises(ValueError, match="at least 1"):
        next(batched([1], 0))
