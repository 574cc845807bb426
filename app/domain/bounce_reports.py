"""Whether an inbound message is a bounce, which recipients failed, and which of our sends it returns. Pure.

A bounce is an RFC 3464 delivery report (`multipart/report; report-type=delivery-status`) with a failed or
delayed recipient, a non-standard bounce that flufl.bounce recognises (Exim's X-Failed-Recipients, qmail,
old Postfix and Sendmail, Exchange), or a delivery-failure notice from MAILER-DAEMON/postmaster. Each failed
recipient is hard (5.x.x) or soft (4.x.x), from the report's Status or the SMTP reply the bounce text quotes.
Nothing here raises on malformed input.
"""

from __future__ import annotations

import binascii
import quopri
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser

from flufl.bounce import all_failures

from app.domain.inbound import BOUNCE, UNRELATED, BouncedRecipient, SendRef, refs_in_text
from app.domain.message_text import (
    MAX_BODY_BYTES,
    POLICY,
    bare_address,
    body_text,
    header_map,
    leaves,
    one_line,
    part_text,
    text_parts,
)

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
# "550 5.1.1 <bob@x>: ..." or "550-5.1.1": the SMTP reply a bounce text quotes after the failed address.
_SMTP_REPLY = re.compile(r"(?<![\d.])([45])\d\d(?:[ -]([45]\.\d{1,3}\.\d{1,3}))?[ -][^\r\n]*")
_DELIVERY_STATUS = ("message/delivery-status", "message/global-delivery-status")
_NOT_FAILURES = ("delivered", "relayed", "expanded")
_MACHINE_SENDER = re.compile(r"^(mailer-?daemon|mail-daemon|postmaster|microsoftexchange[0-9a-f]*)$")
_FAILURE_SUBJECT = re.compile(
    r"^\s*(undeliver|returned mail|mail delivery (failed|failure|subsystem)|delivery (failure|has failed"
    r"|notification|status notification \((failure|delay)\))|failure notice|non[- ]?deliver|message (not delivered"
    r"|delivery failed)|mail system error|mail could not be delivered|delayed mail|warning: could not send"
    r"|could not send message|unzustellbar|nicht zustellbar|non remis|no se puede entregar|non recapitabile"
    r"|onbestelbaar|não é possível entregar|impossible de remettre)",
    re.IGNORECASE,
)
_RETURNED = ("message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers")
_MESSAGE_ID_LINE = re.compile(r"^[ \t]*message-id:\s*(<[^<>\r\n]{1,500}>)", re.I | re.M)


@dataclass(frozen=True)
class Bounce:
    """What a delivery report or bounce says, and why (`reason`).

    `kind` is BOUNCE, with the failed recipients when they could be read, or UNRELATED for a report of
    successes only (delivered, relayed, expanded).
    """

    kind: str
    reason: str
    recipients: tuple[BouncedRecipient, ...]


def read_bounce(msg: Message, headers: dict[str, str], subject: str, from_email: str | None) -> Bounce | None:
    """What `msg` says as a delivery report or a bounce; None when it is neither.

    `headers` is the message's `header_map`, `subject` its decoded subject and `from_email` its From address.
    """
    report = _dsn_recipients(msg)
    if report:
        failed = tuple(r for r in report if r.action not in _NOT_FAILURES)
        if not failed:
            return Bounce(UNRELATED, "RFC 3464 delivery report without a failure: " + _describe(report), ())
        return Bounce(BOUNCE, "RFC 3464 delivery report: " + _describe(failed), failed)
    notice = _is_delivery_notice(headers, subject, from_email)
    if report is not None or notice or _may_be_bounce(headers, subject):
        found = _flufl_recipients(msg)
        if found:
            origin = "X-Failed-Recipients" if "x-failed-recipients" in headers else "bounce text"
            return Bounce(BOUNCE, f"non-standard bounce ({origin}): " + _describe(found), found)
    if report is not None:
        return Bounce(BOUNCE, "RFC 3464 delivery report without a readable recipient", ())
    if notice:
        sender = from_email or "a null return path"
        return Bounce(BOUNCE, f"delivery failure notice from {sender} ({subject[:80]!r}); no recipient named", ())
    return None


def returned_refs(msg: Message) -> list[SendRef]:
    """Our sends named in the returned message or headers part, or in the quoted original of a text bounce."""
    found: list[SendRef] = []
    for returned in _returned_headers(msg):
        found += refs_in_text(_first_message_id(returned)) + refs_in_text(returned)
    return found


# --- which messages are bounces ------------------------------------------------------------------------------


def _may_be_bounce(headers: dict[str, str], subject: str) -> bool:
    """Signs of machine mail that make flufl.bounce's heuristics worth running (and safe from quoted bounces)."""
    if "x-failed-recipients" in headers or headers.get("return-path", "").strip() == "<>":
        return True
    return bool(_FAILURE_SUBJECT.match(subject)) or one_line(headers.get("auto-submitted", "no"), 40).lower() != "no"


def _describe(recipients: tuple[BouncedRecipient, ...]) -> str:
    parts = [f"{r.status or r.action or ('permanent' if r.hard else 'temporary')} for {r.email}" for r in recipients]
    more = f" and {len(parts) - 3} more" if len(parts) > 3 else ""
    return ", ".join(parts[:3]) + more


def _is_delivery_notice(headers: dict[str, str], subject: str, from_email: str | None) -> bool:
    """A delivery-failure subject from MAILER-DAEMON/postmaster or with a null return path."""
    if not _FAILURE_SUBJECT.match(subject):
        return False
    local = (from_email or "").partition("@")[0]
    return bool(_MACHINE_SENDER.match(local)) or headers.get("return-path", "").strip() == "<>"


