"""Campaign status writes: pausing a campaign whose recent attempts mostly fail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING

from app.domain.health import ATTEMPT_TYPES, HealthPolicy, pause_reason
from app.logging import get_logger
from app.store import schema
from app.store.client import Database
from app.store.documents import id_filter

# `paused_by` of the pauses the dispatcher makes itself (a template or configuration error, the health check).
AUTOMATIC_PAUSE = {"kind": "dispatcher", "name": "dispatcher"}


async def check_campaign(db: Database, campaign_id: str, policy: HealthPolicy, now: datetime) -> str | None:
    """Pause the campaign if its recent attempts fail too often; return the reason when it was paused."""
    cursor = db[schema.ACTIVITIES].find(
        {"campaign_id": campaign_id, "type": {"$in": list(ATTEMPT_TYPES)}},
        projection={"type": 1},
        sort=[("created_at", DESCENDING)],
        limit=policy.window,
    )
    kinds = [str(doc.get("type")) async for doc in cursor]
    reason = pause_reason(kinds, policy)
    if reason is None:
        return None
    return reason if await pause(db, campaign_id, reason, now) else None


async def pause(db: Database, campaign_id: str, reason: str, now: datetime) -> bool:
    """Pause an active campaign with the reason an operator will see; False when it was not active."""
    paused = {"status": "paused", "paused_reason": reason, "paused_at": now, "paused_by": AUTOMATIC_PAUSE}
    update: dict[str, Any] = {"$set": paused}
    result = await db[schema.CAMPAIGNS].update_one({**id_filter(campaign_id), "status": "active"}, update)
    if result.modified_count:
        get_logger(campaign_id=campaign_id).error("dispatcher.campaign_paused", reason=reason)
    return bool(result.modified_count)
