"""An execution's recipients by outcome, read from its leads: the counts, and the failed or skipped ones.

Each recipient of an execution is a lead of the campaign that shares the execution's `_id`, with one step and
one recipient, so its outcome is that lead's one processed recipient and the counts are one aggregation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from app.store.documents import Collection

# The recipient of a job lead is its only one, and a job has one step.
STATUS_PATH = "progress.processed_recipients.step_1_recipient_0"


@dataclass(frozen=True)
class Counts:
    """An execution's recipients by outcome. `pending` are neither sent, failed, skipped nor uncertain yet;
    `dead` are the failed ones that may be retried (`job retry-dead`): failed, not bounced."""

    total: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    uncertain: int = 0
    pending: int = 0
    dead: int = 0

    @property
    def percentage(self) -> float:
        """Share of recipients done, 0-100 (100 for an execution without recipients)."""
        if self.total == 0:
            return 100.0
        return round(100.0 * (self.total - self.pending) / self.total, 1)

    def as_doc(self) -> dict[str, Any]:
        """The stored and printed form, with the percentage."""
        return {**asdict(self), "percentage": self.percentage}

    @classmethod
    def stored(cls, doc: Mapping[str, Any] | None) -> Counts:
        """The counts an execution stored when it ended (zeros for a field missing or malformed)."""
        doc = doc if isinstance(doc, Mapping) else {}
        values = {
            name: doc.get(name) for name in ("total", "sent", "failed", "skipped", "uncertain", "pending", "dead")
        }
        return cls(
            **{k: v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0 for k, v in values.items()}
        )


def execution_ref(execution_id: object) -> dict[str, Any]:
    """A filter for the leads of one execution: their `campaign_id` is the execution's id, as a string."""
    return {"campaign_id": str(execution_id)}


async def counts(leads: Collection, execution_id: object) -> Counts:
    """The execution's recipients by outcome, from its leads in one aggregation."""
    pipeline: list[dict[str, Any]] = [
        {"$match": execution_ref(execution_id)},
        {
            "$group": {
                "_id": {"outcome": f"${STATUS_PATH}.status", "recipient": {"$arrayElemAt": ["$lead_data.status", 0]}},
                "n": {"$sum": 1},
            }
        },
    ]
    found: dict[str, int] = {}
    dead = 0
    async for row in await leads.aggregate(pipeline):
        outcome = row["_id"].get("outcome") or "pending"
        found[outcome] = found.get(outcome, 0) + int(row["n"])
        if outcome == "failed" and row["_id"].get("recipient") != "bounced":
            dead += int(row["n"])
    settled = {k: found.get(k, 0) for k in ("sent", "failed", "skipped", "uncertain")}
    total = sum(found.values())
    return Counts(total=total, pending=total - sum(settled.values()), dead=dead, **settled)


async def outcomes(
    leads: Collection, execution_id: object, statuses: tuple[str, ...], limit: int
) -> list[dict[str, Any]]:
    """Recipients of the execution whose outcome is one of `statuses` (failed, skipped): address, status,
    error and whether it may be retried, at most `limit`."""
    flt = {**execution_ref(execution_id), f"{STATUS_PATH}.status": {"$in": list(statuses)}}
    projection = {"lead_data.email": 1, "lead_data.status": 1, STATUS_PATH: 1}
    found = []
    async for doc in leads.find(flt, projection, sort=[("_id", 1)], limit=limit):
        entry = doc["progress"]["processed_recipients"]["step_1_recipient_0"]
        recipient = (doc.get("lead_data") or [{}])[0]
        found.append(
            {
                "lead_id": doc["_id"],
                "email": recipient.get("email"),
                "status": entry.get("status"),
                "error": entry.get("error"),
                "dead_letter": entry.get("status") == "failed" and recipient.get("status") != "bounced",
                "at": entry.get("processed_at"),
            }
        )
    return found
