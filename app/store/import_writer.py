"""Write one import batch: new leads in one unordered insert, plus an append per lead that already exists.

How a batch is written, and why it is safe to repeat and to race:
- one `find` on the recipient_email index returns which of the batch's addresses the campaign already has;
  those rows are duplicates, so importing the same file twice adds nothing;
- the remaining recipients are grouped by lead key and inserted as new leads with one unordered insert; the
  unique (campaign_id, lead_key) index refuses a key that already exists (an earlier batch, an earlier import
  or a concurrent one), and those groups are appended to the existing lead with `update_one` by `_id`;
- the unique (campaign_id, lead_data.email) index refuses a lead, new or extended, that would give an address
  the campaign already has to a second lead: a concurrent import (say with another --group-by) stored it
  first. Those groups are re-checked: a row whose address is now in the lead it was going to is a duplicate,
  one whose address went to another lead is rejected, by row number, naming that lead; the rest are retried;
- each append also requires that none of its addresses is already in the lead (`$nin`; a unique index does not
  look inside one document), so a concurrent import of the same rows cannot push a recipient twice: the
  filter stops matching and the group is re-checked the same way.

Where that index could not be built (stored leads already share an address; `ensure_schema` reports them), the
first check still keeps one import after another apart, but two imports racing are no longer caught.

Queries filter on one indexed field (`lead_data.email`, `lead_key`) and check the campaign in the results:
SecantusDB scans the whole collection for compound filters, which made each batch slower than the last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.domain.importing import BatchPlan, Candidate, ImportReport, lost_race, new_lead_fields
from app.store import schema
from app.store.client import Database
from app.store.documents import id_values

DUPLICATE_KEY = 11000
MAX_CONFLICT_RETRIES = 5

Groups = dict[str, list[Candidate]]


class ImportConflict(RuntimeError):
    """Another writer kept changing the same leads; rerun the import (it is idempotent)."""


class ImportWriter:
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

    async def stored_in(self, emails: Iterable[str]) -> dict[str, str | None]:
        """Which of `emails` the campaign already has (or, in a dry run, would have by now), each with the key of
        the lead that has it (None for a lead without one)."""
        wanted = set(emails)
        if not wanted:
            return {}
        found: dict[str, str | None] = {}
        projection = {"campaign_id": 1, "lead_key": 1, "lead_data.email": 1, "_id": 0}
        async for lead in self.leads.find({"lead_data.email": {"$in": sorted(wanted)}}, projection):
            if self._ours(lead):
                key = lead.get("lead_key")
                found.update(dict.fromkeys(_emails_of(lead) & wanted, key if isinstance(key, str) else None))
        return {**dict.fromkeys(self.dry_emails & wanted), **found}

    async def lead_ids(self, keys: Iterable[str]) -> dict[str, Any]:
        """The `_id` of this campaign's lead for each of `keys` that exists."""
        wanted = sorted(set(keys))
        found: dict[str, Any] = {}
        async for lead in self.leads.find({"lead_key": {"$in": wanted}}, {"campaign_id": 1, "lead_key": 1}):
            if self._ours(lead):
                found[lead["lead_key"]] = lead["_id"]
        return found

    async def write(self, plan: BatchPlan, report: ImportReport) -> None:
        """Insert or extend the plan's leads, counting created and updated leads, added recipients, duplicates
        and the rows another import's leads took first."""
        if not plan.groups:
            return
        if self.dry_run:
            await self._pretend(plan, report)
            return
        pending = dict(plan.groups)
        for _attempt in range(MAX_CONFLICT_RETRIES):
            existing, collided = await self._insert(pending, report)
            missing, refused = await self._append(existing, report)
            pending = {**missing, **await self._recheck({**collided, **refused}, report)}
            if not pending:
                return
        raise ImportConflict(
            f"leads {sorted(pending)[:5]} kept changing while importing; rerun the import (it is idempotent)"
        )

    async def _insert(self, groups: Groups, report: ImportReport) -> tuple[Groups, Groups]:
        """Insert every group as a new lead; return the groups whose lead already exists, and those refused
        because one of their addresses is already in another lead."""
        keys = list(groups)
        docs = [self._new_lead(key, groups[key]) for key in keys]
        refused: dict[int, str | None] = {}
        try:
            await self.leads.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            refused = {e["index"]: _refused_by(e) for e in exc.details.get("writeErrors", [])}
            if None in refused.values():
                raise
        for index, key in enumerate(keys):
            if index not in refused:
                report.leads_created += 1
                report.recipients_added += len(groups[key])
        existing = {keys[i]: groups[keys[i]] for i, why in sorted(refused.items()) if why == "lead_key"}
        collided = {keys[i]: groups[keys[i]] for i, why in sorted(refused.items()) if why == "recipient"}
        return existing, collided

    def _new_lead(self, key: str, candidates: list[Candidate]) -> dict[str, Any]:
        # Spread in file order, a millisecond apart (100,000 leads over 100 s): leads sharing one due time cannot
        # be split by the dispatcher's due window, so on servers without a limit push-down (SecantusDB) every
        # scan would read them all.
        due = self.next_due_at + timedelta(milliseconds=self.created)
        self.created += 1
        return {
            "campaign_id": self.campaign_id,
            "lead_key": key,
            **new_lead_fields(self.now, due),
            "lead_data": [dict(c.recipient) for c in candidates],
        }

    async def _append(self, groups: Groups, report: ImportReport) -> tuple[Groups, Groups]:
        """Append groups to their existing leads; return those whose lead is gone (to insert again), and those
        that could not be appended because one of their addresses arrived meanwhile (to re-check)."""
        if not groups:
            return {}, {}
        ids = await self.lead_ids(groups)
        keys = [key for key in groups if key in ids]
        missing = {key: groups[key] for key in groups if key not in ids}
        # One update per lead (not one bulk write) so each result says whether that lead took its recipients.
        results = await asyncio.gather(*(self._append_one(ids[key], groups[key]) for key in keys))
        refused: Groups = {}
        for key, appended in zip(keys, results, strict=True):
            if appended:
                report.leads_updated += 1
                report.recipients_added += len(groups[key])
            else:
                refused[key] = groups[key]
        return missing, refused

    async def _append_one(self, lead_id: Any, candidates: list[Candidate]) -> bool:
        emails = [c.email for c in candidates]
        push = {
            "$push": {"lead_data": {"$each": [dict(c.recipient) for c in candidates]}},
            "$inc": {"progress.version": 1},
        }
        # A lead nobody holds is rescheduled from step 1 (steps track each recipient, so only the newcomers
        # are pending there) and reopened if it had completed; a stopped lead (a reply) is not.
        reschedule = {
            **push,
            "$set": {"progress.current_step_order": 1},
            "$min": {"progress.next_due_at": self.next_due_at},
            "$unset": {"progress.completed": "", "progress.completed_at": ""},
        }
        free = {"progress.lease_token": None, "progress.stopped": {"$ne": True}}
        try:
            result = await self.leads.update_one(
                {"_id": lead_id, "lead_data.email": {"$nin": emails}, **free}, reschedule
            )
            if result.modified_count == 1:
                return True
            # Held by a dispatcher (its fenced write will fail on the new recipient count and it will come back
            # with the newcomers) or stopped: just add them.
            result = await self.leads.update_one({"_id": lead_id, "lead_data.email": {"$nin": emails}}, push)
        except DuplicateKeyError as exc:
            if _refused_by({"code": exc.code, "errmsg": str(exc), **(exc.details or {})}) != "recipient":
                raise
            return False  # another lead of the campaign has one of these addresses
        return result.modified_count == 1

    async def _recheck(self, groups: Groups, report: ImportReport) -> Groups:
        """Groups whose addresses another writer stored first: a row whose address went to the lead it was going
        to is a duplicate, one whose address went to another lead is rejected; the rest are returned to retry."""
        if not groups:
            return {}
        stored = await self.stored_in(c.email for candidates in groups.values() for c in candidates)
        retry: Groups = {}
        for key, candidates in groups.items():
            for candidate in candidates:
                if candidate.email not in stored:
                    retry.setdefault(key, []).append(candidate)
                    continue
                rejection = lost_race(candidate, stored[candidate.email])
                if rejection is None:
                    report.duplicates_skipped += 1
                else:
                    report.reject(rejection)
        return retry

    async def _pretend(self, plan: BatchPlan, report: ImportReport) -> None:
        stored = set(await self.lead_ids(plan.groups))
        known = stored | (self.dry_keys & set(plan.groups))
        report.preview.add(plan.groups, stored)
        for key, candidates in plan.groups.items():
            report.recipients_added += len(candidates)
            if key in known:
                report.leads_updated += 1
            else:
                report.leads_created += 1
        self.dry_keys.update(plan.groups)
        self.dry_emails.update(plan.emails)


def _refused_by(error: Mapping[str, Any]) -> str | None:
    """Which unique index refused a write: `lead_key` (the lead exists), `recipient` (an address is taken in
    another lead), or None when the error is not one of these conflicts."""
    if error.get("code") != DUPLICATE_KEY:
        return None
    pattern = error.get("keyPattern")
    # The key pattern names the index's fields; servers that omit it still print them in the message.
    fields = " ".join(pattern) if isinstance(pattern, Mapping) else str(error.get("errmsg", ""))
    if "lead_data.email" in fields:
        return "recipient"
    if "lead_key" in fields:
        return "lead_key"
    return None


def _emails_of(lead: Mapping[str, Any]) -> set[str]:
    data = lead.get("lead_data")
    if not isinstance(data, list):
        return set()
    return {str(r["email"]).lower() for r in data if isinstance(r, Mapping) and isinstance(r.get("email"), str)}
