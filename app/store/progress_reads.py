"""Campaign progress and lead states counted on the server: one grouped read over a campaign's leads.

The dashboard polls these numbers, and a campaign may hold millions of leads, so no lead is sent here to be
parsed. Counting on the server needs the counted fields to be well formed; the pipeline checks that per lead
(`plain_lead`: the types `Lead.from_doc` insists on, and addresses simple enough that they are always valid).
Leads that fail the check are few, if any: `suspect_leads` streams them to be validated in Python, so a lead
the pure path would accept is still counted and a malformed one is still reported, with its field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from app.domain.campaigns import RECIPIENT_STATUSES
from app.domain.reports import (
    COMPLETED,
    DUE,
    IN_PROGRESS,
    PLAIN_ADDRESS_PATTERN,
    PROCESSED_OUTCOMES,
    STEP_ENTRY_PATTERN,
    STOPPED,
    WAITING,
)
from app.store import schema
from app.store.client import Database

PROGRESS = "$progress"
LEASE_UNTIL = "$progress.lease_until"
NEXT_DUE_AT = "$progress.next_due_at"
CURRENT_STEP = "$progress.current_step_order"


def _type_in(path: str, *types: str) -> dict[str, Any]:
    """The value at `path` is absent (missing or null) or of one of these BSON types."""
    return {"$in": [{"$type": path}, ["missing", "null", *types]]}


def _is(path: str, bson_type: str) -> dict[str, Any]:
    return {"$eq": [{"$type": path}, bson_type]}


def lead_state(now: datetime) -> dict[str, Any]:
    """The expression twin of `reports.lead_state` and of `lead_queries.state_filters` (whose type bracketing it
    keeps: a lease or due time that is not a date counts as none)."""
    leased = {"$and": [_is(LEASE_UNTIL, "date"), {"$gt": [LEASE_UNTIL, now]}]}
    due = {"$and": [_is(NEXT_DUE_AT, "date"), {"$lte": [NEXT_DUE_AT, now]}, _type_in(LEASE_UNTIL, "date")]}
    return {
        "$switch": {
            "branches": [
                {"case": {"$eq": ["$progress.completed", True]}, "then": COMPLETED},
                {"case": {"$eq": ["$progress.stopped", True]}, "then": STOPPED},
                {"case": leased, "then": IN_PROGRESS},
                {"case": due, "then": DUE},
            ],
            "default": WAITING,
        }
    }


def _plain_recipient(var: str) -> dict[str, Any]:
    email = f"{var}.email"
    plain_email = {
        "$cond": [_is(email, "string"), {"$regexMatch": {"input": email, "regex": PLAIN_ADDRESS_PATTERN}}, False]
    }
    return {
        "$cond": [
            _is(var, "object"),
            {
                "$and": [
                    plain_email,
                    {"$or": [_type_in(f"{var}.status"), {"$in": [f"{var}.status", [*RECIPIENT_STATUSES, ""]]}]},
                    _type_in(f"{var}.last_contacted_at", "date"),
                    _type_in(f"{var}.last_step", "int", "long"),
                ]
            },
            False,
        ]
    }


def plain_lead() -> dict[str, Any]:
    """True for a lead `Lead.from_doc` surely accepts, judged by field types and plain addresses alone."""
    recipients = {"$map": {"input": "$lead_data", "as": "r", "in": _plain_recipient("$$r")}}
    step = {
        "$or": [_type_in(CURRENT_STEP), {"$and": [_type_in(CURRENT_STEP, "int", "long"), {"$gte": [CURRENT_STEP, 1]}]}]
    }
    fields = [
        _type_in(PROGRESS, "object"),
        _type_in("$lead_key", "string", "objectId"),
        *(_type_in(f"$progress.{name}", "object") for name in ("processed_recipients", "retries")),
        *(_type_in(f"$progress.{name}", "bool") for name in ("stopped", "completed")),
        *(_type_in(f"$progress.{name}", "date") for name in ("last_sent_at", "next_due_at", "lease_until")),
        *(
            _type_in(f"$progress.{n}", "string")
            for n in ("lease_owner", "lease_token", "stopped_reason", "stop_reason")
        ),
        step,
    ]
    has_recipients = {"$cond": [{"$isArray": "$lead_data"}, {"$gt": [{"$size": "$lead_data"}, 0]}, False]}
    all_plain = {"$cond": [has_recipients, {"$allElementsTrue": [recipients]}, False]}
    return {"$and": [*fields, all_plain]}


def _outcomes() -> dict[str, Any]:
    """The lead's processed recipients as [{step, outcome}], only those `reports.tally_leads` counts."""
    entry = "$$e.v"
    has_status = {"$in": ["status", {"$map": {"input": {"$objectToArray": entry}, "as": "f", "in": "$$f.k"}}]}
    # Seed 001's entries may carry no status: such an entry records a send.
    outcome = {"$cond": [_is(entry, "object"), {"$cond": [has_status, f"{entry}.status", "sent"]}, None]}
    match = {"$regexFind": {"input": "$$e.k", "regex": STEP_ENTRY_PATTERN}}
    step = {"$cond": [{"$eq": ["$$m", None]}, None, {"$toInt": {"$arrayElemAt": ["$$m.captures", 0]}}]}
    pairs = {
        "$map": {
            "input": {"$objectToArray": {"$ifNull": ["$progress.processed_recipients", {}]}},
            "as": "e",
            "in": {"$let": {"vars": {"m": match}, "in": {"step": step, "outcome": outcome}}},
        }
    }
    counted = {"$and": [{"$ne": ["$$p.step", None]}, {"$in": ["$$p.outcome", list(PROCESSED_OUTCOMES)]}]}
    return {"$filter": {"input": pairs, "as": "p", "cond": counted}}


