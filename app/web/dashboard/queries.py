"""The few reads only the dashboard makes: sends per hour from `activities`, and paused campaigns.

Everything else a page shows comes from the shared views in `app.ops` (what the CLI's inspection commands
print), so a number on the dashboard is the number `outbound show-campaign-progress` prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.ops.campaign_views import any_of, kind_filter
from app.ops.campaigns import paused_by_label
from app.store import schema
from app.store.client import Database
from app.store.documents import id_filter
from app.web.dashboard.chart import HOURS, HourCount, hour_start, last_hours

PAUSE_FIELDS = {"name": 1, "paused_reason": 1, "paused_at": 1, "paused_by": 1}


async def sends_per_hour(
    db: Database, now: datetime, campaign_ids: Sequence[str] | None = None, hours: int = HOURS
) -> list[HourCount]:
    """`sent` activities per UTC hour over the last `hours` hours (the current one included), oldest first.

    Grouped on the server; the range is bounded on both sides, and with `campaign_ids` the query follows the
    activities' (campaign_id, created_at) index.
    """
    since = hour_start(now) - timedelta(hours=hours - 1)
    match: dict[str, Any] = {"type": "sent", "created_at": {"$gte": since, "$lte": now}}
    if campaign_ids is not None:
        match["campaign_id"] = {"$in": any_of(list(campaign_ids))}
    group = {"_id": {"$dateTrunc": {"date": "$created_at", "unit": "hour"}}, "n": {"$sum": 1}}
    counts: dict[datetime, int] = {}
    async for row in await db[schema.ACTIVITIES].aggregate([{"$match": match}, {"$group": group}]):
        start = row["_id"]
        if isinstance(start, datetime):
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
            counts[start] = counts.get(start, 0) + int(row["n"])
    return last_hours(counts, now, hours)


async def campaign_ids(db: Database, limit: int) -> list[str]:
    """The ids of up to `limit` campaigns, oldest first (the order of `list-campaigns`).

    Only the ids: each campaign's numbers come from `campaign_progress`, so counting its leads here as well
    (as `list-campaigns` does) would read them twice.
    """
    flt = kind_filter("sequence")  # a job's executions are on /dashboard/jobs
    found = db[schema.CAMPAIGNS].find(flt, projection={"_id": 1}, sort=[("created_at", 1)], limit=limit)
    return [str(doc["_id"]) async for doc in found]


@dataclass(frozen=True)
class PausedCampaign:
    """A paused campaign and why: the operator's reason or the health check's."""

    id: str
    name: str
    reason: str | None
    paused_at: datetime | None
    by: str | None = None  # `paused_by` as people read it


async def paused_campaigns(db: Database, limit: int = 100) -> list[PausedCampaign]:
    """Paused campaigns (not jobs' executions: /dashboard/jobs shows those), most recently paused first."""
    found = db[schema.CAMPAIGNS].find(
        {"status": "paused", **kind_filter("sequence")},
        projection=PAUSE_FIELDS,
        sort=[("paused_at", -1)],
        limit=limit,
    )
    return [_paused(doc) async for doc in found]


def _paused(doc: Mapping[str, Any]) -> PausedCampaign:
    reason, at = doc.get("paused_reason"), doc.get("paused_at")
    return PausedCampaign(
        id=str(doc["_id"]),
        name=str(doc.get("name") or doc["_id"]),
        reason=reason if isinstance(reason, str) else None,
        paused_at=at if isinstance(at, datetime) else None,
        by=paused_by_label(doc.get("paused_by")),
    )


async def pause_info(db: Database, campaign_id: str) -> PausedCampaign | None:
    """Why and since when the campaign is paused; None when it is not paused."""
    doc = await db[schema.CAMPAIGNS].find_one({**id_filter(campaign_id), "status": "paused"}, projection=PAUSE_FIELDS)
    return None if doc is None else _paused(doc)
