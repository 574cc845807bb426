"""Job recipients: files re-read with the import's readers, filters by field value, errors naming file and line."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.domain.job_recipients import (
    Recipient,
    RecipientSource,
    RecipientSourceError,
    parse_filters,
    read_recipient_file,
    resolve,
    select,
)

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bom.csv", "\ufeffE-mail,First Name,Company\nann@a.example,Ann,Acme\nzoe@b.example,Zoë,Bäckerei\n"),
        ("semicolon.csv", "email;first_name;company\nann@a.example;Ann;Acme\nzoe@b.example;Zoë;Bäckerei\n"),
        (
            "crlf.csv",
            "Email Address,Given Name,Organisation\r\nann@a.example,Ann,Acme\r\nzoe@b.example,Zoë,Bäckerei\r\n",
        ),
        (
            "list.json",
            json.dumps(
                [
                    {"email": "ann@a.example", "first_name": "Ann", "company": "Acme"},
                    {"Email": "zoe@b.example", "First Name": "Zoë", "company": "Bäckerei"},
                ]
            ),
        ),
        (
            "lines.jsonl",
            '{"email": "ann@a.example", "first_name": "Ann", "company": "Acme"}\n'
            '{"email": "zoe@b.example", "first_name": "Zoë", "company": "Bäckerei"}\n',
        ),
    ],
)
def test_each_format_gives_the_same_recipients_with_header_aliases_applied(
    tmp_path: Path, name: str, content: str
) -> None:
    path = write(tmp_path, name, content.encode("utf-8"))
    assert read_recipient_file(path) == [
        Recipient("ann@a.example", {"first_name": "Ann", "company_name": "Acme"}),
        Recipient("zoe@b.example", {"first_name": "Zoë", "company_name": "Bäckerei"}),
    ]


def test_a_windows_1252_file_is_refused_naming_the_row_and_byte_until_its_encoding_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, "export.csv", "email,last_name\nm@x.example,Müller\n".encode("cp1252"))
    with pytest.raises(RecipientSourceError, match=r"export\.csv: row 2 has byte 0xFC .* cp1252"):
        read_recipient_file(path)
    assert read_recipient_file(path, encoding="cp1252") == [Recipient("m@x.example", {"last_name": "Müller"})]


def test_addresses_are_lower_cased_and_a_repeated_address_keeps_its_first_row(tmp_path: Path) -> None:
    path = write(
        tmp_path, "dupes.csv", b"email,first_name\nAnn@A.example,Ann\nbob@b.example,Bob\nann@a.EXAMPLE,Again\n"
    )
    assert read_recipient_file(path) == [
        Recipient("ann@a.example", {"first_name": "Ann"}),
        Recipient("bob@b.example", {"first_name": "Bob"}),
    ]


def test_json_values_become_template_text(tmp_path: Path) -> None:
    item = {"email": "a@x.example", "seats": 3, "vip": True, "tags": ["red", "blue"], "address": {"city": "Lyon"}}
    path = write(tmp_path, "typed.json", json.dumps([item]).encode())
    [recipient] = read_recipient_file(path)
    assert recipient.fields == {"seats": "3", "vip": "true", "tags": "red, blue", "address_city": "Lyon"}


def test_a_header_only_file_has_no_recipients(tmp_path: Path) -> None:
    assert read_recipient_file(write(tmp_path, "none.csv", b"email,name\n")) == []


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.csv", b"", "is empty"),
        ("blank.csv", b"\n \n", "is empty"),
        ("nomail.csv", b"name,company\nAnn,Acme\n", "required column 'email' is missing"),
        ("semi.csv", b"name;company\nAnn;Acme\n", "required column 'email' is missing"),
        ("object.json", b'{"email": "a@x.example"', "not valid JSON"),
        ("scalar.json", b'"a@x.example"', "expected an object"),
    ],
)
def test_a_file_that_cannot_be_used_is_refused_with_the_reason(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(RecipientSourceError, match=reason) as caught:
        read_recipient_file(path)
    assert str(path) in str(caught.value)


def test_bad_addresses_are_named_by_line_and_no_recipient_is_returned(tmp_path: Path) -> None:
    content = b"email,name\nok@x.example,Ok\nnot-an-address,Bad\n,Nobody\nalso@x.example,Ok\nx@@y,Worse\n"
    path = write(tmp_path, "bad.csv", content)
    with pytest.raises(RecipientSourceError) as caught:
        read_recipient_file(path)
    message = str(caught.value)
    assert "3 rows cannot be mailed" in message
    assert "line 3: invalid email: 'not-an-address'" in message
    assert "line 4: has no email" in message
    assert "line 6: invalid email: 'x@@y'" in message
    assert "line 2" not in message and "line 5" not in message


def test_bad_items_of_a_json_array_are_named_by_position(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", json.dumps([{"email": "a@x.example"}, {"email": "nope"}]).encode())
    with pytest.raises(RecipientSourceError, match=r"1 row cannot be mailed \(item 2: invalid email: 'nope'"):
        read_recipient_file(path)


def test_many_bad_rows_are_summarised_after_the_first_ten(tmp_path: Path) -> None:
    content = b"email\n" + b"".join(b"bad%d\n" % i for i in range(25))
    with pytest.raises(RecipientSourceError, match=r"25 rows cannot be mailed .*line 11: .*; and 15 more\)"):
        read_recipient_file(write(tmp_path, "many.csv", content))


def test_a_missing_file_and_a_directory_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(RecipientSourceError, match=r"recipient file .*gone\.csv does not exist"):
        read_recipient_file(tmp_path / "gone.csv")
    with pytest.raises(RecipientSourceError, match="is a directory"):
        read_recipient_file(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.csv", b"email\na@x.example\n")
    path.chmod(0)
    with pytest.raises(RecipientSourceError, match="cannot be read: permission denied"):
        read_recipient_file(path)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ([], ()),
        (["country=DE"], (("country", "DE"),)),
        (["Company = Acme Inc"], (("company_name", "Acme Inc"),)),
        (["Lead Source=web", "lead_source=web"], (("lead_source", "web"),)),
        (["tier=a=b"], (("tier", "a=b"),)),
    ],
)
def test_filters_are_parsed_with_keys_read_like_a_header(raw: list[str], parsed: tuple[tuple[str, str], ...]) -> None:
    assert parse_filters(raw) == parsed


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (["country"], "expected KEY=VALUE"),
        (["=DE"], "expected KEY=VALUE"),
        (["country="], "expected KEY=VALUE"),
        (["country=DE", "Country=FR"], "gives 'country' twice"),
    ],
)
def test_bad_filters_name_the_option(raw: list[str], reason: str) -> None:
    with pytest.raises(RecipientSourceError, match=reason) as caught:
        parse_filters(raw)
    assert "--recipient-filter" in str(caught.value)


ROWS = [
    Recipient("ann@a.example", {"country": "DE", "Tier": "gold"}),
    Recipient("bob@b.example", {"country": "DE", "Tier": "silver"}),
    Recipient("cem@c.example", {"country": "FR", "Tier": "gold"}),
    Recipient("dan@d.example", {"Tier": "gold"}),
]


@pytest.mark.parametrize(
    ("filters", "emails"),
    [
        ((), ["ann@a.example", "bob@b.example", "cem@c.example", "dan@d.example"]),
        ((("country", "DE"),), ["ann@a.example", "bob@b.example"]),
        ((("COUNTRY", "DE"), ("tier", "gold")), ["ann@a.example"]),
        ((("tier", "gold"),), ["ann@a.example", "cem@c.example", "dan@d.example"]),
        ((("country", "de"),), []),
        ((("email", "BOB@b.example"),), ["bob@b.example"]),
        ((("region", "EU"),), []),
    ],
)
def test_select_keeps_rows_equal_to_every_filter_with_case_insensitive_keys(
    filters: tuple[tuple[str, str], ...], emails: list[str]
) -> None:
    assert [r.email for r in select(ROWS, filters)] == emails


def test_a_static_source_resolves_to_its_addresses() -> None:
    source = RecipientSource("static", addresses=("a@x.example", "b@x.example"))
    assert resolve(source, NOW) == [Recipient("a@x.example"), Recipient("b@x.example")]


def test_a_file_source_is_read_again_at_every_resolve(tmp_path: Path) -> None:
    path = write(tmp_path, "list.csv", b"email,country\na@x.example,DE\n")
    source = RecipientSource("file", path=str(path))
    assert [r.email for r in resolve(source, NOW)] == ["a@x.example"]
    path.write_bytes(b"email,country\na@x.example,DE\nnew@x.example,FR\n")
    assert [r.email for r in resolve(source, NOW)] == ["a@x.example", "new@x.example"]
    filtered = RecipientSource("file", path=str(path), filters=(("country", "FR"),))
    assert [r.email for r in resolve(filtered, NOW)] == ["new@x.example"]
    path.unlink()
    with pytest.raises(RecipientSourceError, match="does not exist"):
        resolve(source, NOW)


def test_a_file_source_uses_its_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "win.csv", "email;city\nm@x.example;Zürich\n".encode("cp1252"))
    source = RecipientSource("file", path=str(path), encoding="cp1252")
    assert resolve(source, NOW) == [Recipient("m@x.example", {"city": "Zürich"})]


def test_a_stored_recipients_filter_is_left_to_the_store() -> None:
    with pytest.raises(ValueError, match="resolved by the store"):
        resolve(RecipientSource("filter", filters=(("country", "DE"),)), NOW)
