"""A recipient's `lead_data.<i>.status` after one settled outcome: one table for the dispatcher and the rebuild.

The dispatcher writes the status when it settles a recipient; `update-lead-statuses` replays the settled
outcomes recorded in `activities` in time order. Both call `recipient_status`, so replaying the log reproduces
what the dispatcher wrote: the status is the one given by the recipient's latest settled outcome that sets one.

| outcome                          | status       |
| -------------------------------- | ------------ |
| sent                             | contacted    |
| uncertain                        | uncertain    |
| failed with a 5xx reply          | bounced      |
| failed otherwise, template_error | failed       |
| skipped                          | (unchanged)  |

A 5xx that refuses the sending account (530, 534, 535: authentication) is not the address's fault: a recipient
whose attempts ended on one failed, it did not bounce.
"""

from __future__ import annotations

SETTLED_OUTCOMES = frozenset({"sent", "uncertain", "failed", "template_error", "skipped"})
# Replies that refuse the account, not the recipient (RFC 4954); the SMTP transport classifies the same codes as
# authentication failures.
ACCOUNT_REPLY_CODES = frozenset({530, 534, 535})
_STATUS = {"sent": "contacted", "uncertain": "uncertain", "failed": "failed", "template_error": "failed"}


def is_bounce(smtp_code: int | None) -> bool:
    """True when a failure with this reply code means the address was refused for good (a hard bounce)."""
    return smtp_code is not None and 500 <= smtp_code < 600 and smtp_code not in ACCOUNT_REPLY_CODES


def recipient_status(outcome: str, smtp_code: int | None = None) -> str | None:
    """The recipient's new status after a settled `outcome`, or None to leave the status as it is.

    `outcome` is the activity / ledger outcome (`sent`, `uncertain`, `failed`, `template_error`, `skipped`);
    `smtp_code` is the reply code of the last attempt, when there was a reply.
    """
    if outcome not in SETTLED_OUTCOMES:
        expected = ", ".join(sorted(SETTLED_OUTCOMES))
        raise ValueError(f"unknown settled outcome {outcome!r}: expected one of {expected}")
    if outcome == "skipped":
        return None
    if outcome == "failed" and is_bounce(smtp_code):
        return "bounced"
    return _STATUS[outcome]
