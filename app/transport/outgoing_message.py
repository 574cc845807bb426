"""The outgoing message, its deterministic Message-ID, and the header checks that refuse injection.

A message is checked once: `validated()` returns a ValidatedMessage, which `build_message` and the senders
accept without checking again (they check a plain OutgoingMessage themselves).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.headerregistry import Address

import idna

from app.domain.addresses import has_line_break

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
# RFC 6532 adds non-ASCII characters to atext; C1 controls and lone surrogates stay out.
_UTF8_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u00a0-\ud7ff\ue000-\U0010ffff-]+"
_UTF8_DOT_ATOM = re.compile(rf"{_UTF8_ATEXT}(?:\.{_UTF8_ATEXT})*")


class InvalidHeader(ValueError):
    """A header value that would allow header injection or is malformed; nothing was built or sent."""


def idna_ascii(domain: str) -> str:
    """The ASCII (A-label) form of a domain by IDNA 2008 with UTS #46 mapping, as address validation uses it.

    Python's built-in "idna" codec is IDNA 2003, which maps e.g. straße.example to strasse.example: another
    domain than the one the address was validated for. Raise UnicodeError when the domain is not valid.
    """
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise UnicodeError(str(exc)) from None


# Every message of an account carries its domain: remember recent answers (pure, and IDNA is slow).
@functools.lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    text = domain.strip().rstrip(".").lower()
    try:
        ascii_domain = idna_ascii(text)
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


def _check_value(header: str, value: str) -> None:
    if value.isascii() and value.isprintable():
        return  # the common case: printable ASCII holds neither a line break nor a control character
    if has_line_break(value):
        raise InvalidHeader(f"header {header} contains a line break (header injection refused): {value!r}")
    if any(ord(c) < 32 and c != "\t" for c in value) or "\x7f" in value:
        raise InvalidHeader(f"header {header} contains a control character: {value!r}")


def wire_address(addr: str, header: str = "address") -> str:
    """The address as sent on the wire: internationalised domains in their ASCII (IDNA) form.

    A non-ASCII local part is kept in UTF-8: such an address can only go to a server that offers SMTPUTF8
    (RFC 6531), which `needs_smtputf8` tells and the sender asks for.
    """
    _check_value(header, addr)
    text = addr.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or " " in text or "<" in addr or ">" in addr:
        raise InvalidHeader(f"header {header}: {addr!r} is not an email address")
    try:
        ascii_domain = domain if domain.isascii() else idna_ascii(domain)
    except UnicodeError:
        raise InvalidHeader(f"header {header}: {addr!r} has an invalid domain") from None
    return f"{local}@{ascii_domain}"


def needs_smtputf8(*envelope: str) -> bool:
    """True when an envelope (wire) address is not ASCII, i.e. has a non-ASCII local part: RFC 6531 SMTPUTF8."""
    return not all(address.isascii() for address in envelope)


def _address(header: str, addr: str, name: str | None) -> tuple[str, Address]:
    """(wire form, header Address) of one address and its display name; raise InvalidHeader.

    The header address of a non-ASCII local part is the address as given, in UTF-8 (RFC 6532).
    """
    spec = wire_address(addr, header)
    if name is not None:
        _check_value(f"{header} display name", name)
    display_name = (name or "").strip()
    local, _, domain = spec.rpartition("@")
    if not local.isascii():
        if not _UTF8_DOT_ATOM.fullmatch(local):
            raise InvalidHeader(
                f"header {header}: {addr!r} has a non-ASCII local part that is not a plain dot-atom "
                "(letters, digits and !#$%&'*+/=?^_`{|}~- separated by dots), which cannot be sent"
            )
        return spec, Address(display_name=display_name, username=local, domain=addr.strip().rpartition("@")[2])
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
    mapping afterwards changes nothing that is sent. `smtputf8` is True when an envelope address has a
    non-ASCII local part: the message can then only be sent with SMTPUTF8 (RFC 6531), its headers in UTF-8.
    """

    message: OutgoingMessage
    mail_from: str
    rcpt_to: str
    sender: Address
    recipient: Address
    headers: tuple[tuple[str, str], ...]
    smtputf8: bool = False


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
    return ValidatedMessage(msg, mail_from, rcpt_to, sender, recipient, headers, needs_smtputf8(mail_from, rcpt_to))


def validate_message(msg: OutgoingMessage) -> tuple[Address, Address]:
    """Check every header value like `validated()`, returning only the (From, To) addresses; raise InvalidHeader."""
    checked = validated(msg)
    return checked.sender, checked.recipient
