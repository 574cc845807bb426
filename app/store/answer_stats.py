"""Counts of answers (replies, bounces, unsubscribes) from the `activities` log, for the reports.

Answers are few next to sends, so they are counted where they are recorded: one grouped query each.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from app.domain.collections import ACTIVITIES
from app.store.client import Database
from app.store.documents import id_values

ANSWER_TYPES = ("replied", "auto_reply", "bounced", "soft_bounce", "unsubscribed")


async def _grouped(db: Database, match: dict[str, Any], key: str) -> dict[Any, Counter[str]]:
    pipeline = [{"$match": match}, {"$group": {"_id": {"k": f"${key}", "t": "$type"}, "n": {"$sum": 1}}}]
    counts: dict[Any, Counter[str]] = {}
    async for row in await db[ACTIVITIES].aggregate(pipeline):
        group = row.get("_id") or {}
        counts.setdefault(group.get("k"), Counter())[str(group.get("t"))] += int(row.get("n") or 0)
    return counts


async def per_step(db: Database, campaign_id: str) -> dict[int, Counter[str]]:
    """Per step order of one campaign: how many of each answer type."""
    match = {"campaign_id": {"$in": id_values(campaign_id)}, "type": {"$in": list(ANSWER_TYPES)}}
    grouped = await _grouped(db, match, "step_order")
    return {int(step): counts for step, counts in grouped.items() if isinstance(step, int)}


async def per_account(db: Database, since: datetime) -> dict[str, Counter[str]]:
    """Per account since `since`: sends (`sent`) and each answer type, to tell replies and the bounce rate."""
    match = {"created_at": {"$gte": since}, "type": {"$in": ["sent", *ANSWER_TYPES]}}
    grouped = await _grouped(db, match, "account_id")
    return {str(account): counts for account, counts in grouped.items() if account is not None}


def bounce_rate(counts: Counter[str]) -> float | None:
    """Hard bounces per message sent (None before anything was sent)."""
    sent = counts.get("sent", 0)
    return round(counts.get("bounced", 0) / sent, 4) if sent else None
