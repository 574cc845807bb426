"""API tokens: only a SHA-256 of each token and a short prefix for display are stored, never the token itself.

Tokens are 32 random bytes, so a plain hash is as good as a slow one: nobody can guess their way back from it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from app.domain.collections import API_TOKENS as API_TOKENS
from app.store.client import Database
from app.store.documents import id_values

TOKEN_PREFIX = "obt_"
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6  # enough to tell tokens apart in a list, far too little to guess
# last_used_at is a hint for the operator, not a log: one write a minute per token is plenty.
TOUCH_EVERY = timedelta(minutes=1)
# Never read back: the hash stays in the database, for `find_active` to compare against.
_PUBLIC = {"hash": 0}


class DuplicateTokenName(ValueError):
    """A token of that name exists already (revoked or not: names identify tokens in the audit log)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a token named {name!r} exists already; choose another --name (see `outbound token list`)")
        self.name = name


@dataclass(frozen=True)
class ApiToken:
    """A token as anyone may see it: everything but the secret and its hash."""

    id: str
    name: str
    role: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The token for --json and the API (times in ISO 8601)."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "prefix": self.prefix,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def new_token() -> str:
    """A fresh secret token: `obt_` and 32 random bytes, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token and compared on each request."""
    return hashlib.sha256(token.encode()).hexdigest()


def _record(doc: dict[str, Any]) -> ApiToken:
    return ApiToken(
        id=str(doc["_id"]),
        name=str(doc["name"]),
        role=str(doc["role"]),
        prefix=str(doc.get("prefix", "")),
        created_at=doc["created_at"],
        last_used_at=doc.get("last_used_at"),
        revoked_at=doc.get("revoked_at"),
    )


async def create(db: Database, name: str, role: str, now: datetime) -> tuple[ApiToken, str]:
    """Store a new token named `name` with `role`; the record and the secret token (shown once, then lost)."""
    token = new_token()
    doc = {
        "_id": ObjectId(),
        "name": name,
        "role": role,
        "prefix": token[:DISPLAY_PREFIX_LENGTH],
        "hash": token_hash(token),
        "created_at": now,
        "last_used_at": None,
        "revoked_at": None,
    }
    try:
        await db[API_TOKENS].insert_one(doc)
    except DuplicateKeyError:
        raise DuplicateTokenName(name) from None
    return _record(doc), token


async def find_active(db: Database, token: str) -> ApiToken | None:
    """The unrevoked token whose hash matches `token`; None for an unknown or revoked one."""
    doc = await db[API_TOKENS].find_one({"hash": token_hash(token), "revoked_at": None}, projection=_PUBLIC)
    return _record(doc) if doc else None


async def touch(db: Database, token_id: str, now: datetime) -> None:
    """Record that the token was used at `now`, unless that was recorded less than a minute ago."""
    stale = {"$or": [{"last_used_at": None}, {"last_used_at": {"$lte": now - TOUCH_EVERY}}]}
    await db[API_TOKENS].update_one({"_id": {"$in": id_values(token_id)}, **stale}, {"$set": {"last_used_at": now}})


async def list_tokens(db: Database) -> list[ApiToken]:
    """Every token, revoked ones too, oldest first."""
    cursor = db[API_TOKENS].find({}, projection=_PUBLIC).sort("created_at", 1)
    return [_record(doc) async for doc in cursor]


async def find(db: Database, id_or_name: str) -> ApiToken | None:
    """The token with this id, or else this name."""
    doc = await db[API_TOKENS].find_one({"_id": {"$in": id_values(id_or_name)}}, projection=_PUBLIC)
    if doc is None:
        doc = await db[API_TOKENS].find_one({"name": id_or_name}, projection=_PUBLIC)
    return _record(doc) if doc else None


async def revoke(db: Database, token_id: str, now: datetime) -> ApiToken | None:
    """Revoke the token (kept, so the audit log still names it); None when it was revoked already or is unknown."""
    doc = await db[API_TOKENS].find_one_and_update(
        {"_id": {"$in": id_values(token_id)}, "revoked_at": None},
        {"$set": {"revoked_at": now}},
        projection=_PUBLIC,
        return_document=ReturnDocument.AFTER,
    )
    return _record(doc) if doc else None
