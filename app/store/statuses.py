"""`update-lead-statuses`: apply `app.domain.statuses.derive_update` to the leads no dispatcher holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING

from app.domain.models import InvalidDocument, Lead
from app.domain.statuses import derive_update
from app.logging import get_logger
from app.store import schema
from app.store.client import Database


async def rebuild_statuses(db: Database, flt: Mapping[str, Any]) -> dict[str, int]:
    """Apply `derive_update` to every lead matching `flt` that no dispatcher holds; return counts."""
    counts = {"examined": 0, "changed": 0, "unchanged": 0, "leased": 0, "invalid": 0}
    leads, activities = db[schema.CAMPAIGN_LEADS], db[schema.ACTIVITIES]
    log = get_logger()
    async for doc in leads.find(dict(flt), sort=[("_id", ASCENDING)]):
        counts["examined"] += 1
        try:
            lead = Lead.from_doc(doc)
        except InvalidDocument as exc:
            counts["invalid"] += 1
            log.warning("store.invalid_document", collection=exc.collection, doc_id=str(exc.doc_id), reason=str(exc))
            continue
        if lead.progress.lease_token:
            counts["leased"] += 1
            continue
        found = [a async for a in activities.find({"lead_id": lead.id})]
        values = derive_update(lead, found)
        if not values:
            counts["unchanged"] += 1
            continue
        result = await leads.update_one({"_id": lead.id, "progress.lease_token": None}, {"$set": values})
        counts["changed" if result.modified_count else "leased"] += 1
        log.info("worker.status_updated", lead_id=str(lead.id), fields=sorted(values))
    return counts