# --- RFC 3464 delivery reports -------------------------------------------------------------------------------


def _dsn_recipients(msg: Message) -> tuple[BouncedRecipient, ...] | None:
    """The per-recipient blocks of the message's delivery-status parts; None when it has no such part."""
    parts = [p for p in leaves(msg) if p.get_content_type() in _DELIVERY_STATUS]
    if not parts:
        return None
    recipients: dict[str, BouncedRecipient] = {}
    for part in parts:
        for block in _status_blocks(part):
            recipient = _recipient(block)
            if recipient is not None:
                recipients.setdefault(recipient.email, recipient)
    return tuple(recipients.values())


def _recipient(block: dict[str, str]) -> BouncedRecipient | None:
    """One recipient block (a delivered one too, so a report of successes can be told from a failure)."""
    email = bare_address(block.get("final-recipient", "")) or bare_address(block.get("original-recipient", ""))
    if not email:
        return None
    action = re.split(r"[\s(]", one_line(block.get("action", ""), 40).lower())[0] or None
    diagnostic = one_line(re.sub(r"^\s*smtp\s*;\s*", "", block.get("diagnostic-code", ""), flags=re.I), 300) or None
    status = _status(block.get("status", "")) or _status(diagnostic or "")
    hard = _is_hard(action, status)
    if hard is None:
        return None
    if action is None:  # a block with a status and no action: the status class says what happened
        action = "delivered" if (status or "").startswith("2") else "failed" if hard else "delayed"
    return BouncedRecipient(email, hard, status, action, diagnostic)


def _is_hard(action: str | None, status: str | None) -> bool | None:
    """Hard for 5.x.x (or failed without a status), soft for 4.x.x or delayed; None for a block that says nothing.

    A delivered, relayed or expanded recipient is "not hard" here and left out of the bounce by its action.
    """
    if action in _NOT_FAILURES or (status or "").startswith("2"):
        return False
    if action == "delayed":
        return False
    if status is not None:
        return status.startswith("5")
    return True if action is not None else None


def _status(value: str) -> str | None:
    found = _STATUS.search(value)
    return ".".join(found.groups()) if found else None


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a message/delivery-status part (the per-message block and one per recipient)."""
    payload = part.get_payload()
    encoding = one_line(str(part.get("content-transfer-encoding", "")), 40).lower()
    if isinstance(payload, list) and encoding not in ("base64", "quoted-printable"):
        return [header_map(block) for block in payload if isinstance(block, Message)]
    # The parser reads the blocks before undoing a transfer encoding: encoded blocks are decoded and read here.
    parser = BytesParser(policy=POLICY)
    blocks = re.split(r"\r?\n[ \t]*\r?\n", _encoded_text(part, encoding))
    return [header_map(parser.parsebytes(block.encode("utf-8"), headersonly=True)) for block in blocks]


def _encoded_text(part: Message, encoding: str) -> str:
    """The body of a part the parser split before decoding it, decoded (base64 or quoted-printable)."""
    try:
        body = re.split(r"\r?\n\r?\n", part.as_string(), maxsplit=1)[-1].encode("ascii", "replace")
        raw = binascii.a2b_base64(body) if encoding == "base64" else quopri.decodestring(body)
    except Exception:  # an undecodable body: no blocks to read
        return ""
    return raw[:MAX_BODY_BYTES].decode("utf-8", "replace")


# --- non-standard bounces (flufl.bounce) ---------------------------------------------------------------------


def _flufl_recipients(msg: Message) -> tuple[BouncedRecipient, ...]:
    """Failed recipients flufl.bounce finds (bytes; temporary and permanent), with the SMTP reply quoted."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector that trips over a malformed message: no recipients from it
        return ()
    notice = body_text(msg)
    found: dict[str, BouncedRecipient] = {}
    for raw, hard in [(a, True) for a in sorted(permanent)] + [(a, False) for a in sorted(temporary)]:
        email = bare_address(raw.decode("ascii", "replace"))
        if email and email not in found:
            found[email] = _with_reply(email, hard, notice)
    return tuple(found.values())


def _with_reply(email: str, permanent: bool, notice: str) -> BouncedRecipient:
    """The recipient with the first SMTP reply the bounce text quotes after its address.

    The reply's class decides hard or soft, as in a report (Exim gives up on a full mailbox with 452 4.2.2:
    failed, yet soft); without one, flufl.bounce's permanent or temporary does.
    """
    action = "failed" if permanent else "delayed"
    start = notice.lower().find(email)
    reply = _SMTP_REPLY.search(notice, start, start + 800) if start >= 0 else None
    if reply is None:
        return BouncedRecipient(email, permanent, action=action)
    status = reply.group(2) or f"{reply.group(1)}.0.0"
    words = one_line(reply.group(0), 300)
    if words.endswith(")") and words.count(")") > words.count("("):  # "(reason: 550 5.1.1 User unknown)"
        words = words[:-1]
    return BouncedRecipient(email, status.startswith("5"), status, action, words)


# --- the returned message ------------------------------------------------------------------------------------


def _returned_headers(msg: Message) -> list[str]:
    """The returned message's headers as text (message/rfc822 or a headers part), then the text bodies."""
    found: list[str] = []
    for part in leaves(msg):
        ctype = part.get_content_type()
        payload = part.get_payload()
        if ctype in _RETURNED and isinstance(payload, list) and payload and isinstance(payload[0], Message):
            found.append("\n".join(f"{k}: {v}" for k, v in header_map(payload[0]).items()))
        elif ctype in _RETURNED:
            found.append(part_text(part))
    return found + [part_text(p) for p in text_parts(msg, "text/plain")]


def _first_message_id(headers_text: str) -> str:
    found = _MESSAGE_ID_LINE.search(headers_text)
    return found.group(1) if found else ""
