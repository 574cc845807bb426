"""Reading an inbound message safely: bounded header values, addresses, dates, parts, text bodies, snippets. Pure.

Messages come from strangers: nothing here raises on malformed input, and header values are read raw and
bounded, because the email package's header parser needs quadratic time on some long values.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import utils
from email.message import Message
from email.policy import EmailPolicy
from html.parser import HTMLParser
from typing import Any

_MAX_HEADER = 8192  # far beyond any real Subject or From; a 64 KB Content-Type takes the parser ~0.6 s
_MAX_THREAD_HEADER = 32768  # References of a long thread; its end (the latest ids) is the part kept
_THREAD_HEADERS = ("references", "in-reply-to")


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


POLICY = _BoundedPolicy()
"""The policy to parse inbound messages with: `email.policy.default` with header values bounded."""


# --- header values, read raw and bounded ---------------------------------------------------------------------

_MAX_HEADERS = 1000
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def header_map(msg: Message) -> dict[str, str]:
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


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded by the email package (an unknown charset is a defect, not an error)."""
    if "=?" not in value:
        return value
    try:
        return str(POLICY.header_factory("subject", one_line(value, _MAX_HEADER)))
    except Exception:  # the header parser on a value it cannot read: keep the value as it came
        return value


def one_line(value: str, limit: int) -> str:
    """One line of at most `limit` characters, valid Unicode (bytes the parser kept as surrogates re-read)."""
    value = value[: limit * 4 + 64]
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def read_message_id(value: str) -> str | None:
    """The Message-ID header's value as one line; None when it is empty."""
    cleaned = one_line(value, 998)
    return cleaned or None


def read_date(value: str) -> datetime | None:
    """The Date header as an aware UTC datetime; None when missing or not a date (a zone-less date is UTC)."""
    if not value.strip():
        return None
    try:
        parsed = utils.parsedate_to_datetime(one_line(value, 200))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


# --- addresses -----------------------------------------------------------------------------------------------


def first_address(value: str) -> str | None:
    """The first address of an address header (From), lower-cased; None when it names none."""
    for _name, addr in utils.getaddresses([one_line(value, _MAX_HEADER)]):
        addr = addr.strip().lower()
        if "@" in addr and " " not in addr:
            return addr
    return None


def bare_address(value: str) -> str:
    """`rfc822; Bob@X.example` -> `bob@x.example` (an address without its type is taken as it is)."""
    addr = one_line(value, 400).rpartition(";")[2].strip().strip("<>").strip().lower()
    return addr if "@" in addr and " " not in addr else ""


# --- parts and bodies ----------------------------------------------------------------------------------------

_MAX_PARTS = 500
MAX_BODY_BYTES = 65536  # how much of one body is read


def leaves(msg: Message) -> list[Message]:
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


def part_text(part: Message) -> str:
    """A text part's decoded body (its first 64 KB), in its charset or else UTF-8, never raising."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a transfer encoding the email package cannot undo
        return ""
    if not isinstance(payload, bytes):
        return ""
    payload = payload[:MAX_BODY_BYTES]
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except (LookupError, ValueError, TypeError):
        return payload.decode("utf-8", "replace")


def _is_attachment(part: Message) -> bool:
    try:
        return part.get_content_disposition() == "attachment"
    except Exception:  # an unreadable Content-Disposition: not offered as the message's text
        return True


def text_parts(msg: Message, ctype: str) -> list[Message]:
    """The parts of content type `ctype` that are not attachments, in message order."""
    return [p for p in leaves(msg) if p.get_content_type() == ctype and not _is_attachment(p)]


def body_text(msg: Message) -> str:
    """The first text/plain part (a bounce's notice, a person's words)."""
    parts = text_parts(msg, "text/plain")
    return part_text(parts[0]) if parts else ""


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


def snippet(msg: Message) -> str:
    """The start of what the sender wrote: text/plain (else text/html), without quotes, attribution, signature."""
    plain = text_parts(msg, "text/plain")
    if plain:
        return one_line(_own_words(part_text(plain[0])), _SNIPPET_CHARS)
    html = text_parts(msg, "text/html")
    return one_line(_own_words(_html_text(part_text(html[0]))), _SNIPPET_CHARS) if html else ""


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
