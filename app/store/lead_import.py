"""Write imported leads in bounded batches: a duplicate check and one bulk insert per batch, plus an append per
lead that already exists.

How a batch is written, and why it is safe to repeat:
- one `find` on the recipient_email index returns which of the batch's addresses the campaign already has;
  those rows are duplicates, so importing the same file twice adds nothing;
- the remaining recipients are grouped by lead key and inserted as new leads with one unordered insert; the
  unique (campaign_id, lead_key) index refuses a key that already exists (an earlier batch, an earlier import
  or a concurrent one), and those groups are appended to the existing lead with `update_one` by `_id`;
- each append also requires that none of its addresses is already in the lead (`$nin`), so a concurrent import
  of the same rows cannot push a recipient twice: the filter stops matching and the group is re-checked.

Queries filter on one indexed field (`lead_data.email`, `lead_key`) and check the campaign in the results:
SecantusDB scans the whole collection for compound filters, which made each batch slower than the last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import BulkWriteError

from app.domain.importing import (
    BatchPlan,
    Candidate,
    ImportReport,
    RawRow,
    Rejection,
    RowStream,
    batched,
    ignored_fields,
    new_lead_fields,
    plan_batch,
    to_candidate,
)
from app.logging import get_logger
from app.store import schema
from app.store.client import Database
from app.store.documents import get_doc, id_filter, id_values

DEFAULT_BATCH_SIZE = 1000
DUPLICATE_KEY = 11000
MAX_CONFLICT_RETRIES = 5


class ImportConflict(RuntimeError):
    """Another writer kept changing the same leads; rerun the import (it is idempotent)."""


async def first_step_due(db: Database, campaign: Mapping[str, Any], now: datetime) -> datetime:
    """When a new lead's step 1 is due: now plus step 1's delay, or now when the sequence has no steps yet."""
    sequence_id = campaign.get("sequence_id")
    if sequence_id is None:
        return now
    step = await db[schema.SEQUENCE_STEPS].find_one({**id_filter(sequence_id, "sequence_id"), "step_order": 1})
    delay = (step or {}).get("delay_minutes") or 0
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        delay = 0
    return now + timedelta(minutes=float(delay))


async def import_leads(
    db: Database,
    campaign_id: str,
    stream: RowStream,
    *,
    now: datetime,
    group_by: str | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keep_rejections: int | None = 20,
) -> ImportReport:
    """Import `stream`'s rows as leads of the campaign; raise NotFound (nothing changed) if it does not exist."""
    campaign = await get_doc(db[schema.CAMPAIGNS], "campaign", campaign_id)
    writer = _Writer(db, str(campaign["_id"]), now, await first_step_due(db, campaign, now), dry_run)
    report = ImportReport(writer.campaign_id, stream.format, dry_run, keep_rejections=keep_rejections)
    log = get_logger(campaign_id=writer.campaign_id)
    for number, rows in enumerate(batched(stream.rows, batch_size), start=1):
        candidates = _validate(rows, group_by, report)
        plan = plan_batch(candidates, await writer.existing_emails(c.email for c in candidates))
        report.duplicates_skipped += plan.duplicates
        await writer.write(plan, report)
        log.debug("import.batch", batch=number, rows_read=report.rows_read, leads_created=report.leads_created)
    log.info("import.finished", **{k: v for k, v in report.to_dict().items() if k != "rejections"})
    return report


def _validate(rows: list[RawRow | Rejection], group_by: str | None, report: ImportReport) -> list[Candidate]:
    candidates: list[Candidate] = []
    for row in rows:
        report.rows_read += 1
        outcome = row if isinstance(row, Rejection) else to_candidate(row, group_by)
        if isinstance(outcome, Rejection):
            report.reject(outcome)
            continue
        if isinstance(row, RawRow):
            report.ignored_columns |= ignored_fields(row)
        candidates.append(outcome)
    return candidates


