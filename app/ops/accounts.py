"""An account's rotation status: pause (stop sending from it for now) and resume (send again, also after a
failed login took it out of rotation).

The status is written only if it is still the one read, so a dispatcher taking the account out of rotation
meanwhile is never silently overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.ops.errors import OpError, not_found
from app.store import schema
from app.store.client import Database
from app.store.documents import NotFound, get_doc

ACCOUNT_STATUSES = ("active", "paused", "disabled")


@dataclass(frozen=True)
class AccountStatusChange:
    """The account's status before and after; `changed` is False when it had that status already.

    `disabled_reason` is why it was out of rotation before (a failed login), cleared by the change.
    """

    account_id: str
    email: str | None
    before: str
    after: str
    changed: bool
    disabled_reason: str | None = None


async def set_account_status(db: Database, account_id: str, status: str, now: datetime) -> AccountStatusChange:
    """Set the account's status (clearing an auth failure's reason); OpError when unknown or changed meanwhile."""
    if status not in ACCOUNT_STATUSES:
        raise OpError("invalid", f"status {status!r}: use one of {', '.join(ACCOUNT_STATUSES)}")
    coll = db[schema.EMAIL_ACCOUNTS]
    try:
        doc = await get_doc(coll, "email account", account_id)
    except NotFound:
        raise not_found("email account", account_id) from None
    before = str(doc.get("status", "active"))
    reason = doc.get("disabled_reason")
    change = AccountStatusChange(
        str(doc["_id"]), doc.get("email"), before, status, before != status, reason if isinstance(reason, str) else None
    )
    if not change.changed:
        return change
    result = await coll.update_one(
        {"_id": doc["_id"], "status": doc.get("status")},
        {"$set": {"status": status, "status_changed_at": now}, "$unset": {"disabled_reason": ""}},
    )
    if result.modified_count == 0:
        raise OpError(
            "conflict",
            f"account {account_id} changed while this ran (a dispatcher may have taken it out of rotation): "
            "run it again",
        )
    return change


async def pause_account(db: Database, account_id: str, now: datetime) -> AccountStatusChange:
    """Stop sending from an account for now (status paused)."""
    return await set_account_status(db, account_id, "paused", now)


async def resume_account(db: Database, account_id: str, now: datetime) -> AccountStatusChange:
    """Send from an account again (status active)."""
    return await set_account_status(db, account_id, "active", now)
