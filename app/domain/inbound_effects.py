"""What an answer to one of our sends does to the lead: the recipient's new status, a stop, a suppression. Pure.

One table for the inbox sync and the one-click unsubscribe link, so "never email a person after they replied,
bounced or unsubscribed" is decided in one place (with the stop policy):

| answer          | activity       | recipient status | suppressed          | lead                               |
|-----------------|----------------|------------------|---------------------|------------------------------------|
| reply           | `replied`      | `replied`        | no                  | stops (`settings.stop_on_reply`)   |
| auto-reply      | `auto_reply`   | unchanged        | no                  | goes on                            |
| hard bounce     | `bounced`      | `bounced`        | yes, every campaign | goes on unless nobody is left      |
| soft bounce     | `soft_bounce`  | unchanged        | no                  | goes on; the 3rd one is a hard one |
| unsubscribe     | `unsubscribed` | `unsubscribed`   | yes, every campaign | goes on unless nobody is left      |

A recipient who already has a stopping status keeps it (a reply after an unsubscribe is still an unsubscribe);
the activity is recorded and the suppression added all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.domain.stop_policy import SKIP_STATUSES, lead_stop_reason
from app.domain.stop_policy import STOP_ON_REPLY as STOP_ON_REPLY

REPLY = "reply"
AUTO_REPLY = "auto_reply"
HARD_BOUNCE = "hard_bounce"
SOFT_BOUNCE = "soft_bounce"
UNSUBSCRIBE = "unsubscribe"
ANSWERS = (REPLY, AUTO_REPLY, HARD_BOUNCE, SOFT_BOUNCE, UNSUBSCRIBE)


SOFT_BOUNCES_MAKE_HARD = 3

_ACTIVITY = {
    REPLY: "replied",
    AUTO_REPLY: "auto_reply",
    HARD_BOUNCE: "bounced",
    SOFT_BOUNCE: "soft_bounce",
    UNSUBSCRIBE: "unsubscribed",
}


@dataclass(frozen=True)
class LeadChange:
    """What to write for one answer: `status` for the recipient (None: leave it), `stop_reason` to stop the lead
    (None: it goes on), `suppress` the reason to suppress the address with (None: not suppressed)."""

    activity: str
    status: str | None = None
    stop_reason: str | None = None
    suppress: str | None = None
    note: str | None = None  # e.g. "3rd soft bounce: counted as a hard bounce"


def activity_type(answer: str) -> str:
    """The `activities.type` an answer is recorded as."""
    return _ACTIVITY[answer]


def decide(
    answer: str,
    statuses: Sequence[str],
    index: int,
    *,
    stop_on_reply: str = "lead",
    earlier_soft_bounces: int = 0,
) -> LeadChange:
    """The change one answer from recipient `index` makes to a lead whose recipients have `statuses`."""
    if answer not in _ACTIVITY:
        raise ValueError(f"unknown answer {answer!r} (expected one of {', '.join(ANSWERS)})")
    if stop_on_reply not in STOP_ON_REPLY:
        raise ValueError(f"settings.stop_on_reply must be one of {', '.join(STOP_ON_REPLY)}, got {stop_on_reply!r}")
    activity, note = _ACTIVITY[answer], None
    status: str | None
    suppress: str | None = None
    if answer == REPLY:
        status = None if stop_on_reply == "none" else "replied"
    elif answer == HARD_BOUNCE:
        status, suppress = "bounced", "bounced"
    elif answer == UNSUBSCRIBE:
        status, suppress = "unsubscribed", "unsubscribed"
    elif answer == SOFT_BOUNCE and earlier_soft_bounces + 1 >= SOFT_BOUNCES_MAKE_HARD:
        status, suppress = "bounced", "bounced"
        note = f"soft bounce number {earlier_soft_bounces + 1}: counted as a hard bounce"
    else:
        status = None
    current = statuses[index] if 0 <= index < len(statuses) else None
    if current in SKIP_STATUSES:
        status = None  # already stopped for good: keep the first reason
    after = [status if i == index and status else s for i, s in enumerate(statuses)]
    stop = lead_stop_reason(after, stop_on_reply=stop_on_reply) if status else None
    return LeadChange(activity, status, stop, suppress, note)
