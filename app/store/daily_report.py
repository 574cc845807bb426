"""The daily report's reads (one query per collection) and its exactly-once claim in `report_runs`.

Claim: one `report_runs` document per report day (`_id` the ISO day). Taking it is one conditional upsert: it
matches only a day nobody holds (no document, or `sending` with an expired lease and attempts left), and a
document another dispatcher holds or finished makes the upsert a duplicate `_id`, so two dispatchers never both
win. States: `sending -> sent | failed`. A failed SMTP attempt gives the lease back at once, so the next check of
any dispatcher retries, up to MAX_ATTEMPTS; a crashed holder's lease simply runs out. Each recipient the report
reached is added to `delivered` (fenced by the holder's token), so a taker-over mails only the others.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from app.domain import reports
from app.domain.collections import REPORT_RUNS as REPORT_RUNS
from app.domain.daily_report import AccountStanding, CampaignInfo, ReportInputs, UncertainSend
from app.domain.models import AccountCampaignSettings, EmailAccount, InvalidDocument
from app.domain.pausers import paused_by_label
from app.logging import get_logger
from app.store import schema
from app.store.client import Database
from app.store.documents import id_filter, id_values, iter_valid

MAX_ATTEMPTS = 5
SENDING, SENT, FAILED = "sending", "sent", "failed"
OLDEST_UNCERTAIN = 5
SENDER_CANDIDATES = 10  # active accounts read to find the first valid one by id
_ACTIVITY_TYPES = ["sent", "replied", "bounced", "unsubscribed"]


async def _activity_counts(db: Database, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    match = {"created_at": {"$gte": start, "$lt": end}, "type": {"$in": _ACTIVITY_TYPES}}
    group = {"_id": {"c": "$campaign_id", "t": "$type"}, "n": {"$sum": 1}}
    counts: dict[str, dict[str, int]] = {}
    async for row in await db[schema.ACTIVITIES].aggregate([{"$match": match}, {"$group": group}]):
        key = row.get("_id") or {}
        if key.get("c") is not None:
            counts.setdefault(str(key["c"]), {})[str(key.get("t"))] = int(row.get("n") or 0)
    return counts


async def _ledger_counts(db: Database, start: datetime, end: datetime) -> tuple[dict[str, int], int]:
    """(failures per campaign on the day, uncertain sends in all) in one grouped query."""
    match = {"$or": [{"state": FAILED, "updated_at": {"$gte": start, "$lt": end}}, {"state": "uncertain"}]}
    group = {"_id": {"c": "$campaign_id", "s": "$state"}, "n": {"$sum": 1}}
    failures: dict[str, int] = {}
    uncertain = 0
    async for row in await db[schema.SENDS].aggregate([{"$match": match}, {"$group": group}]):
        key, n = row.get("_id") or {}, int(row.get("n") or 0)
        if key.get("s") == "uncertain":
            uncertain += n
        elif key.get("c") is not None:
            failures[str(key["c"])] = failures.get(str(key["c"]), 0) + n
    return failures, uncertain


async def _oldest_uncertain(db: Database, limit: int) -> list[UncertainSend]:
    projection = {"campaign_id": 1, "account_id": 1, "updated_at": 1, "last_error": 1}  # never the address
    cursor = db[schema.SENDS].find({"state": "uncertain"}, projection=projection, sort=[("updated_at", 1)], limit=limit)
    return [
        UncertainSend(
            send_key=str(doc["_id"]),
            campaign_id=None if doc.get("campaign_id") is None else str(doc["campaign_id"]),
            account_id=None if doc.get("account_id") is None else str(doc["account_id"]),
            since=_utc(doc.get("updated_at")),
            why=None if doc.get("last_error") is None else str(doc["last_error"]),
        )
        async for doc in cursor
    ]


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _campaigns(db: Database, counted: Sequence[str]) -> list[CampaignInfo]:
    """Active and paused campaigns, and any other the day's counts name (ids as ObjectIds or strings)."""
    ids = [v for raw in counted for v in id_values(raw)]
    flt = {"$or": [{"status": {"$in": ["active", "paused"]}}, {"_id": {"$in": ids}}]}
    projection = {"name": 1, "status": 1, "paused_reason": 1, "paused_at": 1, "paused_by": 1, "job_id": 1}
    docs = await db[schema.CAMPAIGNS].find(flt, projection=projection).to_list()
    job_ids = list({doc["job_id"] for doc in docs if doc.get("job_id") is not None})
    # A job's executions are grouped under the job's own name (one read of the few jobs named).
    job_names = {
        str(job["_id"]): str(job.get("name") or job["_id"])
        async for job in db[schema.JOBS].find({"_id": {"$in": job_ids}}, projection={"name": 1})
    }
    return [
        CampaignInfo(
            campaign_id=str(doc["_id"]),
            name=str(doc.get("name") or doc["_id"]),
            status=str(doc.get("status") or "-"),
            paused_reason=None if doc.get("paused_reason") is None else str(doc["paused_reason"]),
            paused_at=_utc(doc.get("paused_at")),
            paused_by=paused_by_label(doc.get("paused_by")),
            job_id=None if doc.get("job_id") is None else str(doc["job_id"]),
            job_name=job_names.get(str(doc.get("job_id"))),
        )
        for doc in docs
    ]