def _steps_done(step_count: int) -> dict[str, Any]:
    """The twin of `reports._steps_done`: every step of a completed lead, else the steps before its current one."""
    before = {"$max": [{"$subtract": [{"$ifNull": [CURRENT_STEP, 1]}, 1]}, 0]}
    return {"$cond": [{"$eq": ["$progress.completed", True]}, step_count, {"$min": [before, step_count]}]}


def progress_pipeline(scope: Mapping[str, Any], step_count: int, now: datetime) -> list[dict[str, Any]]:
    """Group the plain leads matching `scope` into the rows `reports.tally_from_rows` reads."""
    per_lead = {
        "_id": 0,
        "state": lead_state(now),
        "step": {"$ifNull": [CURRENT_STEP, 1]},
        "done": _steps_done(step_count),
        "outcomes": _outcomes(),
    }
    return [
        {"$match": dict(scope)},
        {"$match": {"$expr": plain_lead()}},
        {"$project": per_lead},
        {
            "$facet": {
                "states": [{"$group": {"_id": "$state", "n": {"$sum": 1}}}],
                "at_step": [{"$match": {"state": {"$ne": COMPLETED}}}, {"$group": {"_id": "$step", "n": {"$sum": 1}}}],
                "outcomes": [
                    {"$unwind": "$outcomes"},
                    {"$group": {"_id": {"step": "$outcomes.step", "outcome": "$outcomes.outcome"}, "n": {"$sum": 1}}},
                ],
                "totals": [{"$group": {"_id": None, "steps_done": {"$sum": "$done"}, "leads": {"$sum": 1}}}],
            }
        },
    ]


async def plain_progress(db: Database, scope: Mapping[str, Any], step_count: int, now: datetime) -> dict[str, Any]:
    """The grouped rows of the plain leads matching `scope` (see `progress_pipeline`)."""
    cursor = await db[schema.CAMPAIGN_LEADS].aggregate(progress_pipeline(scope, step_count, now))
    rows = [row async for row in cursor]
    return rows[0] if rows else {}


async def suspect_leads(db: Database, scope: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The leads matching `scope` that `plain_progress` left out, whole, to be validated and counted in Python."""
    flt = {"$and": [dict(scope), {"$expr": {"$not": [plain_lead()]}}]}
    async for doc in db[schema.CAMPAIGN_LEADS].find(flt):
        yield doc


async def state_counts(db: Database, scope: Mapping[str, Any], now: datetime) -> dict[str, int]:
    """Leads matching `scope` per state, every lead as `lead_queries.state_filters` counts it (none is validated)."""
    pipeline = [{"$match": dict(scope)}, {"$group": {"_id": lead_state(now), "n": {"$sum": 1}}}]
    cursor = await db[schema.CAMPAIGN_LEADS].aggregate(pipeline)
    return {str(row["_id"]): int(row["n"]) async for row in cursor}
