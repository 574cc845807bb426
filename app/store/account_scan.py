"""The arbiter's reads: the accounts a reservation may use, their limits, today's counts, and why one is passed over.

Accounts come least recently used first; their `email_campaign_settings` from a snapshot of that (small)
collection; today's counts from `account_usage` by `_id`. Malformed documents are logged and counted, never
ignored, so that the reason an account does not send reaches the operator.
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
    limits_for,
    limits_on,
    unsent_recheck,
)
from app.domain.models import AccountCampaignSettings, Campaign, EmailAccount, InvalidDocument, id_str
from app.store import schema
from app.store.account_settings import SettingsSnapshot, log_invalid
from app.store.account_usage import Slot, usage_key
from app.store.client import Database
from app.store.documents import id_values, iter_valid
from app.store.reclaim import records

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
            next_available_at=_aware(value),
            reserved_wait_end=_aware(held) if isinstance(held, datetime) else None,
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


def window_open(now: datetime) -> dict[str, Any]:
    """Accounts whose wait window is over, never opened, or unreadable (so that it is reported, not ignored)."""
    return {"$or": [{"next_available_at": {"$lte": now}}, {"next_available_at": {"$not": {"$type": "date"}}}]}


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


class AccountScan:
    """Reads the accounts, their settings and today's counts; caches the settings for `settings_ttl` seconds."""

    def __init__(self, db: Database, *, settings_ttl: float) -> None:
        self._accounts = db[schema.EMAIL_ACCOUNTS]
        self._usage = db[schema.ACCOUNT_USAGE]
        self._settings = SettingsSnapshot(db[schema.EMAIL_CAMPAIGN_SETTINGS], settings_ttl=settings_ttl)

    async def scan(
        self,
        campaign: Campaign,
        window: Mapping[str, Any],
        exclude: Collection[str],
        only: Collection[str] | None,
        tally: Tally,
        *,
        now: datetime,
        limit: int = 0,
    ) -> list[Candidate]:
        """Active allowed accounts matching `window`, least recently used first, with their limits at `now` (a
        warm-up ramp resolved to the account's day).

        Malformed accounts are logged, counted in `tally` and skipped.
        """
        allowed = _allowed_ids(campaign, exclude, only)
        if allowed is not None and not allowed:
            return []
        flt: dict[str, Any] = {"status": "active", **window}
        if allowed is not None:
            flt["_id"] = {"$in": _id_forms(allowed)}
        elif exclude:
            flt["_id"] = {"$nin": _id_forms(id_str(e) for e in exclude)}
        rows = [
            row
            async for row in iter_valid(
                self._accounts,
                flt,
                AccountRow.from_doc,
                sort=[("last_used_at", 1), ("_id", 1)],
                limit=limit,
                on_invalid=tally.add_invalid,
            )
        ]
        settings = await self._settings.settings_for([row.account.id for row in rows])
        return [Candidate(row, _limits_or_none(settings.get(row.account.id), campaign, row, now)) for row in rows]

    async def mailboxes(
        self, campaign: Campaign, pins: Iterable[str], only: Collection[str] | None, now: datetime
    ) -> list[Candidate]:
        """Of the pinned accounts (recipients' mailboxes), those that may still send for `campaign` whatever their
        wait window: active, allowed, with valid limits. No round trip when there are none."""
        allowed = pinned_only(pins, only)
        if not allowed:
            return []
        found = await self.scan(campaign, {}, (), allowed, Tally(), now=now)
        return [c for c in found if c.limits is not None]

    async def counts_for(self, candidates: list[Candidate], now: datetime, path: str) -> dict[str, Counts]:
        """Each account's counters for its day and hour of `now` (overall, for this campaign, and how many are open
        and not yet in flight), in one query by `_id`."""
        if not candidates:
            return {}
        counts: dict[str, Counts] = {}
        campaign_id = path.partition(".")[2]
        slots = {usage_key(c.id, c.slot(now).day): c.slot(now) for c in candidates}
        projection = {"account_id": 1, "sent": 1, path: 1, "open": 1, "hours": 1, "hours_campaigns": 1}
        async for doc in self._usage.find({"_id": {"$in": sorted(slots)}}, projection=projection):
            hour = slots[str(doc["_id"])].hour
            unsent = [e for e in records(doc) if e.get("flown") is False]
            times = [_aware(e["at"]) for e in unsent if isinstance(e.get("at"), datetime)]
            counts[str(doc.get("account_id"))] = Counts(
                sent=_count(doc.get("sent")),
                campaign=_count(_field(doc, "campaigns", campaign_id)),
                hour=_count(_field(doc, "hours", hour)),
                campaign_hour=_count(_field(_field(doc, "hours_campaigns", hour), campaign_id)),
                unsent=len(unsent),
                campaign_unsent=sum(1 for e in unsent if e.get("campaign") == campaign_id),
                unsent_since=min((t for t in times if t is not None), default=None),
            )
        return counts


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _limits_or_none(
    own: AccountCampaignSettings | InvalidDocument | None, campaign: Campaign, row: AccountRow, now: datetime
) -> AccountLimits | None:
    if isinstance(own, InvalidDocument):
        return None
    return limits_on(limits_for(own, campaign, row.account), now)


def _field(doc: object, *names: str) -> object:
    """A nested field of a document, or None where a level is missing or not an object."""
    value = doc
    for name in names:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value


def _count(value: object) -> int:
    """A counter read from account_usage; anything but a number reads as 0 (the atomic filter still guards)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def _allowed_ids(campaign: Campaign, exclude: Collection[str], only: Collection[str] | None) -> set[str] | None:
    """Account ids this reservation may use, or None for "every active account not excluded"."""
    allowed: set[str] | None = set(campaign.settings.account_ids) or None
    if only is not None:
        allowed = {id_str(a) for a in only} if allowed is None else allowed & {id_str(a) for a in only}
    if allowed is not None:
        allowed -= {id_str(e) for e in exclude}
    return allowed


def _id_forms(ids: Iterable[str]) -> list[Any]:
    return [form for i in sorted(ids) for form in id_values(i)]
