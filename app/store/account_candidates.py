"""The accounts a reservation may try, what each has used today, and the pure judgement on them.

`account_scan.py` reads these values (accounts, their limits, today's counts) from the database; this module
holds them and decides, without I/O, why an account is passed over and when it could be free (`blocked`,
`Tally`), how many sends each free account could take now (`room`) and which send goes to which (`assign`).
Separate from the reads because the arbiter, a batch's reservations and the dry run all plan on these values,
and the plans are tested without a database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain.limits import (
    INVALID_ACCOUNT,
    INVALID_SETTINGS,
    AccountLimits,
    allocate,
    blocked_by,
    capacity,
    describe_unavailable,
    free_at,
    held_window_end,
    unsent_recheck,
)
from app.domain.models import EmailAccount, InvalidDocument, id_str
from app.store import schema
from app.store.account_settings import log_invalid
from app.store.account_usage import Slot

# How soon to look again when nothing can ever become free by itself (no account, malformed data).
RECHECK_SECONDS = 60.0


@dataclass(frozen=True)
class AccountRow:
    """An account document as the arbiter needs it: the validated view plus its scheduling fields."""

    raw_id: Any
    account: EmailAccount
    next_available_at: datetime | None
    # While a reservation holds the wait window: its time plus the wait, the earliest the window can end.
    reserved_wait_end: datetime | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AccountRow:
        account = EmailAccount.from_doc(doc)
        value = doc.get("next_available_at")
        if value is not None and not isinstance(value, datetime):
            raise InvalidDocument(schema.EMAIL_ACCOUNTS, doc.get("_id"), "next_available_at", "must be a date")
        held = doc.get("reserved_wait_end") if doc.get("reservation_token") else None
        return cls(
            raw_id=doc["_id"],
            account=account,
            next_available_at=aware(value),
            reserved_wait_end=aware(held) if isinstance(held, datetime) else None,
        )


@dataclass(frozen=True)
class Counts:
    """An account's counters for today as one reservation attempt reads them."""

    sent: int = 0
    campaign: int = 0  # sent today for the campaign being reserved
    hour: int = 0  # sent this clock hour (the account's), all campaigns
    campaign_hour: int = 0  # sent this clock hour for the campaign being reserved
    # Open reservations not yet in flight, which a rollback or a reclaim may give back: all campaigns, this one.
    unsent: int = 0
    campaign_unsent: int = 0
    unsent_since: datetime | None = None  # when the oldest of them was made


@dataclass(frozen=True)
class Candidate:
    """An account a reservation may try, with its limits for the campaign."""

    row: AccountRow
    limits: AccountLimits | None  # None: its email_campaign_settings are malformed

    @property
    def id(self) -> str:
        return self.row.account.id

    def slot(self, now: datetime) -> Slot:
        """The account's own day and hour of `now`: the counters a send at `now` is counted in."""
        return Slot.at(now, self.row.account.timezone)


@dataclass(frozen=True)
class NoAccountAvailable:
    """No account may send now; `retry_at` is the earliest time one could, `reason` says why."""

    retry_at: datetime
    reason: str


@dataclass(frozen=True)
class Blocked:
    """Why an account cannot send now (empty: it may be tried) and when it could."""

    reason: str
    free_at: datetime


@dataclass
class Tally:
    """Why each account was passed over, and when each could be free."""

    reasons: Counter[str] = field(default_factory=Counter)
    retry_times: list[datetime] = field(default_factory=list)
    tried: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)

    def add(self, blocked: Blocked, account_id: str) -> None:
        self.tried.add(account_id)
        self.reasons[blocked.reason] += 1
        self.retry_times.append(blocked.free_at)

    def add_invalid(self, exc: InvalidDocument) -> None:
        # A page may be read twice; each malformed account is reported and counted once.
        if str(exc.doc_id) not in self.invalid:
            self.invalid.add(str(exc.doc_id))
            self.reasons[INVALID_ACCOUNT] += 1
            log_invalid(exc)

    def unavailable(self, now: datetime) -> NoAccountAvailable:
        """The earliest time any tallied account could be free, and why none is now."""
        retry_at = min(self.retry_times, default=now + timedelta(seconds=RECHECK_SECONDS))
        return NoAccountAvailable(retry_at=retry_at, reason=describe_unavailable(self.reasons, retry_at))


def blocked(candidate: Candidate, counts: Counts, now: datetime) -> Blocked:
    """Why `candidate` cannot send now and when it could; an empty reason means it may be tried."""
    if candidate.limits is None:
        return Blocked(INVALID_SETTINGS, now + timedelta(seconds=RECHECK_SECONDS))
    limits, row = candidate.limits, candidate.row
    hour = (counts.hour, counts.campaign_hour)
    reason = blocked_by(limits, counts.sent, counts.campaign, row.next_available_at, now, hour=hour)
    when = free_at(
        limits,
        counts.sent,
        counts.campaign,
        held_window_end(row.next_available_at, row.reserved_wait_end, now),
        now,
        unsent=(counts.unsent, counts.campaign_unsent),
        recheck_at=None if counts.unsent_since is None else unsent_recheck(counts.unsent_since, now),
        hour=hour,
    )
    return Blocked(reason or "", when)


def valid_limits(candidate: Candidate) -> AccountLimits:
    """The limits of a candidate already known to have valid settings."""
    if candidate.limits is None:
        raise ValueError(f"account {candidate.id} has no valid limits and cannot be reserved")
    return candidate.limits


def room(
    candidates: list[Candidate], counts: Mapping[str, Counts], now: datetime, wanted: int
) -> list[tuple[str, int]]:
    """How many of `wanted` sends each free candidate could take now, least recently used first."""
    shares: list[tuple[str, int]] = []
    for candidate in candidates:
        used = counts.get(candidate.id, Counts())
        if candidate.limits is not None and not blocked(candidate, used, now).reason:
            hour = (used.hour, used.campaign_hour)
            shares.append((candidate.id, capacity(candidate.limits, used.sent, used.campaign, wanted, hour=hour)))
    return shares


def assign(shares: list[tuple[str, int]], wants: Sequence[str | None]) -> list[str | None]:
    """The account of each wanted send, given what each free account could take now (`room`, least recently used
    first): a pinned send (its recipient's mailbox) takes its own account while that has room and else none (it
    waits for that account); the others are spread over what is left (`allocate`), and None when nothing is."""
    left = dict(shares)
    out: list[str | None] = [None] * len(wants)
    for i, pin in enumerate(wants):
        if pin is not None and left.get(pin, 0) > 0:
            left[pin] -= 1
            out[i] = pin
    free = [i for i, pin in enumerate(wants) if pin is None]
    spread = allocate([(account_id, left[account_id]) for account_id, _ in shares], len(free))
    slots = [account_id for account_id, k in spread.items() for _ in range(k)]
    for i, account_id in zip(free, slots, strict=False):
        out[i] = account_id
    return out


def pinned_only(pins: Iterable[str], only: Collection[str] | None) -> list[str]:
    """The pinned accounts a dispatcher restricted to `only` (None: any) may use."""
    allowed = None if only is None else {id_str(a) for a in only}
    return sorted({id_str(p) for p in pins if allowed is None or id_str(p) in allowed})


def chunks(items: list[Candidate], size: int) -> Iterable[list[Candidate]]:
    """`items` cut into lists of `size`, in order."""
    return (items[start : start + size] for start in range(0, len(items), size))


def aware(value: datetime | None) -> datetime | None:
    """`value` with UTC as its time zone where the driver returned it naive (None stays None)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
