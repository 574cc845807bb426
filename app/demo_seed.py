"""Seeding the demo data: checked with the models real data goes through, then written idempotently.

Configuration is upserted by `_id` (so a second run restores it and leaves the same data), leads are only
inserted when absent (so a second run does not reset their progress). A reset deletes demo ids only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pymongo import UpdateOne

from app.demo_data import DEMO_SMTP_HOST, DEMO_SMTP_PORT, DemoData, build_demo
from app.domain import models
from app.store import schema
from app.store.client import Database

VALIDATORS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    schema.CAMPAIGNS: models.Campaign.from_doc,
    schema.SEQUENCE_STEPS: models.SequenceStep.from_doc,
    schema.TEMPLATES: models.Template.from_doc,
    schema.EMAIL_ACCOUNTS: models.EmailAccount.from_doc,
    schema.EMAIL_GENERAL_SETTINGS: models.GeneralSettings.from_doc,
    schema.EMAIL_CAMPAIGN_SETTINGS: models.AccountCampaignSettings.from_doc,
    schema.CAMPAIGN_LEADS: models.Lead.from_doc,
}
CONFIG_COLLECTIONS = tuple(name for name in VALIDATORS if name != schema.CAMPAIGN_LEADS)


def validate_demo(data: DemoData) -> int:
    """Check every document with the models real data goes through; raise InvalidDocument; return the count."""
    checked = 0
    for collection, docs in data.documents.items():
        for doc in docs:
            VALIDATORS[collection](doc)
            checked += 1
    return checked


async def reset_demo(db: Database, data: DemoData) -> dict[str, int]:
    """Delete the demo's documents and everything recorded about them (leads, sends, activities, usage).

    Only demo ids are touched, so real campaigns and accounts in the same database survive a reset.
    """
    campaign_ids = [str(i) for i in data.ids(schema.CAMPAIGNS)]
    account_ids = [str(i) for i in data.ids(schema.EMAIL_ACCOUNTS)]
    filters: dict[str, dict[str, Any]] = {name: {"_id": {"$in": data.ids(name)}} for name in CONFIG_COLLECTIONS}
    filters[schema.CAMPAIGN_LEADS] = {"campaign_id": {"$in": campaign_ids}}
    filters[schema.ACTIVITIES] = {"campaign_id": {"$in": campaign_ids}}
    filters[schema.SENDS] = {"campaign_id": {"$in": campaign_ids}}
    filters[schema.ACCOUNT_USAGE] = {"account_id": {"$in": account_ids}}
    # What the demo inbox read and the addresses its prospects had suppressed, so a new run starts afresh.
    filters[schema.INBOUND] = {"account_id": {"$in": account_ids}}
    filters[schema.INBOUND_SYNC] = {"account_id": {"$in": account_ids}}
    emails = sorted(
        {str(r["email"]).lower() for lead in data.documents.get(schema.CAMPAIGN_LEADS, []) for r in lead["lead_data"]}
    )
    filters[schema.SUPPRESSIONS] = {"value": {"$in": emails}}
    deleted: dict[str, int] = {}
    for name, flt in filters.items():
        deleted[name] = (await db[name].delete_many(flt)).deleted_count
    return deleted


async def write_demo(db: Database, data: DemoData) -> dict[str, int]:
    """Upsert configuration by `_id` and insert absent leads; return how many documents were new per collection."""
    created: dict[str, int] = {}
    for name, docs in data.documents.items():
        ops = [_upsert(name, doc) for doc in docs]
        result = await db[name].bulk_write(ops, ordered=True)
        created[name] = result.upserted_count
    return created


def _upsert(collection: str, doc: Mapping[str, Any]) -> UpdateOne:
    body = {k: v for k, v in doc.items() if k != "_id"}
    if collection == schema.CAMPAIGN_LEADS:
        # A lead's progress belongs to the dispatcher: seeding again must not send anyone their step 1 twice.
        return UpdateOne({"_id": doc["_id"]}, {"$setOnInsert": body}, upsert=True)
    kept = {"created_at"} & set(body)
    update: dict[str, Any] = {"$set": {k: v for k, v in body.items() if k not in kept}}
    if kept:
        update["$setOnInsert"] = {k: body[k] for k in kept}
    return UpdateOne({"_id": doc["_id"]}, update, upsert=True)


async def seed_demo(
    db: Database, now: datetime, *, smtp_port: int = DEMO_SMTP_PORT, reset: bool = False
) -> dict[str, Any]:
    """Validate and write the demo data (after deleting the old demo data when `reset`); return a summary."""
    data = build_demo(now, smtp_port)
    validate_demo(data)
    deleted = await reset_demo(db, data) if reset else {}
    created = await write_demo(db, data)
    return summary(data, created, deleted, smtp_port)


def summary(data: DemoData, created: dict[str, int], deleted: dict[str, int], smtp_port: int) -> dict[str, Any]:
    """What the demo holds, for people and for --json."""
    docs = data.documents
    steps: dict[str, int] = {}
    for step in docs[schema.SEQUENCE_STEPS]:
        steps[step["sequence_id"]] = steps.get(step["sequence_id"], 0) + 1
    leads: dict[str, list[int]] = {}
    for lead in docs[schema.CAMPAIGN_LEADS]:
        leads.setdefault(lead["campaign_id"], []).append(len(lead["lead_data"]))
    return {
        "smtp": f"{DEMO_SMTP_HOST}:{smtp_port}",
        "campaigns": [
            {
                "id": str(c["_id"]),
                "name": c["name"],
                "status": c["status"],
                "steps": steps.get(c["sequence_id"], 0),
                "leads": len(leads.get(str(c["_id"]), [])),
                "recipients": sum(leads.get(str(c["_id"]), [])),
            }
            for c in docs[schema.CAMPAIGNS]
        ],
        "accounts": [{"id": str(a["_id"]), "email": a["email"]} for a in docs[schema.EMAIL_ACCOUNTS]],
        "documents": {name: len(items) for name, items in docs.items()},
        "created": created,
        "deleted": deleted,
    }
