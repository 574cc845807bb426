"""The message as it goes on the wire: MIME parts, encoded headers, CRLF line ends."""

from __future__ import annotations

import email.policy
import re
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from typing import Any, ClassVar

from app.transport.outgoing_message import OutgoingMessage, ValidatedMessage, validated


class _WirePolicy(email.policy.Compat32):
    """compat32, with the common header written directly: an ASCII value on one line that fits in
    `max_line_length` comes out of compat32's folding exactly as `Name: value` (tests/unit/test_mime.py checks it
    byte for byte), and that folding was most of the cost of building a message. Anything else is folded by
    compat32 itself."""

    _BREAKS: ClassVar[frozenset[str]] = frozenset("\r\n")

    def fold_binary(self, name: str, value: Any) -> bytes:
        limit = self.max_line_length
        if (
            isinstance(value, str)
            and limit is not None
            and len(name) + len(value) + 2 <= limit
            and value.isascii()
            and self._BREAKS.isdisjoint(value)
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_WIRE = _WirePolicy(linesep="\r\n", max_line_length=78)
# An SMTPUTF8 message carries raw UTF-8 in its address headers (RFC 6532); bodies stay 7bit or QP.
_WIRE_UTF8 = _WIRE.clone(cte_type="8bit")
_SMTP_LINE_LIMIT = 998


def build_message(msg: OutgoingMessage | ValidatedMessage, *, now: datetime | None = None) -> bytes:
    """The message as it goes on the wire (CRLF line ends): text, plus HTML as multipart/alternative.

    A plain OutgoingMessage is checked first (`validated()`): InvalidHeader before anything is built when a
    header value holds a line break or is malformed. A ValidatedMessage is built without checking again.
    `now` sets the Date header (default: the current UTC time). Non-ASCII display names and subjects are
    RFC 2047 encoded; a body is 7bit US-ASCII when it can be, quoted-printable UTF-8 otherwise. An address
    with a non-ASCII local part (a message that needs SMTPUTF8) goes into its header in UTF-8 (RFC 6532).
    A text-only message with a 7bit body (most cold email) is written directly, byte for byte as the classic
    `email` API writes it (`tests/unit/test_mime.py` compares the two); any other is built with that API.
    """
    checked = validated(msg)
    content = checked.message
    headers = _headers(checked, now or datetime.now(UTC))
    policy = _WIRE_UTF8 if checked.smtputf8 else _WIRE
    if content.html is None and _is_7bit(content.text):
        return _plain_7bit(content.text, headers, policy)
    return _with_email_package(content.text, content.html, headers, policy)


def _headers(checked: ValidatedMessage, now: datetime) -> list[tuple[str, Any]]:
    """The message's own headers, in order, as values the wire policy folds (str, or Header when encoded)."""
    content = checked.message
    return [
        ("From", _address_header(checked.sender)),
        ("To", _address_header(checked.recipient)),
        ("Subject", _text_header(content.subject)),
        ("Message-ID", content.message_id),
        ("Date", format_datetime(now)),
        *((name, _text_header(value)) for name, value in checked.headers),
    ]


def _with_email_package(text: str, html: str | None, headers: list[tuple[str, Any]], policy: _WirePolicy) -> bytes:
    message: Message[Any, Any]
    if html is None:
        message = _text_part(text, "plain")
    else:
        message = MIMEMultipart("alternative", policy=_WIRE)
        for body, subtype in ((text, "plain"), (html, "html")):
            part = _text_part(body, subtype)
            del part["MIME-Version"]  # MIMEText adds it to every part; RFC 2045 wants it in the top level only
            message.attach(part)
    for name, value in headers:
        message[name] = value
    return message.as_bytes(policy=policy)


# What MIMEText("...", "plain", "us-ascii") puts first, in its order.
_PLAIN_7BIT_HEADERS = (
    ("Content-Type", 'text/plain; charset="us-ascii"'),
    ("MIME-Version", "1.0"),
    ("Content-Transfer-Encoding", "7bit"),
)
_LINE_ENDS = re.compile(r"\r\n|\r|\n")  # the generator's NLCRE: every line end becomes CRLF


def _plain_7bit(text: str, headers: list[tuple[str, Any]], policy: _WirePolicy) -> bytes:
    """A text/plain US-ASCII message as `Message.as_bytes` writes it: each header folded by the policy, a blank
    line, the body with CRLF line ends (as_bytes does not mangle "From " lines)."""
    head = b"".join(policy.fold_binary(name, value) for name, value in (*_PLAIN_7BIT_HEADERS, *headers))
    return head + b"\r\n" + "\r\n".join(_LINE_ENDS.split(text)).encode("ascii")


def _is_7bit(text: str) -> bool:
    """True when the body goes as 7bit US-ASCII: ASCII, and no line longer than SMTP accepts."""
    return text.isascii() and all(len(line) <= _SMTP_LINE_LIMIT for line in text.splitlines())


def _charset(text: str) -> Charset:
    """US-ASCII sent as 7bit when the text allows (lines SMTP accepts), else UTF-8 quoted-printable."""
    if _is_7bit(text):
        return Charset("us-ascii")
    charset = Charset("utf-8")
    charset.body_encoding = QP
    return charset


def _text_part(text: str, subtype: str) -> Message[Any, Any]:
    return MIMEText(text, subtype, _charset(text), policy=_WIRE)  # type: ignore[arg-type]


def _text_header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def _address_header(address: Address) -> str:
    if address.username.isascii():
        return formataddr((address.display_name, address.addr_spec), charset="utf-8")
    # formataddr refuses a non-ASCII address: let it quote or encode the name alone, then add the address.
    named = formataddr((address.display_name, ""), charset="utf-8")[:-2] if address.display_name else ""
    utf8 = f"{named}<{address.addr_spec}>" if named else address.addr_spec
    # Surrogate escapes make the compat32 generator write the UTF-8 bytes as they are, unencoded.
    return utf8.encode("utf-8").decode("ascii", "surrogateescape")
