"""What every sender shares: the Sender protocol, the outgoing message, and the classified send errors.

Errors are classified once, here, so the worker decides from the class alone:
- TransientSendError: 4xx replies, dropped connections, timeouts, a TLS handshake cut short. Retry later, on
  another account where one is free. A drop while the DATA reply was awaited (`during == "data"`,
  `code is None`) means the server may have accepted the message: the caller must treat that send as
  uncertain, not retry it blindly.
- PermanentSendError: 5xx for this message or recipient. Fail the recipient (hard bounce).
- AccountAuthError: the account itself cannot send (rejected credentials, auth required, refused at connect).
  Take the account out of rotation; the recipient is retried on another account.
- AccountConfigError, an AccountAuthError: the account's settings cannot work as they stand. Today that is a
  server certificate that fails verification (self-signed, issued for another host name, expired): retrying
  in a few seconds would fail the same way, so the account leaves rotation like any AccountAuthError, and the
  message names the host and port, what the verification found and what to change.

A message is checked once: `validated()` returns a ValidatedMessage, which `build_message` and the senders
accept without checking again (they check a plain OutgoingMessage themselves).
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from typing import Any, Protocol

from app.domain.models import EmailAccount, has_line_break

STAGES = ("connect", "tls", "auth", "mail", "rcpt", "data")
AUTH_REPLY_CODES = frozenset({530, 534, 535})
# A 5xx before any mail was offered refuses the account, not a recipient.
ACCOUNT_STAGES = frozenset({"connect", "tls", "auth"})
# Headers the builder owns; extra headers may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "message-id",
        "date",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII without ':' or space (RFC 5322 field-name)
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ID_PART = re.compile(r"^[A-Za-z0-9._+-]+$")
# RFC 5322 dot-atom: an address whose two sides are both dot-atoms is one the full parser accepts unchanged.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")


class SendError(Exception):
    """An SMTP send failed; `code` is the server's reply code (None: no reply), `reply` its text."""

    def __init__(self, code: int | None, reply: str, *, during: str = "") -> None:
        super().__init__(code, reply)
        self.code = code
        self.reply = reply
        self.during = during

    def __str__(self) -> str:
        return f"{self.code} {self.reply}" if self.code is not None else self.reply

    @property
    def uncertain(self) -> bool:
        """True when the connection failed while the message body was in flight: it may have been accepted
        (RFC 1047), so it must not be retried automatically."""
        return self.during == "data" and self.code is None


class TransientSendError(SendError):
    """4xx, dropped connection, timeout: retry later, preferably on another account."""


class PermanentSendError(SendError):
    """5xx for this recipient or message: fail the recipient."""


class AccountAuthError(SendError):
    """The account's credentials or identity were refused: take the account out of rotation."""


class AccountConfigError(AccountAuthError):
    """The account's configuration cannot work (its server's certificate fails verification): out of rotation
    until someone fixes it; the message says what to fix. Never a network problem, so never retried."""


class InvalidHeader(ValueError):
    """A header value that would allow header injection or is malformed; nothing was built or sent."""


def classify_smtp_reply(code: int | None, message: str, *, during: str) -> type[SendError]:
    """Map an SMTP failure to the error class the worker acts on.

    `code` is None when the server gave no reply (dropped connection, timeout, TLS failure). `message` is
    accepted so callers pass the whole reply; classification depends on the code and the stage only.
    """
    if during not in STAGES:
        raise ValueError(f"unknown SMTP stage {during!r}: expected one of {', '.join(STAGES)}")
    if code is None or 400 <= code < 500:
        return TransientSendError
    if code in AUTH_REPLY_CODES or (during in ACCOUNT_STAGES and code >= 500):
        return AccountAuthError
    if 500 <= code < 600:
        return PermanentSendError
    # A 2xx/3xx reported as a failure is protocol confusion: try again on a fresh connection.
    return TransientSendError


def _ascii_domain(domain: str) -> str:
    text = domain.strip().rstrip(".").lower()
    try:
        ascii_domain = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"domain {domain!r} is not a valid host name") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise ValueError(f"domain {domain!r} is not a valid host name (expected e.g. example.com)")
    return ascii_domain


def make_message_id(lead_id: object, step_order: int, recipient_index: int, domain: str) -> str:
    """The deterministic Message-ID of one (lead, step, recipient) send: `<outbound.{lead}.{step}.{idx}@{domain}>`.

    Deterministic so a retried or duplicated send carries the same id and can be recognised downstream.
    """
    lead = str(lead_id)
    if not _ID_PART.match(lead):
        raise ValueError(f"lead id {lead!r} cannot be used in a Message-ID (letters, digits, . _ + - only)")
    if isinstance(step_order, bool) or not isinstance(step_order, int) or step_order < 1:
        raise ValueError(f"step_order must be a whole number >= 1, got {step_order!r}")
    if isinstance(recipient_index, bool) or not isinstance(recipient_index, int) or recipient_index < 0:
        raise ValueError(f"recipient_index must be a whole number >= 0, got {recipient_index!r}")
    return f"<outbound.{lead}.{step_order}.{recipient_index}@{_ascii_domain(domain)}>"


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered email for one recipient, ready to be built and sent."""

    message_id: str
    from_email: str
    from_name: str | None
    to_email: str
    to_name: str | None
    subject: str
    text: str
    html: str | None
    headers: Mapping[str, str] = field(default_factory=dict)  # extra, e.g. List-Unsubscribe


@dataclass(frozen=True)
class SendResult:
    """The server accepted the message: its final reply and when."""

    message_id: str
    code: int
    reply: str
    accepted_at: datetime


class Sender(Protocol):
    """Anything that can hand a message to a mail server for an account (SMTP, dry run)."""

    async def send(self, account: EmailAccount, message: OutgoingMessage | ValidatedMessage) -> SendResult:
        """Send `message` through `account` (checked first unless already validated); raise a SendError
        subclass on failure, InvalidHeader before any I/O when the message is unsafe."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def _check_value(header: str, value: str) -> None:
    if value.isascii() and value.isprintable():
        return  # the common case: printable ASCII holds neither a line break nor a control character
    if has_line_break(value):
        raise InvalidHeader(f"header {header} contains a line break (header injection refused): {value!r}")
    if any(ord(c) < 32 and c != "\t" for c in value) or "\x7f" in value:
        raise InvalidHeader(f"header {header} contains a control character: {value!r}")


