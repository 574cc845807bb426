"""What an inbound message is: a bounce, an auto-reply, an unsubscribe request, a reply or unrelated. Pure.

The rules are checked in this order, and the first that holds decides:

1. bounce: an RFC 3464 delivery report (`multipart/report; report-type=delivery-status`) with a failed or
   delayed recipient, a non-standard bounce that flufl.bounce recognises (Exim's X-Failed-Recipients, qmail,
   old Postfix and Sendmail, Exchange), or a delivery-failure notice from MAILER-DAEMON/postmaster. First,
   because Gmail, Microsoft 365, Postfix and Exim bounces also carry `Auto-Submitted: auto-replied`.
2. auto_reply: RFC 3834 `Auto-Submitted` (other than `no`), X-Autoreply, X-Autorespond, Precedence
   auto_reply (bulk or junk outside mailing lists), or an out-of-office subject. Never a reply.
3. unsubscribe: the subject, past any Re:/Fwd: prefixes, starts with the word "unsubscribe".
4. reply: from a person, that is not a mailing list and not a machine address.
5. unrelated: the rest.

Messages come from strangers: nothing here raises on malformed input, and header values are read raw and
bounded, because the email package's header parser needs quadratic time on some long values.
"""

from __future__ import annotations

import binascii
import quopri
import re
from dataclasses import replace
from datetime import UTC, datetime
from email import utils
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from html.parser import HTMLParser
from typing import Any

from flufl.bounce import all_failures

from app.domain.inbound import (
    AUTO_REPLY,
    BOUNCE,
    REPLY,
    UNRELATED,
    UNSUBSCRIBE,
    BouncedRecipient,
    Classified,
    SendRef,
    refs_in_message_ids,
    refs_in_text,
)

_MAX_HEADER = 8192  # far beyond any real Subject or From; a 64 KB Content-Type takes the parser ~0.6 s
_MAX_THREAD_HEADER = 32768  # References of a long thread; its end (the latest ids) is the part kept
_THREAD_HEADERS = ("references", "in-reply-to")
_SUBJECT_CHARS = 300


def _bounded(name: str, value: str) -> str:
    if name.lower() in _THREAD_HEADERS:
        return value[-_MAX_THREAD_HEADER:]
    return value[:_MAX_HEADER]