async def _accounts(db: Database, day: date) -> list[AccountStanding]:
    """Every valid account with what it sent on `day` (its own calendar day of that date) against that day's
    limit, read exactly as `show-account-stats` reads them."""
    settings: dict[str, list[AccountCampaignSettings]] = {}
    coll = db[schema.EMAIL_CAMPAIGN_SETTINGS]
    async for item in iter_valid(coll, {}, AccountCampaignSettings.from_doc):
        settings.setdefault(item.email_id, []).append(item)
    usage = {
        u.account_id: u
        async for u in iter_valid(db[schema.ACCOUNT_USAGE], {"day": day.isoformat()}, reports.usage_from_doc)
    }
    standings: list[AccountStanding] = []
    async for doc in db[schema.EMAIL_ACCOUNTS].find({}, sort=[("_id", 1)]):
        account = _account(doc)
        if account is None:
            continue
        limits = reports.account_limits(settings.get(account.id, []), account)
        sent = usage[account.id].sent if account.id in usage else 0
        reason = doc.get("disabled_reason")
        standings.append(
            AccountStanding(
                account_id=account.id,
                email=account.email,
                status=account.status,
                disabled_reason=None if reason is None else str(reason),
                sent=sent,
                limit=reports.day_limit(limits, day.isoformat()),
            )
        )
    return standings


def _account(doc: Mapping[str, Any]) -> EmailAccount | None:
    try:
        return EmailAccount.from_doc(doc)
    except InvalidDocument:
        return None  # malformed: every other command reports it; the report shows the rest


async def gather(db: Database, day: date, start: datetime, end: datetime) -> ReportInputs:
    """Read what the report of `day` ([start, end) in UTC) shows."""
    counts = await _activity_counts(db, start, end)
    failures, uncertain_total = await _ledger_counts(db, start, end)
    return ReportInputs(
        campaigns=await _campaigns(db, sorted({*counts, *failures})),
        activity_counts=counts,
        failures=failures,
        accounts=await _accounts(db, day),
        uncertain_total=uncertain_total,
        uncertain_oldest=await _oldest_uncertain(db, OLDEST_UNCERTAIN),
    )


async def sender_candidates(db: Database, wanted: str | None) -> list[dict[str, Any]]:
    """The account documents the report may go from: the one named (`OUTBOUND_REPORT_ACCOUNT`, by id), else the
    first few active ones by `_id` (a missing status reads as active, as everywhere)."""
    if wanted is not None:
        return [doc async for doc in db[schema.EMAIL_ACCOUNTS].find(id_filter(wanted), limit=1)]
    active = {"$or": [{"status": "active"}, {"status": {"$exists": False}}]}
    return [doc async for doc in db[schema.EMAIL_ACCOUNTS].find(active, sort=[("_id", 1)], limit=SENDER_CANDIDATES)]


