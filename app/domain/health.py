"""Campaign health: pause a campaign whose recent attempts mostly fail, instead of burning through its list.

A bad list (many unknown addresses) or a broken template shows up as a run of failures; sending on would hurt
the accounts' reputation. The check looks at the campaign's most recent attempts in `activities` and pauses the
campaign, with the reason, when the failure rate passes a threshold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FAILURE_TYPES = ("failed", "retry", "template_error")
ATTEMPT_TYPES = (*FAILURE_TYPES, "sent", "uncertain")


@dataclass(frozen=True)
class HealthPolicy:
    """When to pause: at least `min_attempts` of the last `window` attempts, failing at `max_error_rate` or more."""

    max_error_rate: float = 0.5
    min_attempts: int = 20
    window: int = 50


def pause_reason(kinds: Iterable[str], policy: HealthPolicy) -> str | None:
    """Why the campaign should be paused given its recent attempt kinds (newest first), or None. Pure."""
    recent = [k for k in kinds if k in ATTEMPT_TYPES][: policy.window]
    if len(recent) < policy.min_attempts:
        return None
    failures = sum(1 for k in recent if k in FAILURE_TYPES)
    rate = failures / len(recent)
    if rate < policy.max_error_rate:
        return None
    return (
        f"{failures} of the last {len(recent)} attempts failed ({rate:.0%} >= {policy.max_error_rate:.0%}): "
        "check the lead list, templates and accounts (show-campaign-progress, list-accounts), then run "
        "`outbound campaign resume <campaign_id>`"
    )
