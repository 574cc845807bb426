"""Collection names (seed 001 plus ours) and the indexes every feature relies on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from app.domain.collections import (
    ACCOUNT_USAGE as ACCOUNT_USAGE,
)
from app.domain.collections import (
    ACTIVITIES as ACTIVITIES,
)
from app.domain.collections import (
    ALL_COLLECTIONS as ALL_COLLECTIONS,
)
from app.domain.collections import (
    CAMPAIGN_LEADS as CAMPAIGN_LEADS,
)
from app.domain.collections import (  # re-exported: one list of names
    CAMPAIGNS as CAMPAIGNS,
)
from app.domain.collections import (
    DOMAIN_LIMITS as DOMAIN_LIMITS,
)
from app.domain.collections import (
    DOMAIN_USAGE as DOMAIN_USAGE,
)
from app.domain.collections import (
    EMAIL_ACCOUNTS as EMAIL_ACCOUNTS,
)
from app.domain.collections import (
    EMAIL_CAMPAIGN_SETTINGS as EMAIL_CAMPAIGN_SETTINGS,
)
from app.domain.collections import (
    EMAIL_GENERAL_SETTINGS as EMAIL_GENERAL_SETTINGS,
)
from app.domain.collections import (
    INBOUND as INBOUND,
)
from app.domain.collections import (
    INBOUND_SYNC as INBOUND_SYNC,
)
from app.domain.collections import (
    JOB_EXECUTIONS as JOB_EXECUTIONS,
)
from app.domain.collections import (
    JOBS as JOBS,
)
from app.domain.collections import (
    SENDS as SENDS,
)
from app.domain.collections import (
    SEQUENCE_STEPS as SEQUENCE_STEPS,
)
from app.domain.collections import (
    SUPPRESSIONS as SUPPRESSIONS,
)
from app.domain.collections import (
    TEMPLATES as TEMPLATES,
)
from app.logging import get_logger
from app.store.api_tokens import API_TOKENS
from app.store.audit import AUDIT
from app.store.login_attempts import LOGIN_ATTEMPTS
from app.store.sessions import SESSIONS
from app.store.users import USERS

CAMPAIGN_RECIPIENT_INDEX = "campaign_recipient"
DUPLICATE_KEY = 11000
DUPLICATES_REPORTED = 20
# What an operator does about a unique index the stored data breaks.
_FIXES = {
    CAMPAIGN_RECIPIENT_INDEX: "each address listed is in several leads of one campaign: remove it from all but "
    "one of them, then run any command again; until then imports racing on that campaign can repeat an address"
}

INDEXES: dict[str, list[IndexModel]] = {
    # Lists of sequences leave out the (many) campaigns of job executions by an equality match on `kind`, and
    # the paused/active reads (metrics, report, dashboard) go by `status`; neither may be sparse, since most
    # campaigns have no `kind`.
    CAMPAIGNS: [IndexModel([("kind", ASCENDING)], name="kind"), IndexModel([("status", ASCENDING)], name="status")],
    CAMPAIGN_LEADS: [
        # Due leads of a campaign, oldest first: the dispatcher's main query. A held lead's due time is its lease
        # expiry, so the same query finds the leads of a crashed dispatcher.
        IndexModel([("campaign_id", ASCENDING), ("progress.next_due_at", ASCENDING)], name="campaign_due"),
        # Import idempotency: one lead per grouping key per campaign.
        IndexModel(
            [("campaign_id", ASCENDING), ("lead_key", ASCENDING)],
            name="campaign_lead_key",
            unique=True,
            partialFilterExpression={"lead_key": {"$type": "string"}},
        ),
        IndexModel([("lead_data.email", ASCENDING)], name="recipient_email"),
        # One address in at most one lead per campaign, so two imports racing with different groupings cannot
        # both add it (the second write is refused; see lead_import). Leads without addresses are not indexed.
        IndexModel(
            [("campaign_id", ASCENDING), ("lead_data.email", ASCENDING)],
            name=CAMPAIGN_RECIPIENT_INDEX,
            unique=True,
            partialFilterExpression={"lead_data.email": {"$type": "string"}},
        ),
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
        # A day's activities across campaigns, for the daily report (13x faster on 100,000 activities).
        IndexModel([("created_at", ASCENDING)], name="created_at"),
        # Recent activities newest first, paged by (created_at, _id): the API's and dashboard's lists.
        IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)], name="recent"),
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
    INBOUND: [
        IndexModel([("state", ASCENDING), ("retry_at", ASCENDING)], name="state_retry"),
        IndexModel([("account_id", ASCENDING), ("read_at", ASCENDING)], name="account_read"),
    ],
    INBOUND_SYNC: [IndexModel([("kind", ASCENDING), ("account_id", ASCENDING)], name="kind_account")],
    DOMAIN_LIMITS: [IndexModel([("domain", ASCENDING)], name="domain", unique=True)],
    # The per-domain throttle's conditional upsert: one document per (bucket, UTC day), so a full bucket's
    # upsert is refused as a duplicate instead of inserting a second counter.
    DOMAIN_USAGE: [IndexModel([("bucket", ASCENDING), ("day", ASCENDING)], name="bucket_day", unique=True)],
    # Who may do what: a request's token or session is found by its hash; expired sessions and old login
    # failures are removed by TTL (reads check the time too, since the TTL monitor runs only now and then).
    API_TOKENS: [
        IndexModel([("hash", ASCENDING)], name="hash", unique=True),
        IndexModel([("name", ASCENDING)], name="name", unique=True),
    ],
    USERS: [IndexModel([("email", ASCENDING)], name="email", unique=True)],
    SESSIONS: [
        IndexModel([("hash", ASCENDING)], name="hash", unique=True),
        IndexModel([("user_id", ASCENDING)], name="user_id"),
        IndexModel([("expires_at", ASCENDING)], name="expires_at_ttl", expireAfterSeconds=0),
    ],
    LOGIN_ATTEMPTS: [
        IndexModel([("key", ASCENDING), ("at", ASCENDING)], name="key_at"),
        IndexModel([("expires_at", ASCENDING)], name="expires_at_ttl", expireAfterSeconds=0),
    ],
    AUDIT: [IndexModel([("action", ASCENDING)], name="action"), IndexModel([("actor.name", ASCENDING)], name="actor")],
    # Due jobs are claimed by next run time; a job's executions are listed newest first.
    JOBS: [IndexModel([("next_run_at", ASCENDING)], name="next_run_at", sparse=True)],
    JOB_EXECUTIONS: [
        # One execution per scheduled run, however many dispatchers saw it due.
        IndexModel([("job_id", ASCENDING), ("scheduled_for", ASCENDING)], name="job_run", unique=True),
        IndexModel([("state", ASCENDING)], name="state"),
        # Ended executions past their retention that still hold their recipients (job_retention.prunable).
        IndexModel([("pruned_at", ASCENDING), ("finished_at", ASCENDING)], name="prune"),
    ],
}


# Indexes earlier versions built that no query needs: every index costs each write to its collection (a lead is
# written twice per send), so `ensure_schema` drops these where it finds them with these keys. `due` served a due
# query across campaigns that the dispatcher no longer makes (it asks per campaign, on campaign_due), and
# `lease_until` a reclaim that the due query does (docs/PERFORMANCE.md, "What changed on 2026-12-02").
RETIRED_INDEXES: dict[str, dict[str, KeyPattern]] = {
    CAMPAIGN_LEADS: {"due": (("progress.next_due_at", 1),), "lease_until": (("progress.lease_until", 1),)},
}
INDEX_NOT_FOUND = 27


@dataclass(frozen=True)
class UnbuiltIndex:
    """A unique index `ensure_schema` could not build because stored documents already break it."""

    collection: str
    name: str
    duplicates: tuple[Mapping[str, Any], ...]  # examples: the duplicated key and the `_id`s that share it

    def __str__(self) -> str:
        return f"{self.collection}.{self.name}: {len(self.duplicates)} duplicated keys, e.g. {self.duplicates[:3]}"


async def ensure_schema(db: AsyncDatabase[dict[str, Any]]) -> list[UnbuiltIndex]:
    """Create every collection and index Outbound needs. Safe to run any number of times, concurrently.

    A unique index that existing documents break (say one address in two leads of a campaign, from before the
    campaign_recipient index) is not built, and everything else is: the command goes on, a warning names the
    duplicates and what to do, and the index is tried again by every later run until the data allows it. The
    indexes not built are returned.
    """
    existing = set(await db.list_collection_names())
    for name in ALL_COLLECTIONS:
        if name not in existing:
            try:
                await db.create_collection(name)
            except Exception as exc:  # another process created it first
                if "already exists" not in str(exc).lower() and getattr(exc, "code", None) != 48:
                    raise
    unbuilt: list[UnbuiltIndex] = []
    for name, indexes in INDEXES.items():
        try:
            await db[name].create_indexes(indexes)
        except OperationFailure as exc:
            if exc.code != DUPLICATE_KEY:
                raise
            unbuilt += await _create_one_by_one(db, name, indexes)
    await _drop_retired(db)
    return unbuilt


async def _drop_retired(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Drop the `RETIRED_INDEXES` found under their names with their keys (another with that name is kept)."""
    for collection, retired in RETIRED_INDEXES.items():
        found = {index["name"]: key_pattern(index["key"]) async for index in await db[collection].list_indexes()}
        for name, keys in retired.items():
            if found.get(name) != keys:
                continue
            try:
                await db[collection].drop_index(name)
            except OperationFailure as exc:
                if exc.code != INDEX_NOT_FOUND:  # another process dropped it first
                    raise
            else:
                get_logger().info("schema.index_dropped", collection=collection, index=name, reason="retired")


