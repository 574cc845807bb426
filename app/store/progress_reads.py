"""Campaign progress and lead states counted on the server: grouped reads over a campaign's leads.

The dashboard polls these numbers, and a campaign may hold millions of leads, so no lead is sent here to be
parsed. In one pass the server groups every lead by state and current step, and the recipients' entries by key
and status; the pure rules (which keys are ours, what an entry without a status means) apply to those few rows
in `reports.tally_from_rows`. The same pass returns the suspect leads (`suspect_filter`: those a schema of what
`Lead.from_doc` surely accepts does not describe); the caller takes their rows away (`rows_of_docs` is this
module's twin of the grouping), validates them and counts those `Lead.from_doc` accepts one by one, so a
malformed lead is still reported with its field and counted nowhere. SecantusDB evaluates every condition per
lead in Python, so the pass avoids per-lead expressions where a grouped row can carry the value instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from app.domain import reports
from app.domain.campaigns import RECIPIENT_STATUSES
from app.domain.reports import COMPLETED, DUE, IN_PROGRESS, PLAIN_ADDRESS_PATTERN, STOPPED, WAITING
from app.store import schema
from app.store.client import Database

LEASE_UNTIL = "$progress.lease_until"
NEXT_DUE_AT = "$progress.next_due_at"
CURRENT_STEP = "$progress.current_step_order"
PROCESSED = "$progress.processed_recipients"
# Suspect leads returned by the grouping pass itself; beyond this many they are read in a second pass.
MAX_SUSPECTS = 1000


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


def _maybe(*types: str) -> dict[str, Any]:
    return {"bsonType": [*types, "null"]}


def plain_lead_schema() -> dict[str, Any]:
    """The lead documents `Lead.from_doc` surely accepts, as a `$jsonSchema`: the types it insists on, a step
    of at least 1, and at least one recipient, each with a plain address (`reports.PLAIN_ADDRESS_PATTERN`).

    One schema, not a condition per field: the server checks a document against it in one walk, and a type
    in a schema is the value's own (a query's type test would look inside a list)."""
    recipient = {
        "bsonType": "object",
        "required": ["email"],
        "properties": {
            "email": {"bsonType": "string", "pattern": PLAIN_ADDRESS_PATTERN},
            "status": {"enum": [*RECIPIENT_STATUSES, "", None]},
            "last_contacted_at": _maybe("date"),
            "last_step": _maybe("int", "long"),
        },
    }
    progress = {
        "completed": _maybe("bool"),
        "stopped": _maybe("bool"),
        "current_step_order": {**_maybe("int", "long"), "minimum": 1},
        **{name: _maybe("date") for name in ("last_sent_at", "next_due_at", "lease_until")},
        **{name: _maybe("object") for name in ("processed_recipients", "retries")},
        **{name: _maybe("string") for name in ("lease_owner", "lease_token", "stopped_reason", "stop_reason")},
    }
    return {
        "required": ["lead_data"],
        "properties": {
            "lead_key": _maybe("string", "objectId"),
            "lead_data": {"bsonType": "array", "minItems": 1, "items": recipient},
            "progress": {**_maybe("object"), "properties": progress},
        },
    }


def suspect_filter() -> dict[str, Any]:
    """Leads that may be malformed: those `plain_lead_schema` does not describe."""
    return {"$nor": [{"$jsonSchema": plain_lead_schema()}]}


def progress_pipeline(scope: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """One pass over the leads matching `scope`: `leads` grouped by state and current step, `entries` (of every
    lead's `processed_recipients`) grouped by key, status (absent when the entry has none) and type, and
    `suspects`, the first MAX_SUSPECTS leads of `suspect_filter`, whole."""
    entries = {"$cond": [_is(PROCESSED, "object"), {"$objectToArray": PROCESSED}, []]}
    entry_key = {"key": "$e.k", "status": "$e.v.status", "type": {"$type": "$e.v"}}
    return [
        {"$match": dict(scope)},
        {
            "$facet": {
                "leads": [{"$group": {"_id": {"state": lead_state(now), "step": CURRENT_STEP}, "n": {"$sum": 1}}}],
                "entries": [
                    {"$project": {"_id": 0, "e": entries}},
                    {"$unwind": "$e"},
                    {"$group": {"_id": entry_key, "n": {"$sum": 1}}},
                ],
                "suspects": [{"$match": suspect_filter()}, {"$limit": MAX_SUSPECTS}],
            }
        },
    ]


def _count(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"progress rows: expected a whole number >= 0, got {value!r}")
    return value


def _step(value: Any) -> int:
    """The current step as grouped: a whole number, else (absent, or malformed) the first."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _status_outcome(group: Mapping[str, Any]) -> str | None:
    """`reports.entry_outcome` of an entry the server grouped as {status (absent when none), type}."""
    if group.get("type") != "object":
        return None
    return str(group["status"]) if "status" in group else "sent"


def rows_of_groups(result: Mapping[str, Any]) -> reports.ProgressRows:
    """The server's grouped rows (`leads` and `entries` of `progress_pipeline`) as `reports.ProgressRows`."""
    leads: dict[tuple[str, int], int] = {}
    for row in result.get("leads", []):
        lead_key = (str(row["_id"]["state"]), _step(row["_id"].get("step")))
        leads[lead_key] = leads.get(lead_key, 0) + _count(row["n"])
    entries: dict[tuple[str, str | None], int] = {}
    for row in result.get("entries", []):
        entry_key = (str(row["_id"].get("key")), _status_outcome(row["_id"]))
        entries[entry_key] = entries.get(entry_key, 0) + _count(row["n"])
    return reports.ProgressRows(leads, entries)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def grouped_state(progress: Mapping[str, Any], now: datetime) -> str:
    """`lead_state(now)` evaluated here, for a lead document's `progress` (an empty one when not an object)."""
    lease, due = progress.get("lease_until"), _when(progress.get("next_due_at"))
    if progress.get("completed") is True:
        return COMPLETED
    if progress.get("stopped") is True:
        return STOPPED
    if (until := _when(lease)) is not None and until > now:
        return IN_PROGRESS
    if due is not None and due <= now and (lease is None or isinstance(lease, datetime)):
        return DUE
    return WAITING


def rows_of_docs(docs: Sequence[Mapping[str, Any]], now: datetime) -> reports.ProgressRows:
    """The rows the server grouped for these lead documents (the suspects, to be counted another way)."""
    leads: dict[tuple[str, int], int] = {}
    entries: dict[tuple[str, str | None], int] = {}
    for doc in docs:
        raw = doc.get("progress")
        progress = raw if isinstance(raw, Mapping) else {}
        lead_key = (grouped_state(progress, now), _step(progress.get("current_step_order")))
        leads[lead_key] = leads.get(lead_key, 0) + 1
        processed = progress.get("processed_recipients")
        for key, entry in processed.items() if isinstance(processed, Mapping) else ():
            entry_key = (str(key), reports.entry_outcome(entry))
            entries[entry_key] = entries.get(entry_key, 0) + 1
    return reports.ProgressRows(leads, entries)


async def grouped_progress(
    db: Database, scope: Mapping[str, Any], now: datetime
) -> tuple[reports.ProgressRows, list[dict[str, Any]]]:
    """Every lead matching `scope` grouped (see `progress_pipeline`), and the suspect leads among them, whole:
    the first MAX_SUSPECTS from the same pass, or all of them in a second read when there are more."""
    cursor = await db[schema.CAMPAIGN_LEADS].aggregate(progress_pipeline(scope, now))
    found = [row async for row in cursor]
    result = found[0] if found else {}
    suspects = list(result.get("suspects", []))
    if len(suspects) >= MAX_SUSPECTS:
        suspects = [doc async for doc in suspect_leads(db, scope)]
    return rows_of_groups(result), suspects


async def suspect_leads(db: Database, scope: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The leads matching `scope` that `suspect_filter` finds, whole, to be validated and counted in Python."""
    async for doc in db[schema.CAMPAIGN_LEADS].find({"$and": [dict(scope), suspect_filter()]}):
        yield doc


async def state_counts(db: Database, scope: Mapping[str, Any], now: datetime) -> dict[str, int]:
    """Leads matching `scope` per state, every lead as `lead_queries.state_filters` counts it (none is validated)."""
    pipeline = [{"$match": dict(scope)}, {"$group": {"_id": lead_state(now), "n": {"$sum": 1}}}]
    cursor = await db[schema.CAMPAIGN_LEADS].aggregate(pipeline)
    return {str(row["_id"]): int(row["n"]) async for row in cursor}
