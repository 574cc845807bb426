"""Dashboard users: an email, a role and an argon2 hash of the password (never the password itself).

Emails are stored lower-cased, so `Ann@Example.com` and `ann@example.com` are one user (a unique index).
The hash never leaves this module except through `password_hash_of`, which only login uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from app.domain.collections import USERS as USERS
from app.store.client import Database
from app.store.documents import id_values

_PUBLIC = {"password_hash": 0}


class DuplicateUser(ValueError):
    """A user with that email exists already."""

    def __init__(self, email: str) -> None:
        super().__init__(f"a user {email} exists already (see `outbound user list`; `outbound user passwd` resets it)")
        self.email = email


@dataclass(frozen=True)
class User:
    """A user as anyone may see it: everything but the password hash."""

    id: str
    email: str
    role: str
    created_at: datetime
    password_changed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The user for --json and the API."""
        changed = self.password_changed_at
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "password_changed_at": changed.isoformat() if changed else None,
        }


def normalize_email(email: str) -> str:
    """The stored form of a login email."""
    return email.strip().lower()


def _record(doc: dict[str, Any]) -> User:
    return User(
        id=str(doc["_id"]),
        email=str(doc["email"]),
        role=str(doc["role"]),
        created_at=doc["created_at"],
        password_changed_at=doc.get("password_changed_at"),
    )


async def add(db: Database, email: str, role: str, password_hash: str, now: datetime) -> User:
    """Store a new user; DuplicateUser when the email is taken."""
    doc = {
        "_id": ObjectId(),
        "email": normalize_email(email),
        "role": role,
        "password_hash": password_hash,
        "created_at": now,
        "password_changed_at": now,
    }
    try:
        await db[USERS].insert_one(doc)
    except DuplicateKeyError:
        raise DuplicateUser(normalize_email(email)) from None
    return _record(doc)


async def find_by_email(db: Database, email: str) -> User | None:
    """The user with this email (any case)."""
    doc = await db[USERS].find_one({"email": normalize_email(email)}, projection=_PUBLIC)
    return _record(doc) if doc else None


async def find_by_id(db: Database, user_id: str) -> User | None:
    """The user with this id."""
    doc = await db[USERS].find_one({"_id": {"$in": id_values(user_id)}}, projection=_PUBLIC)
    return _record(doc) if doc else None


async def password_hash_of(db: Database, email: str) -> tuple[User, str] | None:
    """The user and their stored password hash, for checking a login; None for an unknown email."""
    doc = await db[USERS].find_one({"email": normalize_email(email)})
    return (_record(doc), str(doc["password_hash"])) if doc else None


async def set_password_hash(db: Database, user_id: str, password_hash: str, now: datetime, *, changed: bool) -> bool:
    """Store a new hash: a new password (`changed`), or the same one rehashed with today's parameters."""
    fields: dict[str, Any] = {"password_hash": password_hash}
    if changed:
        fields["password_changed_at"] = now
    result = await db[USERS].update_one({"_id": {"$in": id_values(user_id)}}, {"$set": fields})
    return result.matched_count > 0


async def set_role(db: Database, user_id: str, role: str, expected: str) -> bool:
    """Give the user `role` if their role is still `expected` (False: removed or changed meanwhile). It applies
    from their next request: a session reads the user's role on each one."""
    result = await db[USERS].update_one(
        {"_id": {"$in": id_values(user_id)}, "role": expected}, {"$set": {"role": role}}
    )
    return result.matched_count > 0


async def list_users(db: Database) -> list[User]:
    """Every user, by email."""
    return [_record(doc) async for doc in db[USERS].find({}, projection=_PUBLIC).sort("email", 1)]


async def remove(db: Database, user_id: str) -> bool:
    """Delete the user; True when there was one."""
    result = await db[USERS].delete_one({"_id": {"$in": id_values(user_id)}})
    return result.deleted_count > 0
