"""Compose: the outgoing message for one recipient from the template, the account and the thread. Pure.

A failure says whose it is: `template` (the campaign's template or sequence is broken: the operator's error,
so the campaign pauses), `account` (this account lacks what the template needs, e.g. no sender_name: it is
not eligible for the campaign and the recipient goes to another account), or `recipient` (this recipient's
address cannot be sent to: it fails alone).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.models import Campaign, EmailAccount, GeneralSettings, Lead, Template
from app.domain.templating import Renderer, TemplateError, build_context
from app.transport.base import InvalidHeader, OutgoingMessage, ValidatedMessage, make_message_id, validated

# Variables that come from the sending account, not from the template's data: missing ones are the account's.
_ACCOUNT_VARIABLE = re.compile(r"'(sender_[a-z_]+|account_signature)' is undefined")


@dataclass(frozen=True)
class ComposeError:
    """Why no message could be built: `kind` is "template", "account" or "recipient"; `reason` says what to fix."""

    kind: str
    reason: str
    template_id: str


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
) -> ValidatedMessage | ComposeError:
    """Render the step's template for one recipient and build the message, header values checked once."""
    context = build_context(
        campaign=campaign, lead=lead, recipient_index=index, step_order=step_order, account=account, general=general
    )
    try:
        rendered = renderer.render(template, context)
    except TemplateError as exc:
        kind = "account" if _ACCOUNT_VARIABLE.search(exc.reason) else "template"
        where = ""
        if kind == "account":
            where = f" (account {account.id} has no such value: set it in email_general_settings)"
        return ComposeError(kind, f"template error: {exc}{where}", template.id)
    recipient = lead.recipients[index]
    try:
        message = OutgoingMessage(
            message_id=make_message_id(lead.id, step_order, index, account.email.rpartition("@")[2]),
            from_email=account.email,
            from_name=(general.sender_name if general and general.sender_name else account.sender_name),
            to_email=recipient.email,
            to_name=display_name(recipient.fields),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
        )
        checked = validated(message)
    except (InvalidHeader, ValueError) as exc:
        text = str(exc)
        kind = "recipient" if text.startswith(("header To", "lead id")) else "template"
        if text.startswith("header From"):
            kind = "account"
        return ComposeError(kind, f"invalid header: {text}", template.id)
    return checked


def display_name(fields: Mapping[str, Any]) -> str | None:
    """The recipient's display name: `name`, else "first_name last_name", else none."""
    name = fields.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    parts = [fields.get("first_name"), fields.get("last_name")]
    joined = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return joined or None
