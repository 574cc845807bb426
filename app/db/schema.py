"""Collection names (seed 001 plus ours) and the indexes every feature relies on."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

# Seed 001's collections.
CAMPAIGNS = "campaigns"
CAMPAIGN_LEADS = "campaign_leads"
SEQUENCE_STEPS = "sequence_steps"
TEMPLATES = "templates"
EMAIL_ACCOUNTS = "email_accounts"
EMAIL_GENERAL_SETTINGS = "email_general_settings"
EMAIL_CAMPAIGN_SETTINGS = "email_campaign_settings"
ACTIVITIES = "activities"
# Ours.
SENDS = "sends"
ACCOUNT_USAGE = "account_usage"
SUPPRESSIONS = "suppressions"

ALL_COLLECTIONS = (
    CAMPAIGNS,
    CAMPAIGN_LEADS,
    SEQUENCE_STEPS,
    TEMPLATES,
    EMAIL_ACCOUNTS,
    EMAIL_GENERAL_SETTINGS,
    EMAIL_CAMPAIGN_SETTINGS,
    ACTIVITIES,
    SENDS,
    ACCOUNT_USAGE,
    SUPPRESSIONS,
)

INDEXES: dict[str, list[IndexModel]] = {
    CAMPAIGN_LEADS: [
        # Due leads, oldest first: the dispatcher's main query.
        IndexModel([("progress.next_due_at", ASCENDING)], name="due"),
        IndexModel([("campaign_id", ASCENDING), ("progress.next_due_at", ASCENDING)], name="campaign_due"),
        # Expired leases are found and taken over by another dispatcher.
        IndexModel([("progress.lease_until", ASCENDING)], name="lease_until", sparse=True),
        # Import idempotency: one lead per grouping key per campaign.
        IndexModel(
            [("campaign_id", ASCENDING), ("lead_key", ASCENDING)],
            name="campaign_lead_key",
            unique=True,
            partialFilterExpression={"lead_key": {"$type": "string"}},
        ),
        IndexModel([("lead_data.email", ASCENDING)], name="recipient_email"),
        # Import finds a batch's existing leads by key alone: SecantusDB scans the collection for the compound
        # filter above, so the import filters on this single field and checks the campaign in the results.
        IndexModel([("lead_key", ASCENDING)], name="lead_key", sparse=True),
    ],
    SEQUENCE_STEPS: [
        IndexModel([("sequence_id", ASCENDING), ("step_order", ASCENDING)], name="sequence_step", unique=True),
    ],
    EMAIL_CAMPAIGN_SETTINGS: [IndexModel([("email_id", ASCENDING)], name="email_id")],
    EMAIL_GENERAL_SETTINGS: [IndexModel([("email_id", ASCENDING)], name="email_id")],
    ACTIVITIES: [
        IndexModel([("lead_id", ASCENDING), ("created_at", ASCENDING)], name="lead_time"),
        IndexModel([("campaign_id", ASCENDING), ("created_at", ASCENDING)], name="campaign_time"),
        IndexModel([("account_id", ASCENDING), ("created_at", ASCENDING)], name="account_time"),
    ],
    SENDS: [
        # The idempotency key: one send per (lead, step, recipient index).
        IndexModel(
            [("lead_id", ASCENDING), ("step_order", ASCENDING), ("recipient_index", ASCENDING)],
            name="send_key",
            unique=True,
        ),
        IndexModel([("state", ASCENDING), ("updated_at", ASCENDING)], name="state"),
        IndexModel([("message_id", ASCENDING)], name="message_id", unique=True),
    ],
    ACCOUNT_USAGE: [
        IndexModel([("account_id", ASCENDING), ("day", ASCENDING)], name="account_day", unique=True),
    ],
    SUPPRESSIONS: [IndexModel([("value", ASCENDING)], name="value", unique=True)],
}


async def ensure_schema(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Create every collection and index Outbound needs. Safe to run any number of times, concurrently."""
    existing = set(await db.list_collection_names())
    for name in ALL_COLLECTIONS:
        if name not in existing:
            try:
                await db.create_collection(name)
            except Exception as exc:  # another process created it first
                if "already exists" not in str(exc).lower() and getattr(exc, "code", None) != 48:
                    raise
    for name, indexes in INDEXES.items():
        await db[name].create_indexes(indexes)