async def _create_one_by_one(
    db: AsyncDatabase[dict[str, Any]], collection: str, indexes: list[IndexModel]
) -> list[UnbuiltIndex]:
    """Create each index on its own (one refused by the data must not hold back the others); report the refused."""
    unbuilt: list[UnbuiltIndex] = []
    for index in indexes:
        try:
            await db[collection].create_indexes([index])
        except OperationFailure as exc:
            if exc.code != DUPLICATE_KEY:
                raise
            name = index.document["name"]
            found = await _duplicates(db, collection, name, exc)
            unbuilt.append(UnbuiltIndex(collection, name, found))
            get_logger().warning(
                "schema.unique_index_not_built",
                collection=collection,
                index=name,
                duplicates=[_printable(d) for d in found],
                action=_FIXES.get(name, "remove the duplicates listed, then run any command again"),
            )
    return unbuilt


def _printable(duplicate: Mapping[str, Any]) -> dict[str, Any]:
    return {k: [str(i) for i in v] if isinstance(v, list) else str(v) for k, v in duplicate.items()}


async def _duplicates(
    db: AsyncDatabase[dict[str, Any]], collection: str, name: str, exc: OperationFailure
) -> tuple[Mapping[str, Any], ...]:
    """Examples of what breaks the index: for campaign_recipient every duplicated (campaign, address) up to
    DUPLICATES_REPORTED with its leads; for another index the key the server named."""
    if name != CAMPAIGN_RECIPIENT_INDEX:
        key = (exc.details or {}).get("keyValue")
        return (dict(key),) if isinstance(key, Mapping) else ()
    pipeline: list[dict[str, Any]] = [
        {"$match": {"lead_data.email": {"$type": "string"}}},
        {"$unwind": "$lead_data"},
        {"$match": {"lead_data.email": {"$type": "string"}}},
        {
            "$group": {
                "_id": {"campaign_id": "$campaign_id", "email": "$lead_data.email"},
                "leads": {"$addToSet": "$_id"},
            }
        },
        {"$match": {"leads.1": {"$exists": True}}},
        {"$limit": DUPLICATES_REPORTED},
    ]
    found = await (await db[collection].aggregate(pipeline)).to_list()
    return tuple({**doc["_id"], "leads": sorted(doc["leads"], key=str)} for doc in found)


# An index's keys in order, each with its kind (1, -1, "text", ...), as `list_indexes()` reports them.
KeyPattern = tuple[tuple[str, int | str], ...]


def key_pattern(keys: Mapping[str, Any]) -> KeyPattern:
    """An index's keys as `KeyPattern` (servers may return 1.0 for 1; special kinds stay strings)."""
    return tuple((field, kind if isinstance(kind, str) else int(kind)) for field, kind in keys.items())