class _BoundedPolicy(EmailPolicy):
    """`email.policy.default` that cuts header values to a bound before parsing them."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if isinstance(value, str) and len(value) > _MAX_HEADER:
            value = _bounded(name, value)
        return super().header_fetch_parse(name, value)


_POLICY = _BoundedPolicy()


def parse(raw: bytes) -> EmailMessage:
    """The message in `raw` (RFC 5322 bytes), never raising: defects are recorded on the message, not raised."""
    try:
        parsed = BytesParser(policy=_POLICY).parsebytes(bytes(raw))
    except Exception:  # the parser records defects instead of raising; this is for pathological structures
        return EmailMessage(policy=_POLICY)
    return parsed if isinstance(parsed, EmailMessage) else EmailMessage(policy=_POLICY)


def classify(msg: Message) -> Classified:
    """What `msg` is (see the module docstring for the rules), from the message alone; never raises."""
    try:
        return _classify(msg)
    except Exception as exc:  # last resort for hostile input: a message that cannot be read answers nothing
        return Classified(UNRELATED, f"message could not be read ({type(exc).__name__})")


def _classify(msg: Message) -> Classified:
    headers = _header_map(msg)
    subject = _clean(_decode_words(headers.get("subject", "")), _SUBJECT_CHARS)
    from_email = _from_email(headers.get("from", ""))
    read = Classified(
        UNRELATED,
        "",
        message_id=_message_id(headers.get("message-id", "")),
        date=_date(headers.get("date", "")),
        subject=subject,
        snippet=_snippet(msg),
        from_email=from_email,
    )
    thread = _thread_refs(headers)
    bounce = _bounce(msg, headers, subject, from_email)
    if bounce is not None:
        kind, reason, recipients = bounce
        refs = _unique(_returned_refs(msg) + list(thread)) if kind == BOUNCE else ()
        return replace(read, kind=kind, reason=reason, refs=refs, bounces=recipients)
    auto = _auto_reply_reason(headers, subject)
    if auto is not None:
        return replace(read, kind=AUTO_REPLY, reason=auto, refs=thread)
    if _is_unsubscribe_subject(subject):
        refs = _unique(refs_in_text(subject) + list(thread))
        return replace(read, kind=UNSUBSCRIBE, reason="subject asks to unsubscribe", refs=refs)
    machine = _not_a_person(headers, from_email)
    if machine is not None:
        return replace(read, reason=machine)
    return replace(read, kind=REPLY, reason="from a person", refs=thread)


# --- plain header values -------------------------------------------------------------------------------------


def _message_id(value: str) -> str | None:
    cleaned = _clean(value, 998)
    return cleaned or None


def _date(value: str) -> datetime | None:
    """The Date header as an aware UTC datetime; None when missing or not a date (a zone-less date is UTC)."""
    if not value.strip():
        return None
    try:
        parsed = utils.parsedate_to_datetime(_clean(value, 200))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _from_email(value: str) -> str | None:
    for _name, addr in utils.getaddresses([_clean(value, _MAX_HEADER)]):
        addr = addr.strip().lower()
        if "@" in addr and " " not in addr:
            return addr
    return None


def _thread_refs(headers: dict[str, str]) -> tuple[SendRef, ...]:
    """Our sends named by In-Reply-To (the message answered), then by References (latest first)."""
    found = refs_in_message_ids(headers.get("in-reply-to")) + refs_in_message_ids(headers.get("references"))
    return _unique(found)


def _unique(refs: list[SendRef] | tuple[SendRef, ...]) -> tuple[SendRef, ...]:
    return tuple(dict.fromkeys(refs))


# --- 1. bounces ----------------------------------------------------------------------------------------------

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

Bounce = tuple[str, str, tuple[BouncedRecipient, ...]]


def _bounce(msg: Message, headers: dict[str, str], subject: str, from_email: str | None) -> Bounce | None:
    """(kind, reason, recipients) when `msg` is a delivery report or a bounce; None when it is neither."""
    report = _dsn_recipients(msg)
    if report:
        failed = tuple(r for r in report if r.action not in _NOT_FAILURES)
        if not failed:
            return UNRELATED, "RFC 3464 delivery report without a failure: " + _describe(report), ()
        return BOUNCE, "RFC 3464 delivery report: " + _describe(failed), failed
    notice = _is_delivery_notice(headers, subject, from_email)
    if report is not None or notice or _may_be_bounce(headers, subject):
        found = _flufl_recipients(msg)
        if found:
            origin = "X-Failed-Recipients" if "x-failed-recipients" in headers else "bounce text"
            return BOUNCE, f"non-standard bounce ({origin}): " + _describe(found), found
    if report is not None:
        return BOUNCE, "RFC 3464 delivery report without a readable recipient", ()
    if notice:
        sender = from_email or "a null return path"
        return BOUNCE, f"delivery failure notice from {sender} ({subject[:80]!r}); no recipient named", ()
    return None


def _may_be_bounce(headers: dict[str, str], subject: str) -> bool:
    """Signs of machine mail that make flufl.bounce's heuristics worth running (and safe from quoted bounces)."""
    if "x-failed-recipients" in headers or headers.get("return-path", "").strip() == "<>":
        return True
    return bool(_FAILURE_SUBJECT.match(subject)) or _clean(headers.get("auto-submitted", "no"), 40).lower() != "no"


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


def _dsn_recipients(msg: Message) -> tuple[BouncedRecipient, ...] | None:
    """The per-recipient blocks of the message's delivery-status parts; None when it has no such part."""
    parts = [p for p in _leaves(msg) if p.get_content_type() in _DELIVERY_STATUS]
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
    email = _address(block.get("final-recipient", "")) or _address(block.get("original-recipient", ""))
    if not email:
        return None
    action = re.split(r"[\s(]", _clean(block.get("action", ""), 40).lower())[0] or None
    diagnostic = _clean(re.sub(r"^\s*smtp\s*;\s*", "", block.get("diagnostic-code", ""), flags=re.I), 300) or None
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


def _address(value: str) -> str:
    """`rfc822; Bob@X.example` -> `bob@x.example` (an address without its type is taken as it is)."""
    addr = _clean(value, 400).rpartition(";")[2].strip().strip("<>").strip().lower()
    return addr if "@" in addr and " " not in addr else ""


def _status(value: str) -> str | None:
    found = _STATUS.search(value)
    return ".".join(found.groups()) if found else None


