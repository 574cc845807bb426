"""The variables a template sees for one recipient: the lead's data, the sender's identity and the system's names.

Separate from templating.py (compiling and rendering in the sandbox) because it decides what data reaches a
template, not how a template runs: eligibility checks a campaign's variables against these same rules without
rendering anything.
"""

from __future__ import annotations

from typing import Any

from app.domain.models import Campaign, EmailAccount, GeneralSettings, Lead

# Recipient keys that are tracking state, not data a template should see.
_TRACKING_FIELDS = frozenset({"status", "last_contacted_at", "last_step"})
# Context names the system owns; lead data cannot override them.
RESERVED_VARIABLES = frozenset(
    {
        "sender_name",
        "sender_first_name",
        "sender_last_name",
        "sender_email",
        "account_signature",
        "campaign_id",
        "campaign_name",
        "step_order",
        "unsubscribe_url",
    }
)
_RESERVED_PREFIXES = ("sender_", "campaign_")
# A template that uses this variable places the account's signature itself; otherwise the Renderer appends it.
SIGNATURE_VARIABLE = "account_signature"


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _recipient_context(lead: Lead, recipient_index: int) -> dict[str, Any]:
    if not 0 <= recipient_index < len(lead.recipients):
        raise ValueError(
            f"lead {lead.id} has {len(lead.recipients)} recipient(s); index {recipient_index} does not exist"
        )
    recipient = lead.recipients[recipient_index]
    context: dict[str, Any] = {}
    for key, value in recipient.fields.items():
        if not isinstance(key, str) or key in _TRACKING_FIELDS or key.startswith(_RESERVED_PREFIXES):
            continue
        if _present(value):
            context[key] = value
    context["email"] = recipient.email
    if "name" not in context:
        full = " ".join(str(context[k]) for k in ("first_name", "last_name") if k in context)
        if full:
            context["name"] = full
    return context


def _sender_context(account: EmailAccount, general: GeneralSettings | None) -> dict[str, Any]:
    first = general.sender_first_name if general else None
    last = general.sender_last_name if general else None
    joined = " ".join(p for p in (first, last) if p)
    name = (general.sender_name if general else None) or account.sender_name or joined or None
    if name and not first:
        first, _, rest = name.partition(" ")
        last = last or rest or None
    context: dict[str, Any] = {
        "sender_email": account.email,
        # Always present (empty when unset): the signature belongs to the operator's account, not the lead.
        SIGNATURE_VARIABLE: ((general.signature if general else None) or "").strip(),
    }
    for key, value in (("sender_name", name), ("sender_first_name", first), ("sender_last_name", last)):
        if _present(value):
            context[key] = value
    return context


def sender_variables(account: EmailAccount, general: GeneralSettings | None) -> frozenset[str]:
    """The account-provided variables (sender_*, account_signature) this account gives every template it renders."""
    return frozenset(_sender_context(account, general))


def build_context(
    *,
    campaign: Campaign,
    lead: Lead,
    recipient_index: int,
    step_order: int,
    account: EmailAccount,
    general: GeneralSettings | None,
    unsubscribe_url: str | None = None,
) -> dict[str, Any]:
    """The variables a template sees for one recipient (seed 001's names plus every custom recipient field).

    Missing optional values are absent, so a template using them without `default` fails; `name` falls back
    to "first_name last_name". System names (sender_*, account_signature, campaign_*, step_order,
    unsubscribe_url) always win over lead data. `unsubscribe_url` is this send's one-click link, or its mailto
    URI when no public URL is configured.
    """
    context = _recipient_context(lead, recipient_index)
    context.update(_sender_context(account, general))
    context.update(campaign_id=campaign.id, campaign_name=campaign.name, step_order=step_order)
    if unsubscribe_url is not None:
        context["unsubscribe_url"] = unsubscribe_url
    return context
