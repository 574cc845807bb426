"""The message as it goes on the wire: MIME parts, encoded headers, CRLF line ends."""

from __future__ import annotations

import email.policy
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
    Built with the classic `email` API, which costs a quarter of the header-parsing EmailMessage one.
    """
    checked = validated(msg)
    content = checked.message
    message: Message[Any, Any]
    if content.html is None:
        message = _text_part(content.text, "plain")
    else:
        message = MIMEMultipart("alternative", policy=_WIRE)
        for text, subtype in ((content.text, "plain"), (content.html, "html")):
            part = _text_part(text, subtype)
            del part["MIME-Version"]  # MIMEText adds it to every part; RFC 2045 wants it in the top level only
            message.attach(part)
    message["From"] = _address_header(checked.sender)
    message["To"] = _address_header(checked.recipient)
    message["Subject"] = _text_header(content.subject)  # type: ignore[assignment]  # compat32 takes Header values
    message["Message-ID"] = content.message_id
    message["Date"] = format_datetime(now or datetime.now(UTC))
    for name, value in checked.headers:
        message[name] = _text_header(value)  # type: ignore[assignment]
    return message.as_bytes(policy=_WIRE_UTF8 if checked.smtputf8 else _WIRE)


def _charset(text: str) -> Charset:
    """US-ASCII sent as 7bit when the text allows (lines SMTP accepts), else UTF-8 quoted-printable."""
    if text.isascii() and all(len(line) <= _SMTP_LINE_LIMIT for line in text.splitlines()):
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
