"""The inbox sync's plain values: what a folder read returned, how a pass behaves and what it did, and the
documents and answers it writes for one message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.inbound import Classified
from app.domain.models import EmailAccount
from app.inbound import matching
from app.inbound.effects import Answer
from app.store.inbound import FolderProgress

SNIPPET_IN_RECORD = 200


@dataclass(frozen=True)
class FolderRead:
    """What one read of a folder returned: the UIDVALIDITY read under and (uid, raw message) oldest first."""

    folder: str
    uidvalidity: int
    messages: list[tuple[int, bytes]]
    restarted: bool = False  # the UIDVALIDITY changed: the folder was read again from its start
    error: str | None = None  # the folder could not be opened (the others were read)


# (account, progress per folder, most messages per folder) -> what was read; blocking, run in the pool.
ReadMailbox = Callable[[EmailAccount, dict[str, FolderProgress], int], list[FolderRead]]


@dataclass
class AccountReport:
    """One account's sync: what was read and done, or the error."""

    account_id: str
    email: str
    read: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    applied: Counter[str] = field(default_factory=Counter)
    deferred: int = 0
    unmatched: int = 0
    error: str | None = None
    retry_at: datetime | None = None
    skipped: str | None = None  # why it was not read this time (held by another process, not due)
    decisions: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would be done


@dataclass(frozen=True)
class SyncOptions:
    """How the sync behaves: poll interval, lease, messages per folder per pass, dry run."""

    poll_seconds: float = 60.0
    lease_seconds: float = 120.0
    batch: int = 200
    dry_run: bool = False
    due_only: bool = True  # False: read now even when the account's next sync is not due (sync-inbox)


def answer_of(classified: Classified, m: matching.Matched, key: str, i: int, account_id: str, folder: str) -> Answer:
    details: dict[str, Any] = {
        "message_id": classified.message_id,
        "date": classified.date,
        "subject": classified.subject,
        "snippet": classified.snippet,
        "from": classified.from_email,
        "reason": classified.reason,
        "matched_by": m.match.by,
        "folder": folder,
    }
    if m.bounce is not None:
        details.update({"status": m.bounce.status, "action": m.bounce.action, "diagnostic": m.bounce.diagnostic})
    sender = m.match.account_id or account_id  # the account that sent what is answered (stats per sender)
    return Answer(m.answer, m.match.email, key if i == 0 else f"{key}#{i}", m.match.ref, sender, "inbox", details)


def record_of(
    classified: Classified,
    kind: str,
    key: str,
    account: EmailAccount,
    folder_read: FolderRead,
    uid: int,
    found: Sequence[matching.Matched],
    now: datetime,
) -> dict[str, Any]:
    return {
        "_id": key,
        "account_id": account.id,
        "folder": folder_read.folder,
        "uidvalidity": folder_read.uidvalidity,
        "uid": uid,
        "message_id": classified.message_id,
        "kind": kind,
        "reason": classified.reason,
        "from_email": classified.from_email,
        "subject": classified.subject,
        "date": classified.date,
        "snippet": classified.snippet[:SNIPPET_IN_RECORD],
        "matches": [
            {"answer": m.answer, "lead_id": m.match.ref.lead_id, "step_order": m.match.ref.step_order}
            | {"recipient_index": m.match.ref.recipient_index, "email": m.match.email, "by": m.match.by}
            for m in found
        ],
        "state": "new",
        "read_at": now,
    }


def decision_of(
    folder: str, uid: int, classified: Classified, kind: str, found: Sequence[matching.Matched]
) -> dict[str, Any]:
    return {
        "folder": folder,
        "uid": uid,
        "kind": kind,
        "reason": classified.reason,
        "subject": classified.subject,
        "answers": [
            {"answer": m.answer, "send": m.match.ref.send_key, "email": m.match.email, "by": m.match.by} for m in found
        ],
    }
