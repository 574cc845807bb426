"""Queries for lead states, the twins of `app.domain.reports.lead_state` (on indexed fields where they can)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.domain.reports import COMPLETED, DUE, IN_PROGRESS, STOPPED
from app.store.leases import due_range


def due_filter(now: datetime) -> dict[str, Any]:
    """The query twin of `lead_state(...) == DUE` (filters on the indexed `progress.next_due_at`)."""
    return {
        "progress.next_due_at": due_range(now),
        "progress.stopped": {"$ne": True},
        "progress.completed": {"$ne": True},
        "$or": [{"progress.lease_until": None}, {"progress.lease_until": {"$lte": now}}],
    }


def state_filters(now: datetime) -> dict[str, dict[str, Any]]:
    """Disjoint queries for each lead state except waiting (which is what the others leave)."""
    open_lead = {"progress.completed": {"$ne": True}, "progress.stopped": {"$ne": True}}
    return {
        COMPLETED: {"progress.completed": True},
        STOPPED: {"progress.completed": {"$ne": True}, "progress.stopped": True},
        IN_PROGRESS: {**open_lead, "progress.lease_until": {"$gt": now}},
        DUE: due_filter(now),
    }