class _Writer:
    """Writes one campaign's batches; in a dry run it only reads, remembering what it would have written."""

    def __init__(self, db: Database, campaign_id: str, now: datetime, next_due_at: datetime, dry_run: bool):
        self.leads = db[schema.CAMPAIGN_LEADS]
        self.campaign_id = campaign_id
        self.campaign_ids = {str(v) for v in id_values(campaign_id)}
        self.now = now
        self.next_due_at = next_due_at
        self.dry_run = dry_run
        self.created = 0  # new leads so far: each is due one millisecond after the one before
        # Only a dry run needs these (nothing is stored to find later); they grow with the file.
        self.dry_emails: set[str] = set()
        self.dry_keys: set[str] = set()

    def _ours(self, lead: Mapping[str, Any]) -> bool:
        return str(lead.get("campaign_id")) in self.campaign_ids

    async def existing_emails(self, emails: Iterable[str]) -> set[str]:
        """Which of `emails` the campaign already has (or, in a dry run, would have by now)."""
        wanted = set(emails)
        if not wanted:
            return set()
        found: set[str] = set()
        projection = {"campaign_id": 1, "lead_data.email": 1, "_id": 0}
        async for lead in self.leads.find({"lead_data.email": {"$in": sorted(wanted)}}, projection):
            if self._ours(lead):
                found.update(_emails_of(lead) & wanted)
        return found | (self.dry_emails & wanted)

    async def lead_ids(self, keys: Iterable[str]) -> dict[str, Any]:
        """The `_id` of this campaign's lead for each of `keys` that exists."""
        wanted = sorted(set(keys))
        found: dict[str, Any] = {}
        async for lead in self.leads.find({"lead_key": {"$in": wanted}}, {"campaign_id": 1, "lead_key": 1}):
            if self._ours(lead):
                found[lead["lead_key"]] = lead["_id"]
        return found

    async def write(self, plan: BatchPlan, report: ImportReport) -> None:
        """Insert or extend the plan's leads, counting created and updated leads and added recipients."""
        if not plan.groups:
            return
        if self.dry_run:
            await self._pretend(plan, report)
            return
        pending = dict(plan.groups)
        for _attempt in range(MAX_CONFLICT_RETRIES):
            existing = await self._insert(pending, report)
            if not existing:
                return
            pending = await self._append(existing, report)
            if not pending:
                return
        raise ImportConflict(
            f"leads {sorted(pending)[:5]} kept changing while importing; rerun the import (it is idempotent)"
        )

    async def _insert(
        self, groups: dict[str, list[Mapping[str, Any]]], report: ImportReport
    ) -> dict[str, list[Mapping[str, Any]]]:
        """Insert every group as a new lead; return the groups whose lead already exists."""
        keys = list(groups)
        docs = [self._new_lead(key, groups[key]) for key in keys]
        taken: set[int] = set()
        try:
            await self.leads.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            taken = {e["index"] for e in errors}
        for index, key in enumerate(keys):
            if index not in taken:
                report.leads_created += 1
                report.recipients_added += len(groups[key])
        return {keys[i]: groups[keys[i]] for i in sorted(taken)}

    def _new_lead(self, key: str, recipients: list[Mapping[str, Any]]) -> dict[str, Any]:
        # Spread in file order, a millisecond apart (100,000 leads over 100 s): leads sharing one due time cannot
        # be split by the dispatcher's due window, so on servers without a limit push-down (SecantusDB) every
        # scan would read them all.
        due = self.next_due_at + timedelta(milliseconds=self.created)
        self.created += 1
        return {
            "campaign_id": self.campaign_id,
            "lead_key": key,
            **new_lead_fields(self.now, due),
            "lead_data": [dict(r) for r in recipients],
        }

    async def _append(
        self, groups: dict[str, list[Mapping[str, Any]]], report: ImportReport
    ) -> dict[str, list[Mapping[str, Any]]]:
        """Append groups to their existing leads; return those to retry (lead gone, or an address arrived)."""
        ids = await self.lead_ids(groups)
        keys = [key for key in groups if key in ids]
        retry = {key: groups[key] for key in groups if key not in ids}
        if not keys:
            return retry
        # One update per lead (not one bulk write) so each result says whether that lead took its recipients.
        results = await asyncio.gather(*(self._append_one(ids[key], groups[key]) for key in keys))
        collided: dict[str, list[Mapping[str, Any]]] = {}
        for key, appended in zip(keys, results, strict=True):
            if appended:
                report.leads_updated += 1
                report.recipients_added += len(groups[key])
            else:
                collided[key] = groups[key]
        return {**retry, **await self._recheck(collided, report)}

    async def _append_one(self, lead_id: Any, recipients: list[Mapping[str, Any]]) -> bool:
        emails = [r["email"] for r in recipients]
        push = {"$push": {"lead_data": {"$each": [dict(r) for r in recipients]}}, "$inc": {"progress.version": 1}}
        # A lead nobody holds is rescheduled from step 1 (steps track each recipient, so only the newcomers
        # are pending there) and reopened if it had completed; a stopped lead (a reply) is not.
        reschedule = {
            **push,
            "$set": {"progress.current_step_order": 1},
            "$min": {"progress.next_due_at": self.next_due_at},
            "$unset": {"progress.completed": "", "progress.completed_at": ""},
        }
        free = {"progress.lease_token": None, "progress.stopped": {"$ne": True}}
        result = await self.leads.update_one({"_id": lead_id, "lead_data.email": {"$nin": emails}, **free}, reschedule)
        if result.modified_count == 1:
            return True
        # Held by a dispatcher (its fenced write will fail on the new recipient count and it will come back
        # with the newcomers) or stopped: just add them.
        result = await self.leads.update_one({"_id": lead_id, "lead_data.email": {"$nin": emails}}, push)
        return result.modified_count == 1

    async def _recheck(
        self, groups: dict[str, list[Mapping[str, Any]]], report: ImportReport
    ) -> dict[str, list[Mapping[str, Any]]]:
        """Groups another writer got to first: its addresses are duplicates, the rest are retried."""
        if not groups:
            return {}
        stored = await self.existing_emails(r["email"] for recipients in groups.values() for r in recipients)
        retry: dict[str, list[Mapping[str, Any]]] = {}
        for key, recipients in groups.items():
            fresh = [r for r in recipients if r["email"] not in stored]
            report.duplicates_skipped += len(recipients) - len(fresh)
            if fresh:
                retry[key] = fresh
        return retry

    async def _pretend(self, plan: BatchPlan, report: ImportReport) -> None:
        known = set(await self.lead_ids(plan.groups)) | (self.dry_keys & set(plan.groups))
        for key, recipients in plan.groups.items():
            report.recipients_added += len(recipients)
            if key in known:
                report.leads_updated += 1
            else:
                report.leads_created += 1
        self.dry_keys.update(plan.groups)
        self.dry_emails.update(plan.emails)


def _emails_of(lead: Mapping[str, Any]) -> set[str]:
    data = lead.get("lead_data")
    if not isinstance(data, list):
        return set()
    return {str(r["email"]).lower() for r in data if isinstance(r, Mapping) and isinstance(r.get("email"), str)}