@dataclass(frozen=True)
class Claim:
    """This process holds the report of `day` until `lease_until`; `delivered` already got it."""

    day: str
    token: str
    attempt: int
    delivered: tuple[str, ...]


async def claim(db: Database, day: str, owner: str, now: datetime, lease_seconds: float) -> Claim | None:
    """Take the report of `day`, or None when another dispatcher holds it or it is done."""
    token = uuid.uuid4().hex
    expired = {"state": SENDING, "lease_until": {"$lte": now}, "attempts": {"$lt": MAX_ATTEMPTS}}
    free = {"_id": day, "$or": [{"state": {"$exists": False}}, expired]}
    update = {
        "$set": {
            "state": SENDING,
            "owner": owner,
            "token": token,
            "lease_until": now + timedelta(seconds=lease_seconds),
        },
        "$setOnInsert": {"created_at": now},
        "$inc": {"attempts": 1},
    }
    try:
        await db[REPORT_RUNS].update_one(free, update, upsert=True)
    except DuplicateKeyError:
        # Held, finished, or out of attempts: only the last needs a write.
        await _give_up(db, day, now)
        return None
    doc = await db[REPORT_RUNS].find_one({"_id": day, "token": token})
    if doc is None:
        return None
    return Claim(day, token, int(doc.get("attempts") or 1), tuple(doc.get("delivered") or ()))


async def _give_up(db: Database, day: str, now: datetime) -> None:
    """A `sending` document whose lease ran out with no attempts left becomes `failed` (and is logged)."""
    result = await db[REPORT_RUNS].update_one(
        {"_id": day, "state": SENDING, "lease_until": {"$lte": now}, "attempts": {"$gte": MAX_ATTEMPTS}},
        {"$set": {"state": FAILED, "finished_at": now}, "$unset": {"token": ""}},
    )
    if result.modified_count:
        get_logger(day=day).error("report.failed", reason=f"no report after {MAX_ATTEMPTS} attempts; see report_runs")


async def mark_delivered(db: Database, held: Claim, recipient: str, message_id: str) -> bool:
    """Record that `recipient` got the report; False when the claim was lost (stop sending)."""
    result = await db[REPORT_RUNS].update_one(
        {"_id": held.day, "token": held.token, "state": SENDING},
        {"$addToSet": {"delivered": recipient, "message_ids": message_id}},
    )
    return result.matched_count == 1


async def finish(db: Database, held: Claim, now: datetime, *, account_id: str | None, error: str | None) -> str | None:
    """End this attempt: `sent` without an error; with one, `failed` after the last attempt, else the lease is
    given back for the next check to retry. The state written, or None when the claim was lost."""
    if error is None:
        values: dict[str, Any] = {"state": SENT, "sent_at": now, "finished_at": now, "account_id": account_id}
    elif held.attempt >= MAX_ATTEMPTS:
        values = {"state": FAILED, "finished_at": now, "last_error": error, "account_id": account_id}
    else:
        values = {"lease_until": now, "last_error": error, "account_id": account_id}
    unset = {"token": ""} if "state" in values else {}
    update: dict[str, Any] = {"$set": values, **({"$unset": unset} if unset else {})}
    result = await db[REPORT_RUNS].update_one({"_id": held.day, "token": held.token, "state": SENDING}, update)
    if result.matched_count != 1:
        return None
    return str(values.get("state", SENDING))


async def record_manual(db: Database, day: str, entry: Mapping[str, Any]) -> None:
    """Note an on-demand send (`report send --now`) on the day's document, without touching its claim."""
    await db[REPORT_RUNS].update_one({"_id": day}, {"$push": {"manual": dict(entry)}}, upsert=True)


async def run_of(db: Database, day: str) -> dict[str, Any] | None:
    """The `report_runs` document of `day`, if any."""
    return await db[REPORT_RUNS].find_one({"_id": day})
