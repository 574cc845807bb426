"""Inbound records and inbox sync state.

`inbound`: one record per inbound message read, keyed by account and Message-ID (or folder, UIDVALIDITY and
UID for a message without one), so a message read twice is recorded once; with its class, the send it
answers and the state of its answers (`applied`, `deferred` while a dispatcher holds the lead, `ignored`).
Answers from the one-click link that had to wait are kept here too (`link:<send key>`).

`inbound_sync`: per account (`account:<id>`) the sync lease (one dispatcher reads a mailbox at a time),
when to read it next and the failures in a row; per folder (`folder:<id>:<folder>`) the UIDVALIDITY and the
last UID read under it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.store.documents import Collection

APPLIED = "applied"
DEFERRED = "deferred"
IGNORED = "ignored"
DEFERRED_RETRY = timedelta(seconds=15)


def message_key(account_id: str, message_id: str | None, folder: str, uidvalidity: int, uid: int) -> str:
    """The record id of one inbound message of one account."""
    if message_id:
        return f"msg:{account_id}:{message_id}"
    return f"uid:{account_id}:{folder}:{uidvalidity}:{uid}"


async def record(coll: Collection, doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """Insert a message's record; None when new, else the record already there (read before, maybe unfinished)."""
    try:
        await coll.insert_one(dict(doc))
    except DuplicateKeyError:
        return await coll.find_one({"_id": doc["_id"]})
    return None


async def settle(coll: Collection, key: str, state: str, now: datetime) -> None:
    """Mark a record's answers applied or ignored (no more retries)."""
    await coll.update_one({"_id": key}, {"$set": {"state": state, "settled_at": now}, "$unset": {"retry_at": ""}})


async def defer(coll: Collection, key: str, answers: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """Keep answers that could not be written yet (the lead was held); `deferred_due` returns them again."""
    await coll.update_one(
        {"_id": key},
        {
            "$set": {"state": DEFERRED, "answers": list(answers), "retry_at": now + DEFERRED_RETRY},
            "$setOnInsert": {"read_at": now},
            "$inc": {"attempts": 1},
        },
        upsert=True,
    )


async def deferred_due(coll: Collection, now: datetime, limit: int = 200) -> list[dict[str, Any]]:
    """Records whose answers wait to be applied again, oldest first."""
    cursor = coll.find({"state": DEFERRED, "retry_at": {"$lte": now}}, sort=[("retry_at", 1)], limit=limit)
    return [doc async for doc in cursor]


# --- sync state -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncLease:
    """This process reads `account_id`'s mailbox until `until`; writes of its progress carry `token`."""

    account_id: str
    owner: str
    token: str
    until: datetime


def _account_key(account_id: str) -> str:
    return f"account:{account_id}"


def _folder_key(account_id: str, folder: str) -> str:
    return f"folder:{account_id}:{folder}"


async def take(
    coll: Collection, account_id: str, owner: str, now: datetime, seconds: float, *, due_only: bool = True
) -> SyncLease | None:
    """Take the account's sync lease when it is free (and, with `due_only`, its next sync is due); else None."""
    until = now + timedelta(seconds=seconds)
    token = uuid.uuid4().hex
    free: list[dict[str, Any]] = [
        {"$or": [{"lease_until": {"$exists": False}}, {"lease_until": {"$lte": now}}]},
    ]
    if due_only:
        free.append({"$or": [{"next_sync_at": {"$exists": False}}, {"next_sync_at": {"$lte": now}}]})
    try:
        doc = await coll.find_one_and_update(
            {"_id": _account_key(account_id), "$and": free},
            {
                "$set": {"lease_owner": owner, "lease_token": token, "lease_until": until, "started_at": now},
                "$setOnInsert": {"account_id": account_id, "kind": "account"},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:
        return None  # the document exists and another process holds it (or it is not due)
    if doc is None or doc.get("lease_token") != token:
        return None
    return SyncLease(account_id, owner, token, until)


async def renew(coll: Collection, lease: SyncLease, now: datetime, seconds: float) -> SyncLease | None:
    """Extend the lease for a long read; None when it was lost."""
    until = now + timedelta(seconds=seconds)
    result = await coll.update_one(
        {"_id": _account_key(lease.account_id), "lease_token": lease.token}, {"$set": {"lease_until": until}}
    )
    return SyncLease(lease.account_id, lease.owner, lease.token, until) if result.matched_count == 1 else None


async def finish(
    coll: Collection, lease: SyncLease, now: datetime, next_sync_at: datetime, error: str | None = None
) -> None:
    """Give the lease back; record success (failures reset) or the error (failures counted)."""
    update: dict[str, Any] = {
        "$set": {"next_sync_at": next_sync_at, "finished_at": now},
        "$unset": {"lease_owner": "", "lease_token": "", "lease_until": ""},
    }
    if error is None:
        update["$set"].update({"failures": 0, "last_synced_at": now})
        update["$unset"]["last_error"] = ""
    else:
        update["$set"].update({"last_error": error, "last_error_at": now})
        update["$inc"] = {"failures": 1}
    await coll.update_one({"_id": _account_key(lease.account_id), "lease_token": lease.token}, update)


async def account_state(coll: Collection, account_id: str) -> dict[str, Any]:
    """The account's sync state (empty when never synced)."""
    return await coll.find_one({"_id": _account_key(account_id)}) or {}


async def account_states(coll: Collection) -> dict[str, dict[str, Any]]:
    """Every account's sync state, by account id."""
    return {str(doc.get("account_id")): doc async for doc in coll.find({"kind": "account"})}


@dataclass(frozen=True)
class FolderProgress:
    """Where reading one folder stands: the UIDVALIDITY the last UID belongs to."""

    uidvalidity: int | None
    last_uid: int


async def folder_progress(coll: Collection, account_id: str, folder: str) -> FolderProgress:
    """The folder's progress (nothing read yet: UIDVALIDITY None, last UID 0)."""
    doc = await coll.find_one({"_id": _folder_key(account_id, folder)}) or {}
    validity, last = doc.get("uidvalidity"), doc.get("last_uid")
    return FolderProgress(validity if isinstance(validity, int) else None, last if isinstance(last, int) else 0)


async def save_progress(
    coll: Collection, lease: SyncLease, folder: str, progress: FolderProgress, now: datetime
) -> bool:
    """Record the last UID read, only while the lease is ours (False: lost; another reader took over)."""
    held = await coll.count_documents(
        {"_id": _account_key(lease.account_id), "lease_token": lease.token, "lease_until": {"$gt": now}}
    )
    if not held:
        return False
    await coll.update_one(
        {"_id": _folder_key(lease.account_id, folder)},
        {
            "$set": {"uidvalidity": progress.uidvalidity, "last_uid": progress.last_uid, "updated_at": now},
            "$setOnInsert": {"account_id": lease.account_id, "folder": folder, "kind": "folder"},
        },
        upsert=True,
    )
    return True
