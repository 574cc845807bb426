"""Which recipient statuses skip a recipient and which stop the whole lead: one table for every caller.

The send pipeline, the dry-run preview, the CLI's bulk status update and the inbox sync all decide from here,
so "never email a person after they replied, bounced or unsubscribed" means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable

# `campaigns.settings.stop_on_reply`: a reply stops the whole lead (default), only that recipient, or nothing.
STOP_ON_REPLY = ("lead", "recipient", "none")
# A recipient with one of these statuses is never emailed again (`invalid`: `validate-leads` found that their
# domain cannot receive mail).
SKIP_STATUSES = frozenset({"replied", "unsubscribed", "bounced", "invalid"})
# A recipient with one of these statuses stops the whole lead: a reply from one person at a company ends the
# sequence for their colleagues too.
STOP_LEAD_STATUSES = frozenset({"replied"})


def skip_reason(status: str, email: str | None = None) -> str | None:
    """Why a recipient with this status (and address) must not be mailed, or None when they may be."""
    if status not in SKIP_STATUSES:
        return None
    if status == "invalid" and email:
        return f"recipient is invalid ({invalid_reason(email.rpartition('@')[2])})"
    return f"recipient is {status}"


def invalid_reason(domain: str) -> str:
    """Why a recipient at `domain` is `invalid`: recorded on them by `validate-leads`, and said by every skip."""
    return f"no MX or A record for {domain}"


def lead_stop_reason(statuses: Iterable[str], *, stop_on_reply: str = "lead") -> str | None:
    """Why a lead whose recipients have these statuses must stop, or None while someone may still be mailed.

    A stopping status (a reply) stops it, unless the campaign's `settings.stop_on_reply` is `recipient` or
    `none` (then a reply stops only that recipient); so does having no recipient left that may be mailed.
    """
    given = list(statuses)
    for status in given:
        if status in STOP_LEAD_STATUSES and stop_on_reply == "lead":
            return status
    if given and all(status in SKIP_STATUSES for status in given):
        kinds = sorted(set(given))
        return kinds[0] if len(kinds) == 1 else "no recipient left to mail (" + ", ".join(kinds) + ")"
    return None


def stops_every_lead(status: str) -> bool:
    """True when setting every recipient of a lead to `status` stops the lead (bulk status updates)."""
    return lead_stop_reason([status]) is not None