def wire_address(addr: str, header: str = "address") -> str:
    """The address as sent on the wire: internationalised domains in their ASCII (IDNA) form.

    A non-ASCII local part would need SMTPUTF8 end to end, which Outbound does not use: it is refused.
    """
    _check_value(header, addr)
    text = addr.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or " " in text or "<" in addr or ">" in addr:
        raise InvalidHeader(f"header {header}: {addr!r} is not an email address")
    if not local.isascii():
        raise InvalidHeader(f"header {header}: {addr!r} has a non-ASCII local part, which cannot be sent")
    try:
        ascii_domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidHeader(f"header {header}: {addr!r} has an invalid domain") from None
    return f"{local}@{ascii_domain}"


def _address(header: str, addr: str, name: str | None) -> tuple[str, Address]:
    """(wire form, header Address) of one address and its display name; raise InvalidHeader."""
    spec = wire_address(addr, header)
    if name is not None:
        _check_value(f"{header} display name", name)
    display_name = (name or "").strip()
    local, _, domain = spec.rpartition("@")
    if _DOT_ATOM.fullmatch(local) and _DOT_ATOM.fullmatch(domain):
        # What Address(addr_spec=...) would parse to, without running the RFC 5322 parser (90% of the cost).
        return spec, Address(display_name=display_name, username=local, domain=domain)
    try:
        return spec, Address(display_name=display_name, addr_spec=spec)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise InvalidHeader(f"header {header}: {addr!r} is not an email address ({exc})") from None


def _check_extra_headers(headers: Iterable[tuple[str, str]]) -> None:
    for name, value in headers:
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise InvalidHeader(f"header name {name!r} is not valid (printable ASCII, no ':' or spaces)")
        if name.lower() in RESERVED_HEADERS:
            raise InvalidHeader(f"header {name} is set by Outbound and cannot be given as an extra header")
        if not isinstance(value, str):
            raise InvalidHeader(f"header {name} must be text, got {type(value).__name__}")
        _check_value(name, value)


def _check_message_id(message_id: str) -> None:
    _check_value("Message-ID", message_id)
    if not (message_id.startswith("<") and message_id.endswith(">") and "@" in message_id and " " not in message_id):
        raise InvalidHeader(f"header Message-ID {message_id!r} must look like <local@domain>")


@dataclass(frozen=True)
class ValidatedMessage:
    """An OutgoingMessage whose header values passed every check, with what the checks produced.

    Made by `validated()`. `build_message` and the senders take it as it is, so a message is checked once
    however many steps handle it. `mail_from` and `rcpt_to` are the envelope (wire) addresses; `sender` and
    `recipient` the header ones. `headers` is the extra headers as they were checked: changing the original
    mapping afterwards changes nothing that is sent.
    """

    message: OutgoingMessage
    mail_from: str
    rcpt_to: str
    sender: Address
    recipient: Address
    headers: tuple[tuple[str, str], ...]


def validated(msg: OutgoingMessage | ValidatedMessage) -> ValidatedMessage:
    """Check every header value (no line breaks, valid addresses) without building anything; raise InvalidHeader.

    A message that is already a ValidatedMessage is returned as it is.
    """
    if isinstance(msg, ValidatedMessage):
        return msg
    mail_from, sender = _address("From", msg.from_email, msg.from_name)
    rcpt_to, recipient = _address("To", msg.to_email, msg.to_name)
    _check_value("Subject", msg.subject)
    _check_message_id(msg.message_id)
    headers = tuple(msg.headers.items())
    _check_extra_headers(headers)
    return ValidatedMessage(msg, mail_from, rcpt_to, sender, recipient, headers)


def validate_message(msg: OutgoingMessage) -> tuple[Address, Address]:
    """Check every header value like `validated()`, returning only the (From, To) addresses; raise InvalidHeader."""
    checked = validated(msg)
    return checked.sender, checked.recipient


def build_message(msg: OutgoingMessage | ValidatedMessage, *, now: datetime | None = None) -> bytes:
    """The message as it goes on the wire (CRLF line ends): text, plus HTML as multipart/alternative.

    A plain OutgoingMessage is checked first (`validated()`): InvalidHeader before anything is built when a
    header value holds a line break or is malformed. A ValidatedMessage is built without checking again.
    `now` sets the Date header (default: the current UTC time). Non-ASCII display names and subjects are
    RFC 2047 encoded; a body is 7bit US-ASCII when it can be, quoted-printable UTF-8 otherwise.
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
    return message.as_bytes(policy=_WIRE)


_WIRE = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)
_SMTP_LINE_LIMIT = 998


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
    return formataddr((address.display_name, address.addr_spec), charset="utf-8")
