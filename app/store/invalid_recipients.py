"""`validate-leads`: mark recipients whose domain cannot receive mail as `invalid`, on leads no dispatcher holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne

from app.store.documents import Collection


@dataclass(frozen=True)
class Mark:
    """Recipient `index` of lead `lead_id`, whose address is `email`, is invalid because of `reason`."""

    lead_id: Any
    index: int
    email: str
    reason: str


async def mark_invalid(leads: Collection, marks: Sequence[Mark], now: datetime) -> int:
    """Set each recipient's status to `invalid` with `invalid_reason`, in one write; returns how many changed.

    A lead a dispatcher holds (its lease token set) or whose recipient changed meanwhile (another address at
    that index) is left alone: the next run of the check marks it.
    """
    if not marks:
        return 0
    writes = [
        UpdateOne(
            {"_id": m.lead_id, "progress.lease_token": None, f"lead_data.{m.index}.email": m.email},
            {
                "$set": {
                    f"lead_data.{m.index}.status": "invalid",
                    f"lead_data.{m.index}.invalid_reason": m.reason,
                    f"lead_data.{m.index}.invalid_checked_at": now,
                }
            },
        )
        for m in marks
    ]
    result = await leads.bulk_write(writes, ordered=False)
    return result.modified_count
