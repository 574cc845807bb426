"""What an inbound message is to Outbound: the sends it names and how it was classified. Pure.

Every message Outbound sends carries the deterministic Message-ID `<outbound.{lead}.{step}.{index}@{domain}>`
(see `transport.outgoing_message.make_message_id`), so a reply's `In-Reply-To`/`References`, a bounce's
returned headers and an unsubscribe request's subject name the exact (lead, step, recipient) they answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

BOUNCE = "bounce"
AUTO_REPLY = "auto_reply"
UNSUBSCRIBE = "unsubscribe"
REPLY = "reply"
UNRELATED = "unrelated"
KINDS = (BOUNCE, AUTO_REPLY, UNSUBSCRIBE, REPLY, UNRELATED)

# `outbound.<lead>.<step>.<index>`: the lead id may itself hold dots, so the two numbers are taken from the right.
_TOKEN = r"outbound\.([A-Za-z0-9._+-]+?)\.(\d{1,6})\.(\d{1,6})"
_MESSAGE_ID = re.compile(rf"<{_TOKEN}@[^<>\s]+>")
_BARE_TOKEN = re.compile(rf"(?<![A-Za-z0-9._+-]){_TOKEN}(?![A-Za-z0-9_+-]|\.\d)")


@dataclass(frozen=True, order=True)
class SendRef:
    """One (lead, step, recipient) send of ours."""

    lead_id: str
    step_order: int
    recipient_index: int

    @property
    def send_key(self) -> str:
        """The ledger key (`sends._id`) of this send."""
        return f"{self.lead_id}:{self.step_order}:{self.recipient_index}"

    @property
    def token(self) -> str:
        """The send as text, as it appears in our Message-IDs and unsubscribe subjects: `outbound.<lead>.<step>.<i>`."""
        return f"outbound.{self.lead_id}.{self.step_order}.{self.recipient_index}"


def _ref(match: re.Match[str]) -> SendRef | None:
    step, index = int(match.group(2)), int(match.group(3))
    return SendRef(match.group(1), step, index) if step >= 1 else None


def refs_in_message_ids(text: str | None) -> list[SendRef]:
    """Our sends named by the Message-IDs in `text` (an In-Reply-To or References value), most recent first.

    References lists the thread oldest first, so the last id is the message being answered.
    """
    if not text:
        return []
    found = [ref for ref in (_ref(m) for m in _MESSAGE_ID.finditer(text)) if ref is not None]
    return _unique(reversed(found))


def refs_in_text(text: str | None) -> list[SendRef]:
    """Our sends named anywhere in `text` (a subject, a returned message) by Message-ID or bare token, in order."""
    if not text:
        return []
    found = [ref for ref in (_ref(m) for m in _MESSAGE_ID.finditer(text)) if ref is not None]
    found += [ref for ref in (_ref(m) for m in _BARE_TOKEN.finditer(text)) if ref is not None]
    return _unique(found)


def _unique(refs: Iterable[SendRef]) -> list[SendRef]:
    seen: list[SendRef] = []
    for ref in refs:
        if ref not in seen:
            seen.append(ref)
    return seen


@dataclass(frozen=True)
class BouncedRecipient:
    """One recipient of a delivery status notification: `hard` for a permanent failure (5.x.x)."""

    email: str
    hard: bool
    status: str | None = None  # the RFC 3463 status code, e.g. "5.1.1"
    action: str | None = None  # the DSN Action: failed, delayed, ...
    diagnostic: str | None = None  # the remote server's words (Diagnostic-Code), shortened


@dataclass(frozen=True)
class Classified:
    """What one inbound message is, from the message alone (no database): see `inbound_classify.classify`.

    `refs` are the sends of ours the message names, best evidence first; matching by address, when there are
    none, is the sync's job. `reason` says in words why the message got its class.
    """

    kind: str
    reason: str
    message_id: str | None = None
    date: datetime | None = None
    subject: str = ""
    snippet: str = ""
    from_email: str | None = None
    refs: tuple[SendRef, ...] = ()
    bounces: tuple[BouncedRecipient, ...] = ()
