"""`import-leads` against the database: read the file in bounded batches, validate each, skip the addresses the
campaign already has, and hand the rest to `ImportWriter` (`import_writer.py` says how a batch is written and
why that is safe to repeat and to race).

The next batch is read and validated while one is being written, so the file's parsing overlaps the server's
work; its duplicate check waits for that write, so it sees everything the batch before stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.domain.importing import (
    DEFAULT_GROUP_COLUMNS,
    BatchPlan,
    Candidate,
    ImportReport,
    RawRow,
    Rejection,
    RowStream,
    batched,
    normalize_column,
    plan_batch,
    to_candidate,
)
from app.logging import get_logger
from app.store import schema
from app.store.client import Database
from app.store.documents import get_doc, id_filter
from app.store.import_writer import DUPLICATE_KEY as DUPLICATE_KEY
from app.store.import_writer import MAX_CONFLICT_RETRIES as MAX_CONFLICT_RETRIES
from app.store.import_writer import Groups as Groups
from app.store.import_writer import ImportConflict as ImportConflict
from app.store.import_writer import ImportWriter

DEFAULT_BATCH_SIZE = 1000
# The writer's name before it had a module of its own (tests patch its methods through it).
_Writer = ImportWriter


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
    writer = ImportWriter(db, str(campaign["_id"]), now, await first_step_due(db, campaign, now), dry_run)
    report = ImportReport(writer.campaign_id, stream.format, dry_run, keep_rejections=keep_rejections)
    report.encoding, report.delimiter = stream.encoding, stream.delimiter
    report.group_by = (group_by,) if group_by else DEFAULT_GROUP_COLUMNS
    log = get_logger(campaign_id=writer.campaign_id)
    writing: asyncio.Future[None] | None = None
    try:
        for number, rows in enumerate(batched(stream.rows, batch_size), start=1):
            # This batch is read and validated while the previous one is written: the server works meanwhile.
            checked = _validate(rows, group_by)
            if writing is not None:
                await writing
            checked.count(report)
            plan = plan_batch(checked.candidates, await writer.stored_in(c.email for c in checked.candidates))
            report.duplicates_skipped += plan.duplicates
            writing = asyncio.ensure_future(_write(writer, plan, report, log.bind(batch=number)))
            await asyncio.sleep(0)  # the write sends its first request before the next batch is read
        if writing is not None:
            await writing
    finally:
        if writing is not None and not writing.done():
            await asyncio.wait({writing})  # a failure reading the next batch must not cut a write short
    report.columns = stream.mappings
    report.ignored_columns |= {normalize_column(m.source) for m in report.columns if m.how == "reserved"}
    summary = {k: v for k, v in report.to_dict().items() if k not in ("rejections", "columns", "preview")}
    log.info("import.finished", **summary)
    return report


async def _write(writer: ImportWriter, plan: BatchPlan, report: ImportReport, log: Any) -> None:
    await writer.write(plan, report)
    log.debug("import.batch", rows_read=report.rows_read, leads_created=report.leads_created)


@dataclass(frozen=True)
class _Checked:
    """One batch validated: its rows as candidates, and what the report learns from it."""

    rows: int
    candidates: list[Candidate]
    rejections: list[Rejection]

    def count(self, report: ImportReport) -> None:
        report.rows_read += self.rows
        for rejection in self.rejections:
            report.reject(rejection)


def _validate(rows: list[RawRow | Rejection], group_by: str | None) -> _Checked:
    checked = _Checked(len(rows), [], [])
    for row in rows:
        outcome = row if isinstance(row, Rejection) else to_candidate(row, group_by)
        if isinstance(outcome, Rejection):
            checked.rejections.append(outcome)
        else:
            checked.candidates.append(outcome)
    return checked
