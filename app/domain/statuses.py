"""`update-lead-statuses`: rebuild recipient statuses and processed-recipient records from `activities`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from app.domain.models import Lead, recipient_key

# Statuses people set (a reply, an unsubscribe) are facts the activity log cannot know; keep them.
MANUAL_STATUSES = ("replied", "unsubscribed")
_OUTCOME_TYPES = {"sent": "sent", "uncertain": "uncertain", "failed": "failed", "template_error": "failed"}
_RECIPIENT_RANK = {"contacted": 3, "uncertain": 2, "bounced": 1, "failed": 1}


def derive_update(lead: Lead, activities: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The `$set` that makes the lead agree with its activities (empty when it already does). Pure."""
    outcomes: dict[str, Mapping[str, Any]] = {}
    for activity in sorted(activities, key=lambda a: a.get("created_at") or datetime.min):
        kind = _OUTCOME_TYPES.get(str(activity.get("type")))
        index, step = activity.get("recipient_index"), activity.get("step_order")
        if kind is None or not isinstance(index, int) or not isinstance(step, int) or index >= len(lead.recipients):
            continue
        outcomes[recipient_key(step, index)] = {**activity, "outcome": kind}
    values: dict[str, Any] = {}
    processed = lead.progress.processed_recipients
    for key, activity in outcomes.items():
        if key not in processed:
            values[f"progress.processed_recipients.{key}"] = _entry(activity)
    for index, recipient in enumerate(lead.recipients):
        mine = [a for a in outcomes.values() if a.get("recipient_index") == index]
        values.update(_recipient_values(index, recipient.status, recipient.last_contacted_at, mine))
    return values


def _entry(activity: Mapping[str, Any]) -> dict[str, Any]:
    entry = {
        "processed_at": activity.get("created_at"),
        "email": activity.get("email"),
        "status": activity["outcome"],
    }
    for name in ("account_id", "message_id", "error", "smtp_code"):
        if activity.get(name) is not None:
            entry[name] = activity[name]
    return entry


def _recipient_values(
    index: int, current: str, last_contacted: datetime | None, outcomes: list[Mapping[str, Any]]
) -> dict[str, Any]:
    if current in MANUAL_STATUSES or not outcomes:
        return {}
    sent = [a for a in outcomes if a["outcome"] in ("sent", "uncertain")]
    status = _status_from(outcomes)
    values: dict[str, Any] = {}
    if status != current and _RECIPIENT_RANK.get(status, 0) >= _RECIPIENT_RANK.get(current, 0):
        values[f"lead_data.{index}.status"] = status
    if sent:
        latest = max(sent, key=lambda a: a["created_at"])
        if last_contacted is None or latest["created_at"] > last_contacted:
            values[f"lead_data.{index}.last_contacted_at"] = latest["created_at"]
            values[f"lead_data.{index}.last_step"] = latest["step_order"]
    return values


def _status_from(outcomes: list[Mapping[str, Any]]) -> str:
    kinds = {a["outcome"] for a in outcomes}
    if "sent" in kinds:
        return "contacted"
    if "uncertain" in kinds:
        return "uncertain"
    bounced = any(a["outcome"] == "failed" and 500 <= int(a.get("smtp_code") or 0) < 600 for a in outcomes)
    return "bounced" if bounced else "failed"
