"""Error classification, Message-IDs and MIME building: pure, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from bson import ObjectId

from app.domain.models import EmailAccount
from app.transport import outgoing_message
from app.transport.base import (
    AccountAuthError,
    AccountConfigError,
    InvalidHeader,
    OutgoingMessage,
    PermanentSendError,
    SendError,
    TransientSendError,
    ValidatedMessage,
    build_message,
    classify_smtp_reply,
    make_message_id,
    validate_message,
    validated,
    wire_address,
)
from app.transport.dryrun import DryRunSender

NOW = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("code", "during", "expected"),
    [
        (535, "auth", AccountAuthError),
        (534, "auth", AccountAuthError),
        (530, "auth", AccountAuthError),
        (530, "mail", AccountAuthError),
        (504, "auth", AccountAuthError),
        (454, "auth", TransientSendError),
        (554, "connect", AccountAuthError),
        (421, "connect", TransientSendError),
        (421, "rcpt", TransientSendError),
        (450, "rcpt", TransientSendError),
        (451, "data", TransientSendError),
        (452, "rcpt", TransientSendError),
        (550, "rcpt", PermanentSendError),
        (553, "rcpt", PermanentSendError),
        (552, "data", PermanentSendError),
        (554, "data", PermanentSendError),
        (550, "mail", PermanentSendError),
        (None, "connect", TransientSendError),
        (None, "tls", TransientSendError),
        (None, "rcpt", TransientSendError),
        (None, "data", TransientSendError),
    ],
)
def test_smtp_replies_are_classified(code: int | None, during: str, expected: type[SendError]) -> None:
    assert classify_smtp_reply(code, "server text", during=during) is expected


def test_classification_refuses_an_unknown_stage() -> None:
    with pytest.raises(ValueError, match="unknown SMTP stage"):
        classify_smtp_reply(550, "x", during="quit")


def test_send_error_reads_as_code_and_reply() -> None:
    err = PermanentSendError(550, "5.1.1 no such user", during="rcpt")
    assert str(err) == "550 5.1.1 no such user"
    assert (err.code, err.reply, err.during) == (550, "5.1.1 no such user", "rcpt")


def test_only_a_drop_while_data_was_in_flight_is_uncertain() -> None:
    assert TransientSendError(None, "dropped", during="data").uncertain
    assert not TransientSendError(451, "try later", during="data").uncertain
    assert not TransientSendError(None, "dropped", during="rcpt").uncertain


def test_message_id_is_deterministic_per_lead_step_and_recipient() -> None:
    lead = ObjectId("65f000000000000000000001")
    first = make_message_id(lead, 2, 1, "Sender.Example")
    assert first == "<outbound.65f000000000000000000001.2.1@sender.example>"
    assert make_message_id(lead, 2, 1, "sender.example") == first
    assert make_message_id(lead, 2, 0, "sender.example") != first
    assert make_message_id(lead, 3, 1, "sender.example") != first


@pytest.mark.parametrize("domain", ["", "localhost", "bad domain.com", "x.com\r\nBcc: y", "-x.com", "a..b"])
def test_message_id_refuses_an_invalid_domain(domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        make_message_id("lead1", 1, 0, domain)


def test_message_id_refuses_bad_step_or_index() -> None:
    with pytest.raises(ValueError, match="step_order"):
        make_message_id("lead1", 0, 0, "x.com")
    with pytest.raises(ValueError, match="recipient_index"):
        make_message_id("lead1", 1, -1, "x.com")
    with pytest.raises(ValueError, match="lead id"):
        make_message_id("lead 1>", 1, 0, "x.com")


def outgoing(**changes: object) -> OutgoingMessage:
    base = OutgoingMessage(
        message_id="<outbound.l1.1.0@sender.example>",
        from_email="bob@sender.example",
        from_name="Bob Smith",
        to_email="ann@example.com",
        to_name="Ann Lee",
        subject="Hello Ann",
        text="Hi Ann,\nplain text",
        html=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def reparse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(part: EmailMessage) -> str:
    """A part's decoded content with the wire's CRLF line endings read back as newlines."""
    return str(part.get_content()).replace("\r\n", "\n").rstrip("\n")


def test_built_message_has_every_header() -> None:
    msg = reparse(build_message(outgoing(headers={"List-Unsubscribe": "<mailto:u@sender.example>"}), now=NOW))
    assert msg["From"] == "Bob Smith <bob@sender.example>"
    assert msg["To"] == "Ann Lee <ann@example.com>"
    assert msg["Subject"] == "Hello Ann"
    assert msg["Message-ID"] == "<outbound.l1.1.0@sender.example>"
    assert msg["Date"] == "Mon, 06 May 2030 07:08:09 +0000"
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Unsubscribe"] == "<mailto:u@sender.example>"


def test_text_only_message_is_single_part_utf8() -> None:
    msg = reparse(build_message(outgoing(text="Grüße, Zoë"), now=NOW))
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert body(msg) == "Grüße, Zoë"


def test_html_makes_a_multipart_alternative_with_both_bodies() -> None:
    msg = reparse(build_message(outgoing(html="<p>Hi Ann</p>"), now=NOW))
    assert msg.get_content_type() == "multipart/alternative"
    parts = [(p.get_content_type(), body(p)) for p in msg.iter_parts()]
    assert parts == [("text/plain", "Hi Ann,\nplain text"), ("text/html", "<p>Hi Ann</p>")]


def test_unicode_display_names_and_subject_are_encoded_on_the_wire() -> None:
    raw = build_message(outgoing(from_name="Zoë Ångström", to_name="Łukasz", subject="Grüße"), now=NOW)
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert headers.isascii()
    assert b"=?utf-8?" in headers
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["From"] == "Zoë Ångström <bob@sender.example>"
    assert msg["To"] == "Łukasz <ann@example.com>"
    assert msg["Subject"] == "Grüße"


def test_display_name_with_specials_is_quoted() -> None:
    msg = reparse(build_message(outgoing(from_name='Smith, Bob "The Closer"'), now=NOW))
    assert msg["From"].addresses[0].display_name == 'Smith, Bob "The Closer"'
    assert msg["From"].addresses[0].addr_spec == "bob@sender.example"


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Hi\r\nBcc: victim@x.com"},
        {"subject": "Hi\nthere"},
        {"subject": "Hi\u2028there"},
        {"from_name": "Bob\r\nBcc: victim@x.com"},
        {"to_name": "Ann\nX-Evil: 1"},
        {"to_email": "ann@example.com\r\nBcc: victim@x.com"},
        {"headers": {"List-Unsubscribe": "<mailto:u@x.com>\r\nBcc: victim@x.com"}},
        {"headers": {"X-Bad Name": "v"}},
        {"headers": {"Bcc": "victim@x.com"}},
        {"message_id": "<a@b>\r\nBcc: victim@x.com"},
    ],
)
def test_header_injection_is_refused_before_building(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidHeader):
        build_message(outgoing(**changes), now=NOW)


@pytest.mark.parametrize("address", ["not-an-address", "a b@x.com", "<a@x.com>"])
def test_malformed_addresses_are_refused(address: str) -> None:
    with pytest.raises(InvalidHeader, match="address"):
        build_message(outgoing(to_email=address), now=NOW)


def test_message_id_must_be_bracketed() -> None:
    with pytest.raises(InvalidHeader, match="Message-ID"):
        build_message(outgoing(message_id="no-brackets@x.com"), now=NOW)


async def test_dry_run_sender_records_and_sends_nothing() -> None:
    sender = DryRunSender(clock=lambda: NOW)
    acct = EmailAccount.from_doc({"_id": "a1", "email": "bob@sender.example", "smtp_host": "smtp.example.com"})

    result = await sender.send(acct, outgoing())

    assert (result.code, result.message_id, result.accepted_at) == (250, "<outbound.l1.1.0@sender.example>", NOW)
    assert sender.messages == [outgoing()]
    assert sender.accounts == ["a1"]


async def test_dry_run_sender_refuses_header_injection_like_a_real_send() -> None:
    sender = DryRunSender(clock=lambda: NOW)
    acct = EmailAccount.from_doc({"_id": "a1", "email": "bob@sender.example", "smtp_host": "smtp.example.com"})

    with pytest.raises(InvalidHeader):
        await sender.send(acct, outgoing(subject="x\r\nBcc: y@x.com"))
    assert sender.messages == []


def test_send_error_without_a_reply_code_reads_as_its_text() -> None:
    assert str(TransientSendError(None, "connection dropped", during="rcpt")) == "connection dropped"


def test_internationalised_domain_is_sent_in_its_ascii_form() -> None:
    msg = reparse(build_message(outgoing(to_email="ann@exämple.com"), now=NOW))
    assert msg["To"].addresses[0].addr_spec == "ann@xn--exmple-cua.com"
    assert wire_address("ann@exämple.com") == "ann@xn--exmple-cua.com"


def test_a_non_ascii_local_part_goes_on_the_wire_in_utf8_with_its_domain_in_ascii() -> None:
    assert wire_address("zoë@müller.example") == "zoë@xn--mller-kva.example"
    assert wire_address("Zoë@example.com") == "Zoë@example.com"


@pytest.mark.parametrize(
    ("to_email", "from_email", "needs"),
    [
        ("ann@example.com", "bob@sender.example", False),
        ("ann@exämple.com", "bob@sender.example", False),  # the domain goes as IDNA: plain SMTP is enough
        ("zoë@müller.example", "bob@sender.example", True),
        ("zoë@example.com", "bob@sender.example", True),
        ("ann@example.com", "björn@sender.example", True),
    ],
)
def test_a_message_needs_smtputf8_exactly_when_an_envelope_address_has_a_non_ascii_local_part(
    to_email: str, from_email: str, needs: bool
) -> None:
    assert validated(outgoing(to_email=to_email, from_email=from_email)).smtputf8 is needs


def test_a_non_ascii_address_goes_into_its_header_in_utf8_and_the_display_name_stays_encoded() -> None:
    raw = build_message(outgoing(to_email="zoë@müller.example", to_name="Zoë Müller"), now=NOW)
    to_line = next(line for line in raw.split(b"\r\n") if line.startswith(b"To: "))
    assert to_line == b"To: =?utf-8?b?Wm/DqyBNw7xsbGVy?= <zo\xc3\xab@m\xc3\xbcller.example>"
    msg = message_from_bytes(raw, policy=policy.SMTPUTF8)
    assert str(msg["To"]) == "Zoë Müller <zoë@müller.example>"
    assert msg["From"] == "Bob Smith <bob@sender.example>"
    assert body(msg) == "Hi Ann,\nplain text"  # the body is untouched: still 7bit US-ASCII


def test_a_non_ascii_address_without_a_display_name_is_the_bare_utf8_address() -> None:
    raw = build_message(outgoing(to_email="zoë@example.com", to_name=None), now=NOW)
    assert b"\r\nTo: zo\xc3\xab@example.com\r\n" in raw


def test_an_ascii_display_name_with_specials_is_quoted_before_a_utf8_address() -> None:
    raw = build_message(outgoing(to_email="zoë@example.com", to_name="Lee, Zoe"), now=NOW)
    assert b'\r\nTo: "Lee, Zoe" <zo\xc3\xab@example.com>\r\n' in raw


def test_a_message_without_smtputf8_is_built_exactly_as_before() -> None:
    checked = validated(outgoing(to_email="ann@exämple.com", to_name="Łukasz"))
    assert not checked.smtputf8
    assert build_message(checked, now=NOW) == (
        b'Content-Type: text/plain; charset="us-ascii"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\n'
        b"From: Bob Smith <bob@sender.example>\r\nTo: =?utf-8?q?=C5=81ukasz?= <ann@xn--exmple-cua.com>\r\n"
        b"Subject: Hello Ann\r\nMessage-ID: <outbound.l1.1.0@sender.example>\r\n"
        b"Date: Mon, 06 May 2030 07:08:09 +0000\r\n\r\nHi Ann,\r\nplain text"
    )


@pytest.mark.parametrize("address", ['"zoë smith"@example.com', "zoë..x@example.com", "zo\u0085ë@example.com"])
def test_a_non_ascii_local_part_that_is_not_a_plain_dot_atom_is_refused(address: str) -> None:
    with pytest.raises(InvalidHeader, match="header To"):
        validated(outgoing(to_email=address))


def test_wire_form_uses_crlf_and_keeps_every_line_within_smtp_limits() -> None:
    long_line = "word " * 400  # 2,000 characters on one line
    subject = "A subject line that is long enough to be folded over more than one line of the header " * 2
    raw = build_message(outgoing(text=long_line, subject=subject), now=NOW)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    msg = reparse(raw)
    assert msg["Subject"] == subject
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert body(msg) == long_line.rstrip("\n")


def test_ascii_body_goes_as_7bit_and_non_ascii_as_quoted_printable_utf8() -> None:
    ascii_msg = reparse(build_message(outgoing(text="Hi Ann,\nplain text"), now=NOW))
    assert (ascii_msg["Content-Transfer-Encoding"], ascii_msg.get_content_charset()) == ("7bit", "us-ascii")
    utf8 = reparse(build_message(outgoing(text="Grüße", html="<p>Grüße</p>"), now=NOW))
    for part in utf8.iter_parts():
        assert (part["Content-Transfer-Encoding"], part.get_content_charset()) == ("quoted-printable", "utf-8")


def test_non_ascii_extra_header_is_encoded() -> None:
    raw = build_message(outgoing(headers={"X-Campaign": "Frühling"}), now=NOW)
    assert raw.split(b"\r\n\r\n", 1)[0].isascii()
    assert reparse(raw)["X-Campaign"] == "Frühling"


def mime_version_count(raw: bytes) -> int:
    return sum(1 for line in raw.split(b"\r\n") if line.lower().startswith(b"mime-version:"))


def test_multipart_message_declares_mime_version_once_at_the_top() -> None:
    raw = build_message(outgoing(html="<p>Hi Ann</p>"), now=NOW)
    top, _, parts = raw.partition(b"\r\n\r\n")

    assert mime_version_count(raw) == 1
    assert mime_version_count(top + b"\r\n") == 1
    assert mime_version_count(parts) == 0
    msg = reparse(raw)
    assert msg["MIME-Version"] == "1.0"
    assert [part["MIME-Version"] for part in msg.iter_parts()] == [None, None]


def test_single_part_message_declares_mime_version_once() -> None:
    assert mime_version_count(build_message(outgoing(), now=NOW)) == 1


def test_a_certificate_problem_is_an_account_error() -> None:
    assert issubclass(AccountConfigError, AccountAuthError)


def test_validated_message_builds_exactly_as_the_plain_one() -> None:
    message = outgoing(headers={"List-Unsubscribe": "<mailto:u@sender.example>"}, to_email="ann@exämple.com")
    checked = validated(message)

    assert isinstance(checked, ValidatedMessage)
    assert checked.message is message
    assert (checked.mail_from, checked.rcpt_to) == ("bob@sender.example", "ann@xn--exmple-cua.com")
    assert build_message(checked, now=NOW) == build_message(message, now=NOW)
    assert validated(checked) is checked
    assert validate_message(message) == (checked.sender, checked.recipient)


def test_building_a_validated_message_checks_nothing_again(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = validated(outgoing(html="<p>Hi</p>", headers={"List-Unsubscribe": "<mailto:u@sender.example>"}))

    def refuse(*_: object) -> None:
        raise AssertionError("checked twice")

    for check in ("_address", "wire_address", "_check_value", "_check_message_id", "_check_extra_headers"):
        monkeypatch.setattr(outgoing_message, check, refuse)
    assert reparse(build_message(checked, now=NOW))["To"] == "Ann Lee <ann@example.com>"


def test_extra_headers_changed_after_validation_are_not_sent() -> None:
    headers = {"List-Unsubscribe": "<mailto:u@sender.example>"}
    checked = validated(outgoing(headers=headers))
    headers["Bcc"] = "victim@x.com"
    headers["List-Unsubscribe"] = "<mailto:u@x.com>\r\nBcc: victim@x.com"

    msg = reparse(build_message(checked, now=NOW))
    assert msg["Bcc"] is None
    assert msg["List-Unsubscribe"] == "<mailto:u@sender.example>"


def test_validation_refuses_what_building_refuses() -> None:
    with pytest.raises(InvalidHeader):
        validated(outgoing(subject="Hi\r\nBcc: victim@x.com"))


@pytest.mark.parametrize(
    "address",
    [
        "ann@example.com",
        "Ann.Lee@Example.COM",
        "o'brien+tag@mail.example.co.uk",
        "x!#$%&*/=?^_`{|}~-y@example.com",
        "ann@localhost",
        "ann@[192.0.2.1]",
        '"ann lee"@example.com',
        "ann(comment)@example.com",
        "a..b@example.com",
        ".ann@example.com",
        "ann.@example.com",
        "ann@example..com",
        "ann@-example.com",
        "ann@example.com.",
        "a@b@example.com",
        'a"b@example.com',
        "a,b@example.com",
        "a\\b@example.com",
    ],
)
def test_addresses_read_as_the_full_rfc5322_parser_reads_them(address: str) -> None:
    """The fast path for plain addresses gives the parser's answer: the same address, or a refusal."""
    try:
        expected: Address | None = Address(display_name="Ann Lee", addr_spec=wire_address(address, "To"))
    except (ValueError, IndexError, HeaderParseError, InvalidHeader):
        expected = None
    try:
        got: Address | None = validated(outgoing(to_email=address)).recipient
    except InvalidHeader:
        got = None

    assert got == expected
    if expected is not None:
        assert got is not None
        assert (got.username, got.domain, got.addr_spec, str(got)) == (
            expected.username,
            expected.domain,
            expected.addr_spec,
            str(expected),
        )


