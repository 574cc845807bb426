"""`update-lead-statuses`: rebuild recipient statuses and processed-recipient records from `activities`.

The log is replayed in time order through `recipient_status`, the function the dispatcher settles recipients
with, so a recipient's status is the one its latest settled outcome gives: step 1 sent and step 2 failed is
`failed`, as the dispatcher left it, not `contacted`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeGuard

from app.domain.models import Lead, recipient_key
from app.domain.recipient_status import SETTLED_OUTCOMES, recipient_status

# Statuses people set (a reply, an unsubscribe) are facts the activity log cannot know; keep them.
MANUAL_STATUSES = ("replied", "unsubscribed")
# The dispatcher never mails a bounced address again (its later outcomes are all `skipped`), so a bounce the log
# does not end in was recorded from elsewhere (a bounce message read later, an operator): keep it too.
BOUNCED = "bounced"
# Activity types that stand for a settled outcome besides the outcomes themselves: an operator resolving an
# uncertain send as delivered settles it as sent; resolving it for a resend withdraws that step's outcome.
_RESOLVED = {"resolved_sent": "sent"}
_WITHDRAWN = "resolved_resend"
_SENDING = ("sent", "uncertain")  # activity types of a message handed to SMTP (they set last_contacted_at)
_EPOCH = datetime.min.replace(tzinfo=UTC)


def derive_update(lead: Lead, activities: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The `$set` that makes the lead agree with its activities (empty when it already does). Pure."""
    settled = _settled(lead, activities)
    latest: dict[str, Mapping[str, Any] | None] = {}
    for activity in settled:
        key = recipient_key(activity["step_order"], activity["recipient_index"])
        latest[key] = None if activity["outcome"] == _WITHDRAWN else activity
    values: dict[str, Any] = {}
    processed = lead.progress.processed_recipients
    for key, last in latest.items():
        if last is not None and key not in processed:
            values[f"progress.processed_recipients.{key}"] = _entry(last)
    for index, recipient in enumerate(lead.recipients):
        mine = [a for a in settled if a["recipient_index"] == index]
        values.update(_recipient_values(index, recipient.status, recipient.last_contacted_at, mine))
    return values


def _settled(lead: Lead, activities: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The lead's activities that settle (or withdraw) a recipient's outcome, oldest first, with `outcome` set."""
    found: list[dict[str, Any]] = []
    for activity in activities:
        kind = str(activity.get("type"))
        outcome = _RESOLVED.get(kind, kind)
        index, step = activity.get("recipient_index"), activity.get("step_order")
        if outcome not in SETTLED_OUTCOMES and outcome != _WITHDRAWN:
            continue
        if not _whole(index) or not _whole(step) or index >= len(lead.recipients):
            continue
        found.append({**activity, "outcome": outcome})
    # Stable: activities written in one instant keep the order they were read in (insertion order).
    return sorted(found, key=_created_at)


def _created_at(activity: Mapping[str, Any]) -> datetime:
    created = activity.get("created_at")
    return _aware(created) if isinstance(created, datetime) else _EPOCH


def _aware(moment: datetime) -> datetime:
    # Clients without tz_aware return naive UTC datetimes; compare everything as aware.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _smtp_code(activity: Mapping[str, Any]) -> int | None:
    code = activity.get("smtp_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _entry(activity: Mapping[str, Any]) -> dict[str, Any]:
    # The dispatcher records a template error as a failed recipient.
    status = "failed" if activity["outcome"] == "template_error" else activity["outcome"]
    entry = {"processed_at": activity.get("created_at"), "email": activity.get("email"), "status": status}
    for name in ("account_id", "message_id", "error", "smtp_code"):
        if activity.get(name) is not None:
            entry[name] = activity[name]
    return entry


def _recipient_values(
    index: int, current: str, last_contacted: datetime | None, settled: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    if current in MANUAL_STATUSES or not settled:
        return {}
    status: str | None = None
    for activity in settled:  # oldest first: replay what the dispatcher wrote
        if activity["outcome"] in SETTLED_OUTCOMES:
            status = recipient_status(activity["outcome"], _smtp_code(activity)) or status
    values: dict[str, Any] = {}
    if status is not None and status != current and (current != BOUNCED or status == BOUNCED):
        values[f"lead_data.{index}.status"] = status
    sent = [a for a in settled if a.get("type") in _SENDING and isinstance(a.get("created_at"), datetime)]
    if sent and (last_contacted is None or _created_at(sent[-1]) > _aware(last_contacted)):
        values[f"lead_data.{index}.last_contacted_at"] = sent[-1]["created_at"]
        values[f"lead_data.{index}.last_step"] = sent[-1]["step_order"]
    return values
