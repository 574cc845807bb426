"""Suppression entries: values normalised as the send-time check compares them, and suppression files. Pure."""

from __future__ import annotations

import pytest

from app.domain.gates import suppression_keys
from app.domain.models import normalize_email
from app.domain.suppression_entries import (
    BadLine,
    InvalidEntry,
    SuppressionFileError,
    check_reason,
    decode_file,
    display_value,
    parse_file,
    suppression_value,
)


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("@Example.COM", "example.com"),
        # An IDNA domain, in either form and any case, is stored in its Unicode form, as imports store it.
        ("@XN--MLLER-KVA.example", "müller.example"),
        ("@Müller.example", "müller.example"),
        ("bob@xn--mller-kva.example", "bob@müller.example"),
        ("ZOË@MÜLLER.example", "zoë@müller.example"),
        ("zoe\u0308@müller.example", "zo\u00eb@müller.example"),  # Unicode normal form C
    ],
)
def test_values_are_normalised(raw: str, stored: str) -> None:
    assert suppression_value(raw) == stored


@pytest.mark.parametrize(
    "recipient",
    ["Zoë@XN--MLLER-KVA.example", "zoë@müller.example", "ZOË@Müller.Example", "zoe\u0308@MÜLLER.example"],
)
def test_a_suppressed_address_and_domain_are_the_keys_the_send_time_check_looks_up(recipient: str) -> None:
    # The gate compares suppression_keys() of the recipient's address as Lead.from_doc reads it.
    keys = suppression_keys(normalize_email(recipient))
    assert suppression_value("ZOË@xn--mller-kva.example") == keys[0]
    assert suppression_value("@XN--MLLER-KVA.EXAMPLE") == keys[1]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "the value is empty"),
        ("   ", "the value is empty"),
        ("example.com", "write @example.com to suppress the whole domain"),
        ("@", "'@' is not a domain"),
        ("@a@b.example", "'@a@b.example' is not a domain"),
        ("@nodot", "'@nodot' is not a valid domain"),
        ("@a..b.example", "'@a..b.example' is not a valid domain"),
        ("two@@example.com", "'two@@example.com' is not a valid address"),
        ("ann@example.com\nbob@example.com", "contains a line break"),
    ],
)
def test_invalid_values_are_refused_naming_the_value(raw: str, message: str) -> None:
    with pytest.raises(InvalidEntry) as caught:
        suppression_value(raw)
    assert message in str(caught.value)


def test_domains_are_shown_with_their_at_sign() -> None:
    assert [display_value(v) for v in ("ann@example.com", "example.com")] == ["ann@example.com", "@example.com"]


def test_a_reason_is_one_short_line() -> None:
    assert check_reason(" complaint ") == "complaint"
    for bad in ("", "  ", "a\nb", "x" * 201):
        with pytest.raises(InvalidEntry):
            check_reason(bad)


def test_a_plain_list_ignores_comments_and_blank_lines_and_counts_repeats() -> None:
    parsed = parse_file("# from the old tool\n\nAnn@Example.com\n@blocked.example  # all of it\nann@example.com\n")

    assert (parsed.format, parsed.values, parsed.duplicates, parsed.bad) == (
        "list",
        ["ann@example.com", "blocked.example"],
        1,
        [],
    )


def test_a_hash_inside_an_address_is_part_of_it() -> None:
    assert parse_file("a#b@example.com\n").values == ["a#b@example.com"]


def test_bad_lines_keep_their_line_number_and_text() -> None:
    parsed = parse_file("ann@example.com\n\nnope\n@nodot\n")

    assert parsed.values == ["ann@example.com"]
    assert [(b.line, b.text) for b in parsed.bad] == [(3, "nope"), (4, "@nodot")]
    assert isinstance(parsed.bad[0], BadLine) and "write @nope" in parsed.bad[0].reason


@pytest.mark.parametrize(
    "text",
    [
        "name,email\nAnn,ann@example.com\nZoë,zoë@müller.example\n",
        "Name;Email Address\nAnn;ann@example.com\nZoë;zoë@müller.example\n",
        "\ufeffEMAIL\nann@example.com\nzoë@müller.example\n",
        'e-mail,note\nann@example.com,"a, b"\nzoë@müller.example,x\n',
        "# exported\n\nemail_address;name\nann@example.com;Ann\nzoë@müller.example;Zoë\n",
    ],
)
def test_a_csv_is_read_by_its_email_column(text: str) -> None:
    parsed = parse_file(text)

    assert (parsed.format, parsed.values) == ("csv", ["ann@example.com", "zoë@müller.example"])


def test_a_csv_row_with_a_bad_address_names_its_line_and_an_empty_cell_is_ignored() -> None:
    parsed = parse_file('name,email\n"Lee,\nAnn",ann@example.com\nBob,\nCy,cy-at-example.com\n')

    assert parsed.values == ["ann@example.com"]
    assert [(b.line, b.text) for b in parsed.bad] == [(5, "cy-at-example.com")]


def test_a_csv_without_an_email_column_is_refused() -> None:
    with pytest.raises(SuppressionFileError, match="without an email column"):
        parse_file("name,company\nAnn,Acme\n")


@pytest.mark.parametrize(
    "data",
    [
        "zoë@müller.example\n".encode(),
        "\ufeffzoë@müller.example\n".encode(),
        "zoë@müller.example\n".encode("cp1252"),
    ],
)
def test_files_are_utf8_with_or_without_a_bom_or_windows_1252(data: bytes) -> None:
    assert decode_file(data) == "zoë@müller.example\n"


def test_a_file_in_neither_encoding_is_refused() -> None:
    with pytest.raises(SuppressionFileError, match="neither UTF-8 nor Windows-1252"):
        decode_file(b"ann@example.com\n\x81\x8d\n")
