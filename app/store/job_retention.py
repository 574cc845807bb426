"""Finished job executions give their recipients back to the disk after `OUTBOUND_JOB_RETENTION_DAYS`.

A recurring job makes a campaign and its leads per run (1,440 a day for an every-minute job). Once an
execution has ended and the retention has passed, its campaign document and its leads are deleted; the
execution keeps its final counts (`counts`, stored when it finished, or now for a cancelled one) and gets
`pruned_at`. The `sends` ledger and the activities stay: they are the record of what was sent, and what the
reports and metrics read. Each step can run again, so a runner that dies part way leaves the rest to the next.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from app.domain.collections import CAMPAIGN_LEADS, CAMPAIGNS, JOB_EXECUTIONS
from app.store.client import Database
from app.store.execution_counts import counts, execution_ref
from app.store.job_executions import CANCELLED, COMPLETED, FAILED

ENDED = (COMPLETED, FAILED, CANCELLED)
PRUNE_BATCH = 20
PRUNE_ROUNDS = 50  # at most 1,000 executions a pass; the rest wait for the next


async def prunable(db: Database, now: datetime, days: int, limit: int = PRUNE_BATCH) -> list[dict[str, Any]]:
    """Ended executions whose retention has passed and that still hold their recipients, oldest first."""
    cutoff = now - timedelta(days=days)
    flt = {"pruned_at": None, "finished_at": {"$lt": cutoff}, "state": {"$in": list(ENDED)}}
    return await db[JOB_EXECUTIONS].find(flt, sort=[("finished_at", 1)], limit=limit).to_list()


async def prune(db: Database, execution: dict[str, Any], now: datetime) -> int:
    """Delete an ended execution's campaign and leads, keeping its counts; how many leads were deleted."""
    execution_id = execution["_id"]
    if not execution.get("counts"):  # a cancelled execution: its counts as its leads say, before they go
        found = await counts(db[CAMPAIGN_LEADS], execution_id)
        await db[JOB_EXECUTIONS].update_one({"_id": execution_id}, {"$set": {"counts": found.as_doc()}})
    deleted = await db[CAMPAIGN_LEADS].delete_many(execution_ref(execution_id))
    await db[CAMPAIGNS].delete_one({"_id": execution_id, "kind": "job"})
    await db[JOB_EXECUTIONS].update_one({"_id": execution_id}, {"$set": {"pruned_at": now}})
    return int(deleted.deleted_count)