def _flufl_recipients(msg: Message) -> tuple[BouncedRecipient, ...]:
    """Failed recipients flufl.bounce finds (bytes; temporary and permanent), with the SMTP reply quoted."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector that trips over a malformed message: no recipients from it
        return ()
    notice = _body_text(msg)
    found: dict[str, BouncedRecipient] = {}
    for raw, hard in [(a, True) for a in sorted(permanent)] + [(a, False) for a in sorted(temporary)]:
        email = _address(raw.decode("ascii", "replace"))
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
    words = _clean(reply.group(0), 300)
    if words.endswith(")") and words.count(")") > words.count("("):  # "(reason: 550 5.1.1 User unknown)"
        words = words[:-1]
    return BouncedRecipient(email, status.startswith("5"), status, action, words)


def _returned_refs(msg: Message) -> list[SendRef]:
    """Our sends named in the returned message or headers part, or in the quoted original of a text bounce."""
    found: list[SendRef] = []
    for returned in _returned_headers(msg):
        found += refs_in_text(_first_message_id(returned)) + refs_in_text(returned)
    return found


# --- 2. auto-replies -----------------------------------------------------------------------------------------

_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated")
_LIST_HEADERS = (("list-id", "List-Id"), ("list-unsubscribe", "List-Unsubscribe"))


def _auto_reply_reason(headers: dict[str, str], subject: str) -> str | None:
    """Why the message is an automatic reply (RFC 3834 and its common relatives), or None."""
    submitted = _clean(headers.get("auto-submitted", ""), 80).lower()
    if submitted and submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {submitted}"
    for name in _AUTO_HEADERS:
        value = _clean(headers.get(name, ""), 80)
        if name in headers and value.lower() not in ("no", "false", "0"):
            return f"{_title(name)}: {value}".rstrip(": ")
    precedence = _clean(headers.get("precedence", ""), 40).lower()
    listed = _list_reason(headers) is not None
    if precedence == "auto_reply" or (precedence in ("bulk", "junk") and not listed):
        return f"Precedence: {precedence}"
    if not listed and _is_out_of_office_subject(subject):
        return "subject looks like an out-of-office reply"
    return None


def _title(name: str) -> str:
    return "-".join(word.capitalize() for word in name.split("-"))


# --- 4. a person or a machine --------------------------------------------------------------------------------

_MACHINE_LOCAL = re.compile(
    r"^(no-?reply|do-?not-?reply|donotreply|mailer-?daemon|postmaster|bounces?|notifications?|notify|alerts?"
    r"|news(letter)?|digest|updates|automated|system|daemon|robot)([-+._].*)?$|^(noreply|no-reply)",
    re.IGNORECASE,
)


def _list_reason(headers: dict[str, str]) -> str | None:
    for name, label in _LIST_HEADERS:
        if headers.get(name, "").strip():
            return f"mailing list ({label})"
    if _clean(headers.get("precedence", ""), 40).lower() == "list":
        return "mailing list (Precedence: list)"
    return None


def _not_a_person(headers: dict[str, str], from_email: str | None) -> str | None:
    """Why the message is not from a person (a list, a machine address, no sender), or None."""
    listed = _list_reason(headers)
    if listed is not None:
        return listed
    if from_email is None:
        return "no From address"
    if _MACHINE_LOCAL.match(from_email.partition("@")[0]):
        return f"from a machine address ({from_email})"
    if headers.get("return-path", "").strip() == "<>":
        return "null return path (machine mail)"
    return None


# --- subjects ------------------------------------------------------------------------------------------------

# Reply and forward prefixes in the main languages: Re, Fwd, AW/WG (de), TR (fr), SV/VS (nordic), RIF/R (it),
# ENC/RES (pt), ODP (pl), Antw (nl), possibly numbered (Re[2]:) and with a space before the colon (fr).
_PREFIXES = re.compile(
    r"^(?:\s*(?:re|fwd?|aw|wg|tr|sv|vs|rif|r|enc|res|odp|antw|doorst)(?:\[\d+\]|\(\d+\))?\s*[:：])+\s*", re.I
)
_UNSUBSCRIBE = re.compile(r"unsubscribe\b", re.I)
# Phrases no human subject starts a conversation with; matched anywhere unless the subject is a reply.
_OUT_OF_OFFICE = re.compile(
    r"\b(?:out[ -]of[ -](?:the[ -])?office|automatic(?:ally)? (?:reply|response)|auto[ -]?(?:reply|response"
    r"|responder)|vacation (?:reply|response|notice)|abwesenheitsnotiz|automatische antwort|abwesenheit"
    r"|réponse automatique|absence du bureau|respuesta automática|fuera de (?:la )?oficina|risposta automatica"
    r"|fuori (?:dall')?ufficio|automatisch antwoord|resposta automática|fora do escritório|autosvar"
    r"|automaattinen vastaus|automatyczna odpowiedź|poza biurem)\b"
    r"|自动回复|自動回覆|自動回复|自動応答|自動返信|不在のお知らせ",
    re.I,
)
# Single words that are also ordinary words ("Away game tickets"): only at the very start, and only followed
# by the end, punctuation or a word that goes on with an absence ("Away until Monday", "Absence du bureau").
_ABSENT_WORD = re.compile(
    r"^(?:away|absence|absent|afwezig|ausente|ausência|abwesend|frånvaro|frånvarande|fravær|fraværende"
    r"|poissa|ooo|on (?:vacation|holiday|leave)|nieobecność|assente|urlaub)\b"
    r"(?=\s*$|\s*[:(\[!.,]|\s+[-–—]|\s+(?:from|until|till|through|du|de|bis|tot|fino|hasta|até|on|at|in|i|im"
    r"|au|fra|od)\b)",
    re.I,
)


def _is_unsubscribe_subject(subject: str) -> bool:
    """The subject, past any Re:/Fwd:/AW:/WG:/TR: prefixes, starts with the word "unsubscribe"."""
    return bool(_UNSUBSCRIBE.match(_PREFIXES.sub("", subject, count=1).strip()))


def _is_out_of_office_subject(subject: str) -> bool:
    """An out-of-office or automatic-reply subject in one of the main languages (a person's Re: never is)."""
    stripped = subject.strip()
    if _PREFIXES.match(stripped):
        return False
    return bool(_OUT_OF_OFFICE.search(stripped) or _ABSENT_WORD.match(stripped))


# --- header values, read raw and bounded ---------------------------------------------------------------------

_MAX_HEADERS = 1000
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _header_map(msg: Message) -> dict[str, str]:
    """The first value of each header, by lower-cased name: unparsed, unfolded, bounded."""
    found: dict[str, str] = {}
    try:
        items = list(msg.raw_items())[:_MAX_HEADERS]
    except Exception:  # a message object that cannot list its headers has none to tell
        return found
    for name, value in items:
        key = str(name).strip().lower()
        if key not in found:
            found[key] = _FOLD.sub("", _bounded(key, str(value)))
    return found


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded by the email package (an unknown charset is a defect, not an error)."""
    if "=?" not in value:
        return value
    try:
        return str(_POLICY.header_factory("subject", _clean(value, _MAX_HEADER)))
    except Exception:  # the header parser on a value it cannot read: keep the value as it came
        return value


def _clean(value: str, limit: int) -> str:
    """One line of at most `limit` characters, valid Unicode (bytes the parser kept as surrogates re-read)."""
    value = value[: limit * 4 + 64]
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


# --- parts and bodies ----------------------------------------------------------------------------------------

_MAX_PARTS = 500
_MAX_BODY_BYTES = 65536
_RETURNED = ("message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers")
_MESSAGE_ID_LINE = re.compile(r"^[ \t]*message-id:\s*(<[^<>\r\n]{1,500}>)", re.I | re.M)


def _leaves(msg: Message) -> list[Message]:
    """The message's parts, depth first, without going into attached messages (message/* parts are leaves)."""
    found: list[Message] = []
    stack = [msg]
    while stack and len(found) < _MAX_PARTS:
        part = stack.pop()
        children = part.get_payload() if part.get_content_maintype() == "multipart" else None
        if isinstance(children, list):
            stack.extend(reversed([c for c in children if isinstance(c, Message)]))
        else:
            found.append(part)
    return found


def _part_text(part: Message) -> str:
    """A text part's decoded body (its first 64 KB), in its charset or else UTF-8, never raising."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a transfer encoding the email package cannot undo
        return ""
    if not isinstance(payload, bytes):
        return ""
    payload = payload[:_MAX_BODY_BYTES]
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except (LookupError, ValueError, TypeError):
        return payload.decode("utf-8", "replace")


def _is_attachment(part: Message) -> bool:
    try:
        return part.get_content_disposition() == "attachment"
    except Exception:  # an unreadable Content-Disposition: not offered as the message's text
        return True


def _text_parts(msg: Message, ctype: str) -> list[Message]:
    return [p for p in _leaves(msg) if p.get_content_type() == ctype and not _is_attachment(p)]


def _body_text(msg: Message) -> str:
    """The first text/plain part (a bounce's notice, a person's words)."""
    parts = _text_parts(msg, "text/plain")
    return _part_text(parts[0]) if parts else ""


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """The field blocks of a message/delivery-status part (the per-message block and one per recipient)."""
    payload = part.get_payload()
    encoding = _clean(str(part.get("content-transfer-encoding", "")), 40).lower()
    if isinstance(payload, list) and encoding not in ("base64", "quoted-printable"):
        return [_header_map(block) for block in payload if isinstance(block, Message)]
    # The parser reads the blocks before undoing a transfer encoding: encoded blocks are decoded and read here.
    parser = BytesParser(policy=_POLICY)
    blocks = re.split(r"\r?\n[ \t]*\r?\n", _encoded_text(part, encoding))
    return [_header_map(parser.parsebytes(block.encode("utf-8"), headersonly=True)) for block in blocks]


def _encoded_text(part: Message, encoding: str) -> str:
    """The body of a part the parser split before decoding it, decoded (base64 or quoted-printable)."""
    try:
        body = re.split(r"\r?\n\r?\n", part.as_string(), maxsplit=1)[-1].encode("ascii", "replace")
        raw = binascii.a2b_base64(body) if encoding == "base64" else quopri.decodestring(body)
    except Exception:  # an undecodable body: no blocks to read
        return ""
    return raw[:_MAX_BODY_BYTES].decode("utf-8", "replace")


def _returned_headers(msg: Message) -> list[str]:
    """The returned message's headers as text (message/rfc822 or a headers part), then the text bodies."""
    found: list[str] = []
    for part in _leaves(msg):
        ctype = part.get_content_type()
        payload = part.get_payload()
        if ctype in _RETURNED and isinstance(payload, list) and payload and isinstance(payload[0], Message):
            found.append("\n".join(f"{k}: {v}" for k, v in _header_map(payload[0]).items()))
        elif ctype in _RETURNED:
            found.append(_part_text(part))
    return found + [_part_text(p) for p in _text_parts(msg, "text/plain")]


def _first_message_id(headers_text: str) -> str:
    found = _MESSAGE_ID_LINE.search(headers_text)
    return found.group(1) if found else ""


# --- snippets ------------------------------------------------------------------------------------------------

_SNIPPET_CHARS = 200
_WROTE = r"(?:wrote|schrieb|a écrit|escribió|schreef|ha scritto|escreveu|skrev|kirjoitti|napisał|написал)"
_ATTRIBUTION = re.compile(
    rf"^[ \t]*(?:On|Am|Le|El|Op|Il|Em|Den|På|W dniu)\s[^\n]{{0,300}}?(?:\n[^\n]{{0,300}}?)?\s{_WROTE}"
    r"(?:\s[^\n]{0,200}?)?\s*:[ \t]*\r?$",
    re.I | re.M,
)
# Where a client puts the original below the reply without quoting it: Outlook's header block and rules.
_ORIGINAL = re.compile(
    r"^[ \t]*(?:-{2,}\s*(?:original message|forwarded message|ursprüngliche nachricht|message d'origine"
    r"|mensaje original|messaggio originale|oorspronkelijk bericht|mensagem original)|_{10,}[ \t]*\r?$"
    r"|(?:from|von|de|da|van|från|od):[^\n]*\n[ \t]*(?:sent|gesendet|envoyé|enviado|inviato|verzonden|skickat"
    r"|wysłano|date|datum):)",
    re.I | re.M,
)


def _snippet(msg: Message) -> str:
    """The start of what the sender wrote: text/plain (else text/html), without quotes, attribution, signature."""
    plain = _text_parts(msg, "text/plain")
    if plain:
        return _clean(_own_words(_part_text(plain[0])), _SNIPPET_CHARS)
    html = _text_parts(msg, "text/html")
    return _clean(_own_words(_html_text(_part_text(html[0]))), _SNIPPET_CHARS) if html else ""


def _own_words(body: str) -> str:
    cut = _ORIGINAL.search(body)
    body = _ATTRIBUTION.sub("", body[: cut.start()] if cut else body)
    kept: list[str] = []
    for line in body.splitlines():
        if line.rstrip() == "--":  # the signature separator "-- " (RFC 3676), often trimmed
            break
        if not line.lstrip().startswith(">"):
            kept.append(line)
    return "\n".join(kept)


class _HTMLText(HTMLParser):
    """The text of an HTML body, without scripts, styles and quoted replies (blockquote, Gmail's quote div)."""

    _SKIP = frozenset({"script", "style", "head", "title", "blockquote"})
    _BREAK = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skipping: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping is not None:
            self._depth += tag == self._skipping
            return
        quoted = any(name == "class" and value and "gmail_quote" in value for name, value in attrs)
        if tag in self._SKIP or quoted:
            self._skipping, self._depth = tag, 1
        elif tag in self._BREAK:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._skipping == tag:
            self._depth -= 1
            if self._depth == 0:
                self._skipping = None

    def handle_data(self, data: str) -> None:
        if self._skipping is None:
            self.chunks.append(data)


def _html_text(html: str) -> str:
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; anything it still trips on ends the text where it got to
        pass
    return "".join(parser.chunks)
