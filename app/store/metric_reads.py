"""The reads behind the database-derived metrics: one query each, bounded, on existing indexes.

`app/metrics/gauges.py` turns them into gauges; a dispatcher runs them every few seconds and `outbound serve` at
each scrape, so each must stay cheap on a large database: the backlog is counted on the due index and capped.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from app.domain.collections import DISPATCHERS
from app.domain.liveness import MAX_BEAT_SECONDS, state
from app.store import dispatchers, leases, schema
from app.store.client import Database


async def campaign_statuses(db: Database) -> tuple[dict[str, str | None], int]:
    """The active campaigns, each id with its job's id (None for a sequence), and how many are paused: one read of
    the campaigns' ids, statuses and jobs."""
    active: dict[str, str | None] = {}
    paused = 0
    projection = {"status": 1, "job_id": 1}
    cursor = db[schema.CAMPAIGNS].find({"status": {"$in": ["active", "paused"]}}, projection=projection)
    async for doc in cursor:
        if doc.get("status") == "active":
            job_id = doc.get("job_id")
            active[str(doc["_id"])] = None if job_id is None else str(job_id)
        else:
            paused += 1
    return active, paused


async def due_backlog(db: Database, campaign_ids: Collection[str], now: datetime, cap: int) -> dict[str, int]:
    """Leads due at `now` per campaign of `campaign_ids`, each counted up to `cap`: one bounded range of the index
    campaign_due per campaign, as the dispatcher's own due queries read it.

    Leads held by a dispatcher are not due (a claim moves their due time to the lease's end), nor are completed
    and stopped ones (they carry no due time). On MongoDB a count stops at `cap`; SecantusDB reads every due
    lead of the campaign first (about 30 us each, see README "Metrics").
    """
    coll = db[schema.CAMPAIGN_LEADS]
    due = leases.due_range(now)
    return {
        campaign_id: await coll.count_documents({"campaign_id": campaign_id, "progress.next_due_at": due}, limit=cap)
        for campaign_id in campaign_ids
    }


async def uncertain_sends(db: Database) -> int:
    """Sends in the ledger's `uncertain` state (index state), the ones `list-uncertain` shows."""
    return await db[schema.SENDS].count_documents({"state": "uncertain"})


async def accounts_out_of_rotation(db: Database) -> int:
    """Accounts the dispatcher took out of rotation after an authentication failure (status auth_failed)."""
    return await db[schema.EMAIL_ACCOUNTS].count_documents({"status": "auth_failed"})


async def last_synced(db: Database) -> dict[str, datetime | None]:
    """When each account's mailbox was last read successfully (None: never), by account id."""
    found: dict[str, datetime | None] = {}
    cursor = db[schema.INBOUND_SYNC].find({"kind": "account"}, projection={"account_id": 1, "last_synced_at": 1})
    async for doc in cursor:
        when = doc.get("last_synced_at")
        found[str(doc.get("account_id"))] = when if isinstance(when, datetime) else None
    return found


async def dispatchers_alive(db: Database, now: datetime) -> int:
    """Dispatchers whose heartbeat is current (neither stopped nor past their missed beats), as `outbound status`
    calls them alive; a heartbeat without its interval is judged by the longest one."""
    beats = await dispatchers.heartbeats(db[DISPATCHERS])
    return sum(1 for b in beats if state(b.beat_at, b.stopped_at, now, b.beat_seconds or MAX_BEAT_SECONDS) == "alive")