@pytest.mark.parametrize("address", ["ann@example..com", "ann@example.com.", "a@b@example.com"])
def test_addresses_the_parser_cannot_read_are_refused_as_invalid_headers(address: str) -> None:
    with pytest.raises(InvalidHeader, match="is not an email address"):
        build_message(outgoing(to_email=address), now=NOW)


@pytest.mark.parametrize("value", ["tab\there", "Zoë", "plain text", "x\x7fy", "x\x00y", "x\x1fy"])
def test_header_values_are_checked_the_same_with_or_without_the_ascii_shortcut(value: str) -> None:
    """Tabs and non-ASCII are allowed; DEL and other control characters are not."""
    refused = any(ord(c) < 32 and c != "\t" for c in value) or "\x7f" in value
    if refused:
        with pytest.raises(InvalidHeader, match="control character"):
            validated(outgoing(subject=value))
    else:
        assert reparse(build_message(outgoing(subject=value), now=NOW))["Subject"] == value


def test_domains_are_encoded_by_idna_2008_as_addresses_are_validated() -> None:
    from app.transport.outgoing_message import wire_address

    # IDNA 2003 (Python's "idna" codec) would send this to strasse.example, another domain.
    assert wire_address("x@straße.example") == "x@xn--strae-oqa.example"
    assert wire_address("a@Müller.example") == "a@xn--mller-kva.example"
