"""Compose: the outgoing message for one recipient from the template, the account and the thread. Pure.

Every message carries List-Unsubscribe (a mailto to the sending account naming the send, and the signed
one-click link first when OUTBOUND_PUBLIC_URL is set, with List-Unsubscribe-Post); a follow-up that replies in
its recipient's thread carries In-Reply-To and References, and "Re: <the previous subject>" when its template
has no subject of its own (`planning.threading_for`). The send key picks the template's variant and its spins
(`domain/variants.py`), so a retry is worded as the first attempt was.

A failure says whose it is: `template` (the campaign's template or sequence is broken: the operator's error,
so the campaign pauses), `account` (this account lacks what the template needs, e.g. no sender_name: it is
not eligible for the campaign and the recipient goes to another account), or `recipient` (this recipient's
address cannot be sent to: it fails alone).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.inbound import SendRef
from app.domain.models import Campaign, EmailAccount, GeneralSettings, Lead, Template
from app.domain.planning import Thread, Threading, threading_for
from app.domain.templating import Renderer, TemplateError, build_context
from app.domain.unsubscribe import list_unsubscribe_headers, mailto_uri, unsubscribe_url
from app.transport.base import InvalidHeader, OutgoingMessage, ValidatedMessage, make_message_id, validated

# Variables that come from the sending account, not from the template's data: missing ones are the account's.
_ACCOUNT_VARIABLE = re.compile(r"'(sender_[a-z_]+|account_signature)' is undefined")


@dataclass(frozen=True)
class ComposeError:
    """Why no message could be built: `kind` is "template", "account" or "recipient"; `reason` says what to fix."""

    kind: str
    reason: str
    template_id: str


@dataclass(frozen=True)
class ComposedMessage(OutgoingMessage):
    """The message as composed for its send, with the template variant it was worded from (None: no variants),
    which the send's ledger entry and activities record."""

    variant: str | None = None


def variant_of(message: OutgoingMessage) -> str | None:
    """The variant `message` was composed from (None: its template has none, or it was not composed here)."""
    return message.variant if isinstance(message, ComposedMessage) else None


@dataclass(frozen=True)
class UnsubscribeLinks:
    """Where unsubscribe requests go besides the sending account: OUTBOUND_PUBLIC_URL, signed with
    OUTBOUND_SECRET_KEY (either unset: the mailto alone)."""

    public_url: str | None = None
    secret_key: str | None = field(default=None, repr=False)


MAILTO_ONLY = UnsubscribeLinks()


def thread_of(
    step_order: int, thread: bool | None, template: Template, previous: Thread | None
) -> Threading | ComposeError:
    """How the step's message joins the recipient's thread (`thread`: the step's field; `previous`: what earlier
    steps left), or why it cannot be sent: the template's error."""
    found = threading_for(step_order, thread, bool(template.subject), previous)
    if isinstance(found, str):
        return ComposeError("template", f"template error: template {template.id} (subject): {found}", template.id)
    return found


def unsubscribe_link(ref: SendRef, account_email: str, links: UnsubscribeLinks) -> str:
    """`{{ unsubscribe_url }}`: the one-click link, or the mailto URI when no public URL is configured."""
    return unsubscribe_url(ref, links.public_url, links.secret_key) or mailto_uri(ref, account_email)


def extra_headers(ref: SendRef, account_email: str, threading: Threading, links: UnsubscribeLinks) -> dict[str, str]:
    """The headers besides From, To, Subject, Message-ID and Date: the thread's, then List-Unsubscribe."""
    return {
        **threading.headers(),
        **list_unsubscribe_headers(ref, account_email, links.public_url, links.secret_key),
    }


def compose(
    renderer: Renderer,
    template: Template,
    *,
    campaign: Campaign,
    lead: Lead,
    step_order: int,
    index: int,
    account: EmailAccount,
    general: GeneralSettings | None,
    thread: bool | None = None,
    previous: Thread | None = None,
    links: UnsubscribeLinks = MAILTO_ONLY,
) -> ValidatedMessage | ComposeError:
    """Render the step's template for one recipient and build the message, header values checked once.

    `thread` is the step's `thread` field, `previous` the recipient's thread as earlier steps left it
    (`LeadContext.thread_before`).
    """
    threading = thread_of(step_order, thread, template, previous)
    if isinstance(threading, ComposeError):
        return threading
    ref = SendRef(str(lead.id), step_order, index)
    context = build_context(
        campaign=campaign,
        lead=lead,
        recipient_index=index,
        step_order=step_order,
        account=account,
        general=general,
        unsubscribe_url=unsubscribe_link(ref, account.email, links),
    )
    try:
        rendered = renderer.render(template, context, reply=threading.subject, send_key=ref.send_key)
    except TemplateError as exc:
        return _template_error(exc, account, template)
    recipient = lead.recipients[index]
    try:
        message = ComposedMessage(
            message_id=make_message_id(lead.id, step_order, index, account.email.rpartition("@")[2]),
            from_email=account.email,
            from_name=(general.sender_name if general and general.sender_name else account.sender_name),
            to_email=recipient.email,
            to_name=display_name(recipient.fields),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            headers=extra_headers(ref, account.email, threading, links),
            variant=rendered.variant,
        )
        checked = validated(message)
    except (InvalidHeader, ValueError) as exc:
        return _header_error(exc, template)
    return checked


def _template_error(exc: TemplateError, account: EmailAccount, template: Template) -> ComposeError:
    """A render error: the account's when it names a sender variable the account lacks, else the template's."""
    if _ACCOUNT_VARIABLE.search(exc.reason):
        where = f" (account {account.id} has no such value: set it in email_general_settings)"
        return ComposeError("account", f"template error: {exc}{where}", template.id)
    return ComposeError("template", f"template error: {exc}", template.id)


def _header_error(exc: Exception, template: Template) -> ComposeError:
    """A header refused: the recipient's (To), the account's (From), or the template's (the rest)."""
    text = str(exc)
    kind = "recipient" if text.startswith(("header To", "lead id")) else "template"
    if text.startswith("header From"):
        kind = "account"
    return ComposeError(kind, f"invalid header: {text}", template.id)


def display_name(fields: Mapping[str, Any]) -> str | None:
    """The recipient's display name: `name`, else "first_name last_name", else none."""
    name = fields.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    parts = [fields.get("first_name"), fields.get("last_name")]
    joined = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return joined or None
