"""The account arbiter: reserve a sending account for one email under its limits, then commit or roll back.

Limits, with seed 001's names: an account sends at most `email_campaign_settings.max_daily_sends` per UTC day
across all campaigns, at most the lower of the campaign's and the account's `daily_limit` per day for one
campaign, and never twice within `min_wait_time` minutes (the larger of the account's and the campaign's).

Every write is a conditional `update_one` aimed at one document and checked by its result, so any number of
dispatchers on any number of machines can race without exceeding a limit. A reservation counts as a send the
moment it is made, and the same upsert records it as open (`account_usage.open.<key>`: owner, campaign, time,
`flown`), so a crash can never leave a count without its record. Just before its SMTP exchange the holder marks
it in flight (`mark_in_flight`); commit and rollback close it. When its holder is gone (`Arbiter.reclaim`), an
open reservation that never flew gives its count and wait window back at once; one that flew may have been
delivered, so it keeps its count and the long hold. `mark_in_flight` is fenced on the record, so a holder that
was only paused and finds its reservation returned sends nothing.

`account_usage` documents are keyed `_id = "<account_id>:<day>"` (see `usage_key`): lookups by `_id` stay fast
on servers where queries on other fields scan the whole collection, and that collection grows every day.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.domain.limits import (
    INVALID_ACCOUNT,
    INVALID_SETTINGS,
    LIMIT_RACED,
    TAKEN,
    AccountLimits,
    allocate,
    blocked_by,
    capacity,
    describe_unavailable,
    free_at,
    held_window_end,
    limits_for,
    merge_settings,
    unsent_recheck,
)
from app.domain.models import AccountCampaignSettings, Campaign, EmailAccount, InvalidDocument, id_str
from app.domain.scheduling import after_minutes, next_day_start, utc_day
from app.logging import get_logger
from app.store import reclaim as reclaim_store
from app.store import schema
from app.store.client import Database
from app.store.documents import NotFound, id_filter, id_values, iter_valid
from app.store.reclaim import GoneCheck, Reclaimed, open_entry, open_path, records

# How soon to look again when nothing can ever become free by itself (no account, malformed data).
RECHECK_SECONDS = 60.0
# Today's counters are read for this many free accounts at a time: most reservations succeed on the first.
USAGE_CHUNK = 16
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Reservation:
    """The right to send one email from `account` for `campaign_id`, counted against `day`'s limits."""

    token: str
    account: EmailAccount
    campaign_id: str
    day: str
    reserved_at: datetime
    limits: AccountLimits


@dataclass(frozen=True)
class NoAccountAvailable:
    """No account may send now; `retry_at` is the earliest time one could, `reason` says why."""

    retry_at: datetime
    reason: str


def usage_key(account_id: str, day: str) -> str:
    """The `_id` of an account's `account_usage` document for one UTC day."""
    return f"{account_id}:{day}"


def usage_path(campaign_id: str) -> str:
    """The `account_usage.campaigns.<id>` field of a campaign; refuses ids that would break the dotted path."""
    if not campaign_id or "." in campaign_id or campaign_id.startswith("$") or "\0" in campaign_id:
        raise ValueError(
            f"campaign id {campaign_id!r} cannot key account_usage.campaigns: "
            "a campaign _id must not be empty, contain '.', or start with '$'"
        )
    return f"campaigns.{campaign_id}"


@dataclass(frozen=True)
class _AccountRow:
    """An account document as the arbiter needs it: the validated view plus its scheduling fields."""

    raw_id: Any
    account: EmailAccount
    next_available_at: datetime | None
    # While a reservation holds the wait window: its time plus the wait, the earliest the window can end.
    reserved_wait_end: datetime | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> _AccountRow:
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


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass(frozen=True)
class _Counts:
    """An account's counters for today as one reservation attempt reads them."""

    sent: int = 0
    campaign: int = 0  # sent today for the campaign being reserved
    # Open reservations not yet in flight, which a rollback or a reclaim may give back: all campaigns, this one.
    unsent: int = 0
    campaign_unsent: int = 0
    unsent_since: datetime | None = None  # when the oldest of them was made


@dataclass(frozen=True)
class _Candidate:
    row: _AccountRow
    limits: AccountLimits | None  # None: its email_campaign_settings are malformed

    @property
    def id(self) -> str:
        return self.row.account.id


@dataclass(frozen=True)
class _Blocked:
    reason: str
    free_at: datetime


@dataclass
class _Tally:
    """Why each account was passed over, and when each could be free."""

    reasons: Counter[str] = field(default_factory=Counter)
    retry_times: list[datetime] = field(default_factory=list)
    tried: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)

    def add(self, blocked: _Blocked, account_id: str) -> None:
        self.tried.add(account_id)
        self.reasons[blocked.reason] += 1
        self.retry_times.append(blocked.free_at)

    def add_invalid(self, exc: InvalidDocument) -> None:
        # A page may be read twice; each malformed account is reported and counted once.
        if str(exc.doc_id) not in self.invalid:
            self.invalid.add(str(exc.doc_id))
            self.reasons[INVALID_ACCOUNT] += 1
            _log_invalid(exc)


def _window_open(now: datetime) -> dict[str, Any]:
    """Accounts whose wait window is over, never opened, or unreadable (so that it is reported, not ignored)."""
    return {"$or": [{"next_available_at": {"$lte": now}}, {"next_available_at": {"$not": {"$type": "date"}}}]}


def _limits_or_none(own: AccountCampaignSettings | InvalidDocument | None, campaign: Campaign) -> AccountLimits | None:
    return None if isinstance(own, InvalidDocument) else limits_for(own, campaign)


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


def _chunks(items: list[_Candidate], size: int) -> Iterable[list[_Candidate]]:
    return (items[start : start + size] for start in range(0, len(items), size))


class Arbiter:
    """Reserves sending accounts for one dispatcher (`owner`), sharing limits with every other dispatcher."""

    def __init__(
        self,
        db: Database,
        *,
        owner: str,
        settings_ttl: float = 30.0,
        hold_seconds: float = 0.0,
        marks_in_flight: bool = False,
    ) -> None:
        self._accounts = db[schema.EMAIL_ACCOUNTS]
        # While a reservation is open, an account with a wait window stays closed for the wait plus the
        # longest a send can take: if the holder crashes mid-send, its message may still reach the server
        # late, and the next send must not land inside the wait after it.
        self._hold_seconds = hold_seconds
        self._settings = db[schema.EMAIL_CAMPAIGN_SETTINGS]
        self._usage = db[schema.ACCOUNT_USAGE]
        self._owner = owner
        # Only a holder that calls mark_in_flight before every SMTP exchange (and sends nothing when it says
        # False) may have its reservations returned when it is gone; any other holder's are recorded as possibly
        # in flight from the start, and keep counting as if a crash caught them mid-send.
        self._marks_in_flight = marks_in_flight
        # Limits change rarely; caching them briefly saves a round trip on most reservations.
        self._settings_ttl = settings_ttl
        self._settings_expiry = 0.0
        self._settings_known: set[str] = set()  # accounts the snapshot answers for, with or without settings
        self._settings_snapshot: dict[str, AccountCampaignSettings | InvalidDocument] = {}

    async def reserve(
        self,
        campaign: Campaign,
        now: datetime,
        *,
        exclude: Collection[str] = (),
        only: Collection[str] | None = None,
    ) -> Reservation | NoAccountAvailable:
        """Reserve the least recently used account that may send for `campaign` at `now`.

        `exclude` leaves accounts out (e.g. one that just failed), `only` restricts to some. The reservation
        counts against today's limits at once and starts the account's wait window; a rollback gives both back.
        """
        path = usage_path(campaign.id)
        day = utc_day(now)
        tally = _Tally()
        # The least recently used few usually include a free account; the rest are read only when they do not.
        for limit in (USAGE_CHUNK, 0):
            invalid_before = len(tally.invalid)
            page = await self._scan(campaign, _window_open(now), exclude, only, tally, limit=limit)
            reservation = await self._first_free([c for c in page if c.id not in tally.tried], campaign, now, tally)
            if reservation is not None:
                return reservation
            # A short first page (valid and malformed documents together) already held every open account.
            if len(page) + len(tally.invalid) - invalid_before < limit:
                break
        # Only when nothing is free are the waiting accounts read: their windows and counts give the retry time.
        waiting = await self._scan(campaign, {"next_available_at": {"$gt": now}}, exclude, only, tally)
        counts = await self._counts_for(waiting, day, path)
        for candidate in waiting:
            tally.add(self._blocked(candidate, counts.get(candidate.id, _Counts()), now), candidate.id)
        return self._unavailable(campaign, now, tally)

    async def _first_free(
        self, candidates: list[_Candidate], campaign: Campaign, now: datetime, tally: _Tally
    ) -> Reservation | None:
        """Try `candidates` in order, reading their counts a chunk at a time; tally why each was passed over."""
        path, day = usage_path(campaign.id), utc_day(now)
        for chunk in _chunks(candidates, USAGE_CHUNK):
            counts = await self._counts_for(chunk, day, path)
            for candidate in chunk:
                outcome = await self._try(candidate, counts.get(candidate.id, _Counts()), campaign, path, day, now)
                if isinstance(outcome, Reservation):
                    return outcome
                tally.add(outcome, candidate.id)
        return None

    async def reserve_many(
        self, campaign: Campaign, now: datetime, wanted: int, *, only: Collection[str] | None = None
    ) -> list[Reservation]:
        """Reserve up to `wanted` sends for `campaign` in a few round trips, spread over the least recently used
        free accounts (several per account only when it has no wait window and its limits leave room).

        Each account's share is counted with one conditional upsert whose filter leaves room for all of it, so
        the limits hold exactly as for `reserve`. Fewer (even none) come back when fewer are free or a racing
        dispatcher got there first; `reserve` then takes the rest one at a time and says why none is free.
        """
        if wanted <= 0:
            return []
        path, day = usage_path(campaign.id), utc_day(now)
        candidates = await self._scan(campaign, _window_open(now), (), only, _Tally(), limit=wanted + USAGE_CHUNK)
        counts = await self._counts_for(candidates, day, path)
        by_id = {c.id: c for c in candidates}
        room: list[tuple[str, int]] = []
        for candidate in candidates:
            used = counts.get(candidate.id, _Counts())
            if candidate.limits is not None and not self._blocked(candidate, used, now).reason:
                room.append((candidate.id, capacity(candidate.limits, used.sent, used.campaign, wanted)))
        plan = allocate(room, wanted)
        if not plan:
            return []
        # One token per reservation; the first of an account's share also holds its wait window.
        tokens = {account_id: [self._token() for _ in range(k)] for account_id, k in plan.items()}
        waits = [a for a in plan if _limits(by_id[a]).min_wait_minutes > 0]
        taken = await asyncio.gather(
            *(self._claim_window(by_id[a].row.raw_id, tokens[a][0], _limits(by_id[a]), now) for a in waits)
        )
        plan = {a: k for a, k in plan.items() if a not in waits or taken[waits.index(a)]}
        plain = [by_id[a].row.raw_id for a in plan if a not in waits]
        counted, _ = await asyncio.gather(
            self._count_blocks(plan, by_id, tokens, campaign.id, day, now), self._rotate(plain, now)
        )
        for account_id in plan:
            if account_id not in counted and account_id in waits:
                await self._release_window(account_id, tokens[account_id][0], now)
        reservations: list[Reservation] = []
        for account_id in counted:
            candidate = by_id[account_id]
            limits = _limits(candidate)
            for token in tokens[account_id]:
                reservation = Reservation(token, candidate.row.account, campaign.id, day, now, limits)
                self._log_reserved(reservation, block=plan[account_id])
                reservations.append(reservation)
        return reservations

    async def _rotate(self, raw_ids: list[Any], now: datetime) -> None:
        """Mark accounts without a wait window as just used (one write keeps the rotation order of them all)."""
        if raw_ids:
            await self._accounts.update_many(
                {"_id": {"$in": raw_ids}, "status": "active"},
                {"$set": {"last_used_at": now, "next_available_at": now}},
            )

    async def _count_blocks(
        self,
        plan: Mapping[str, int],
        by_id: Mapping[str, _Candidate],
        tokens: Mapping[str, list[str]],
        campaign_id: str,
        day: str,
        now: datetime,
    ) -> list[str]:
        """Count each account's share of sends, and record each of its reservations as open, with one conditional
        upsert each, in one round trip; return the accounts whose share was counted (a refused one had reached a
        limit meanwhile)."""
        if not plan:  # every window was taken by a racing dispatcher: nothing to count
            return []
        path = usage_path(campaign_id)
        order = list(plan)
        ops = []
        for account_id in order:
            limits, k = _limits(by_id[account_id]), plan[account_id]
            flt: dict[str, Any] = {"_id": usage_key(account_id, day)}
            if limits.max_daily_sends is not None:
                flt["sent"] = {"$lte": limits.max_daily_sends - k}
            if limits.campaign_daily_limit is not None:
                flt[path] = {"$not": {"$gt": limits.campaign_daily_limit - k}}
            update = {
                "$inc": {"sent": k, path: k},
                "$set": {
                    open_path(t): open_entry(self._owner, campaign_id, now, flown=not self._marks_in_flight)
                    for t in tokens[account_id]
                },
                "$setOnInsert": {"account_id": account_id, "day": day, "committed": 0},
            }
            ops.append(UpdateOne(flt, update, upsert=True))
        refused: set[int] = set()
        try:
            await self._usage.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            refused = {int(e["index"]) for e in errors}
        return [account_id for i, account_id in enumerate(order) if i not in refused]

    async def mark_in_flight(self, reservations: list[Reservation]) -> list[bool]:
        """Mark reservations as handed to SMTP, just before their SMTP exchange; one round trip for all.

        False for a reservation that was returned meanwhile (its holder was taken for gone): its email must not be
        sent, and the reservation must not be rolled back (it already was) nor committed. A True one keeps its
        count and the long hold of its wait window until commit or rollback, whatever happens to its holder.
        """
        if not reservations:
            return []
        by_key: dict[str, list[Reservation]] = {}
        for r in reservations:
            by_key.setdefault(usage_key(r.account.id, r.day), []).append(r)
        # A reclaim returns all of a gone holder's unflown reservations in a document at once, so the tokens of
        # one document usually land or fail together; one at a time only after a reclaim took some of them.
        ops = [UpdateOne(_flight_filter(key, group), _flight_update(group)) for key, group in by_key.items()]
        result = await self._usage.bulk_write(ops, ordered=False)
        if result.matched_count == len(ops):
            return [True] * len(reservations)
        landed = await asyncio.gather(
            *(
                self._usage.update_one(_flight_filter(usage_key(r.account.id, r.day), [r]), _flight_update([r]))
                for r in reservations
            )
        )
        # Re-marking an entry already in flight matches without modifying it; a missing entry matches nothing.
        flags = [res.matched_count == 1 for res in landed]
        for reservation, ok in zip(reservations, flags, strict=True):
            if not ok:
                self._log(reservation).warning(
                    "arbiter.returned_before_send", reason="the reservation was reclaimed; the email is not sent"
                )
        return flags

    async def commit_many(self, reservations: list[Reservation], now: datetime) -> None:
        """`commit` for several reservations: one write for all the counters, plus one per wait window."""
        if not reservations:
            return
        by_key: dict[str, list[Reservation]] = {}
        for r in reservations:
            by_key.setdefault(usage_key(r.account.id, r.day), []).append(r)
        await self._usage.bulk_write(
            [
                UpdateOne({"_id": key}, {"$inc": {"committed": len(group)}, "$unset": _open_fields(group)})
                for key, group in by_key.items()
            ],
            ordered=False,
        )
        windows = [r for r in reservations if r.limits.min_wait_minutes > 0]
        await asyncio.gather(*(self._move_window(r, now) for r in windows))
        for reservation in reservations:
            self._log(reservation).debug("arbiter.committed", day=reservation.day, committed_at=now.isoformat())

    async def _move_window(self, reservation: Reservation, now: datetime) -> None:
        # The wait runs from when the message was handed over, not from when the account was reserved.
        await self._accounts.update_one(
            {**id_filter(reservation.account.id), "reservation_token": reservation.token},
            {
                "$set": {"next_available_at": after_minutes(now, reservation.limits.min_wait_minutes)},
                "$unset": {"reservation_token": "", "reserved_wait_end": ""},
            },
        )

    async def commit(self, reservation: Reservation, now: datetime) -> None:
        """Record that the reserved email was sent (or must be treated as sent). Call once per reservation."""
        await self._usage.update_one(
            {"_id": usage_key(reservation.account.id, reservation.day)},
            {"$inc": {"committed": 1}, "$unset": _open_fields([reservation])},
        )
        # Without a wait there is no window to move, and a leftover token is overwritten by the next reservation.
        if reservation.limits.min_wait_minutes > 0:
            await self._move_window(reservation, now)
        self._log(reservation).debug("arbiter.committed", day=reservation.day, committed_at=now.isoformat())

    async def rollback(self, reservation: Reservation, now: datetime, *, reason: str) -> None:
        """Give back a reservation whose email was certainly not sent: its count, and its wait window if unused.

        Call at most once per reservation, and never after commit. One already returned (by an earlier rollback
        or by `reclaim`) is not given back twice.
        """
        await self.rollback_many([reservation], now, reason=reason)

    async def rollback_many(self, reservations: list[Reservation], now: datetime, *, reason: str) -> int:
        """`rollback` for several reservations: one write for the counts, one for the wait windows they still
        hold. Return how many counts were given back."""
        if not reservations:
            return 0
        ops = [
            UpdateOne(*_give_back(usage_key(r.account.id, r.day), usage_path(r.campaign_id), r.token))
            for r in reservations
        ]
        returned = (await self._usage.bulk_write(ops, ordered=False)).modified_count
        released = await self._release_windows([(r.account.id, r.token) for r in reservations], now)
        for reservation in reservations:
            # Exact for one reservation; for several, known only when all or none landed.
            self._log(reservation).info(
                "arbiter.rollback",
                reason=reason,
                day=reservation.day,
                count_returned=_all_or_none(returned, len(reservations)),
                window_released=_all_or_none(released, len(reservations)),
            )
        return returned

    async def _uncount(self, account_id: str, day: str, path: str, token: str) -> bool:
        """Give one counted send back (never below zero) and close its record; False when there was nothing to
        give back (already returned)."""
        result = await self._usage.update_one(*_give_back(usage_key(account_id, day), path, token))
        return result.modified_count == 1

    async def reclaim(self, now: datetime, gone: GoneCheck | Collection[str]) -> Reclaimed:
        """Close the open reservations of dispatchers that are gone (see `app/store/reclaim.py`).

        Looks at today's and yesterday's counters. `gone` is the set of gone owners, or an async check given the
        owners holding open reservations (never this arbiter's own) that returns those known to be gone. Run by
        every dispatcher on each heartbeat; racing runs return each reservation once.
        """
        # Every counted reservation stamps its account's last_used_at, so accounts unused since yesterday hold
        # none: the usage documents are then read by `_id` (no query on a field that would scan every day's).
        since = next_day_start(now) - timedelta(days=2)
        used = [
            id_str(doc["_id"])
            async for doc in self._accounts.find({"last_used_at": {"$gte": since}}, projection={"_id": 1})
        ]
        days = (utc_day(since), utc_day(now))
        keys = [usage_key(account_id, day) for account_id in used for day in days]
        found = await reclaim_store.reclaim(self._usage, self._accounts, keys, now, gone, keep=self._owner)
        if found:
            get_logger(owner=self._owner).info(
                "arbiter.reclaimed",
                returned=found.returned,
                in_flight=found.in_flight,
                windows=found.windows,
                gone=sorted(found.owners),
            )
        return found

    async def disable(self, account_id: str, reason: str) -> None:
        """Take an account out of rotation (status auth_failed) with the reason an operator will see."""
        if not reason.strip():
            raise ValueError("disable() needs a reason the operator can act on, e.g. the SMTP auth error")
        result = await self._accounts.update_one(
            id_filter(account_id),
            {
                "$set": {"status": "auth_failed", "disabled_reason": reason},
                "$unset": {"reservation_token": "", "reserved_wait_end": ""},
            },
        )
        if result.matched_count == 0:
            raise NotFound("email account", account_id)
        get_logger(account_id=account_id, owner=self._owner).warning("arbiter.disabled", reason=reason)

    async def usage(self, account_id: str, day: str) -> dict[str, Any]:
        """An account's counters for one UTC day ("YYYY-MM-DD"); zeros when it has not sent that day."""
        if not _DAY.match(day):
            raise ValueError(f"day={day!r} must be a UTC date written YYYY-MM-DD")
        doc = await self._usage.find_one({"_id": usage_key(account_id, day)}, projection={"_id": 0})
        return {"account_id": account_id, "day": day, "sent": 0, "committed": 0, "campaigns": {}, **(doc or {})}

    async def _scan(
        self,
        campaign: Campaign,
        window: Mapping[str, Any],
        exclude: Collection[str],
        only: Collection[str] | None,
        tally: _Tally,
        *,
        limit: int = 0,
    ) -> list[_Candidate]:
        """Active allowed accounts matching `window`, least recently used first, with their limits.

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
                _AccountRow.from_doc,
                sort=[("last_used_at", 1), ("_id", 1)],
                limit=limit,
                on_invalid=tally.add_invalid,
            )
        ]
        settings = await self._settings_for([row.account.id for row in rows])
        return [_Candidate(row, _limits_or_none(settings.get(row.account.id), campaign)) for row in rows]

    async def _settings_for(self, ids: list[str]) -> dict[str, AccountCampaignSettings | InvalidDocument | None]:
        """Each account's email_campaign_settings from a snapshot of the (small) collection.

        The snapshot is re-read when it is older than `settings_ttl` or an account it has not seen appears, so
        a new account's limits apply at once and a changed limit within `settings_ttl` seconds.
        """
        clock = time.monotonic()
        if clock >= self._settings_expiry or not self._settings_known.issuperset(ids):
            parsed: dict[str, list[AccountCampaignSettings | InvalidDocument]] = {}
            async for doc in self._settings.find({}, sort=[("_id", 1)]):
                parsed.setdefault(id_str(doc.get("email_id")), []).append(_parse_settings(doc))
            snapshot: dict[str, AccountCampaignSettings | InvalidDocument] = {}
            for key, items in parsed.items():
                # Several documents for one account: the strictest of each limit, as the reports show them.
                valid = merge_settings(s for s in items if isinstance(s, AccountCampaignSettings))
                snapshot[key] = valid if valid is not None else items[0]
            self._settings_snapshot = snapshot
            self._settings_known = set(snapshot) | set(ids)
            self._settings_expiry = clock + self._settings_ttl
        return {i: self._settings_snapshot.get(i) for i in ids}

    async def _counts_for(self, candidates: list[_Candidate], day: str, path: str) -> dict[str, _Counts]:
        """Today's counters per account (overall, for this campaign, and how many are open and not yet in flight),
        in one query by `_id`."""
        if not candidates:
            return {}
        counts: dict[str, _Counts] = {}
        campaign_id = path.partition(".")[2]
        keys = [usage_key(c.id, day) for c in candidates]
        projection = {"account_id": 1, "sent": 1, path: 1, "open": 1}
        async for doc in self._usage.find({"_id": {"$in": keys}}, projection=projection):
            campaigns = doc.get("campaigns")
            campaign_sent = campaigns.get(campaign_id) if isinstance(campaigns, Mapping) else None
            unsent = [e for e in records(doc) if e.get("flown") is False]
            times = [_aware(e["at"]) for e in unsent if isinstance(e.get("at"), datetime)]
            counts[str(doc.get("account_id"))] = _Counts(
                sent=_count(doc.get("sent")),
                campaign=_count(campaign_sent),
                unsent=len(unsent),
                campaign_unsent=sum(1 for e in unsent if e.get("campaign") == campaign_id),
                unsent_since=min((t for t in times if t is not None), default=None),
            )
        return counts

    async def _try(
        self,
        candidate: _Candidate,
        counts: _Counts,
        campaign: Campaign,
        path: str,
        day: str,
        now: datetime,
    ) -> Reservation | _Blocked:
        """Reserve one candidate, or say why not and when it could be free."""
        blocked = self._blocked(candidate, counts, now)
        limits = candidate.limits
        if blocked.reason or limits is None:
            return blocked
        token = self._token()
        if limits.min_wait_minutes > 0:
            # The window first: a send may only be counted by whoever holds it.
            if not await self._claim_window(candidate.row.raw_id, token, limits, now):
                return _Blocked(TAKEN, after_minutes(now, limits.min_wait_minutes))
            counted = await self._count_send(candidate.id, day, campaign.id, limits, token, now)
        else:
            # Without a window the account write only keeps the rotation order: do both at once.
            active, counted = await asyncio.gather(
                self._claim_window(candidate.row.raw_id, token, limits, now),
                self._count_send(candidate.id, day, campaign.id, limits, token, now),
            )
            if not active:  # paused or disabled meanwhile: give the count back
                if counted:
                    await self._uncount(candidate.id, day, path, token)
                return _Blocked(TAKEN, now + timedelta(seconds=RECHECK_SECONDS))
        if not counted:
            await self._release_window(candidate.row.account.id, token, now)
            return _Blocked(LIMIT_RACED, next_day_start(now))
        reservation = Reservation(token, candidate.row.account, campaign.id, day, now, limits)
        self._log_reserved(reservation)
        return reservation

    def _log_reserved(self, reservation: Reservation, **extra: Any) -> None:
        limits = reservation.limits
        self._log(reservation).debug(
            "arbiter.reserved",
            day=reservation.day,
            max_daily_sends=limits.max_daily_sends,
            daily_limit=limits.campaign_daily_limit,
            min_wait_time=limits.min_wait_minutes,
            next_available_at=self._window_end(limits, reservation.reserved_at).isoformat(),
            **extra,
        )

    async def _claim_window(self, raw_id: Any, token: str, limits: AccountLimits, now: datetime) -> bool:
        """Take the account's wait window if it is open; False when another dispatcher took it first."""
        flt: dict[str, Any] = {"_id": raw_id, "status": "active"}
        if limits.min_wait_minutes > 0:
            flt["$or"] = [{"next_available_at": {"$lte": now}}, {"next_available_at": None}]
        # Without a wait there is no window to contend for: racing dispatchers (whose clocks differ by a few
        # milliseconds) must not fail each other's reservations; the update only keeps the rotation order.
        result = await self._accounts.update_one(
            flt,
            {
                "$set": {
                    "next_available_at": self._window_end(limits, now),
                    "last_used_at": now,
                    "reservation_token": token,
                    # Had the message gone out at once: a waiting lead looks again then, not at the crash hold.
                    "reserved_wait_end": after_minutes(now, limits.min_wait_minutes),
                }
            },
        )
        return result.modified_count == 1

    def _window_end(self, limits: AccountLimits, now: datetime) -> datetime:
        """When a reserved account may be reserved again if this reservation is never settled."""
        if limits.min_wait_minutes <= 0:
            return now  # no wait: sends of one account may overlap
        return after_minutes(now, limits.min_wait_minutes + self._hold_seconds / 60.0)

    async def _count_send(
        self, account_id: str, day: str, campaign_id: str, limits: AccountLimits, token: str, now: datetime
    ) -> bool:
        """Count one send against today's limits and record it as open; False when a limit is already reached.

        The limits sit in the upsert's filter: when the day's document exists but does not match, the upsert
        tries to insert a second one and the unique (account_id, day) index refuses it.
        """
        path = usage_path(campaign_id)
        flt: dict[str, Any] = {"_id": usage_key(account_id, day)}
        if limits.max_daily_sends is not None:
            flt["sent"] = {"$lt": limits.max_daily_sends}
        if limits.campaign_daily_limit is not None:
            flt[path] = {"$not": {"$gte": limits.campaign_daily_limit}}
        update = {
            "$inc": {"sent": 1, path: 1},
            "$set": {open_path(token): open_entry(self._owner, campaign_id, now, flown=not self._marks_in_flight)},
            "$setOnInsert": {"account_id": account_id, "day": day, "committed": 0},
        }
        # The first refusal may come from a racing first insert of the day; by the second the document exists.
        for _ in range(2):
            try:
                await self._usage.update_one(flt, update, upsert=True)
            except DuplicateKeyError:
                continue
            return True
        return False

    async def _release_window(self, account_id: str, token: str, now: datetime) -> bool:
        """Reopen the wait window at `now` if our reservation still holds it; False if another has since."""
        return await self._release_windows([(account_id, token)], now) == 1

    async def _release_windows(self, held: list[tuple[str, str]], now: datetime) -> int:
        """Reopen at `now` the wait windows that these (account, token) reservations still hold, in one write;
        return how many were reopened. Tokens are unique, so a window another reservation holds is left alone."""
        return await reclaim_store.reopen_windows(self._accounts, held, now)

    def _token(self) -> str:
        return f"{self._owner}:{uuid.uuid4().hex}"

    def _blocked(self, candidate: _Candidate, counts: _Counts, now: datetime) -> _Blocked:
        """Why `candidate` cannot send now and when it could; an empty reason means it may be tried."""
        if candidate.limits is None:
            return _Blocked(INVALID_SETTINGS, now + timedelta(seconds=RECHECK_SECONDS))
        limits, row = candidate.limits, candidate.row
        reason = blocked_by(limits, counts.sent, counts.campaign, row.next_available_at, now)
        when = free_at(
            limits,
            counts.sent,
            counts.campaign,
            held_window_end(row.next_available_at, row.reserved_wait_end, now),
            now,
            unsent=(counts.unsent, counts.campaign_unsent),
            recheck_at=None if counts.unsent_since is None else unsent_recheck(counts.unsent_since, now),
        )
        return _Blocked(reason or "", when)

    def _unavailable(self, campaign: Campaign, now: datetime, tally: _Tally) -> NoAccountAvailable:
        retry_at = min(tally.retry_times, default=now + timedelta(seconds=RECHECK_SECONDS))
        result = NoAccountAvailable(retry_at=retry_at, reason=describe_unavailable(tally.reasons, retry_at))
        get_logger(campaign_id=campaign.id, owner=self._owner).info(
            "arbiter.exhausted", retry_at=retry_at.isoformat(), reason=result.reason
        )
        return result

    def _log(self, reservation: Reservation) -> Any:
        return get_logger(
            account_id=reservation.account.id,
            campaign_id=reservation.campaign_id,
            owner=self._owner,
            token=reservation.token,
        )


def _limits(candidate: _Candidate) -> AccountLimits:
    if candidate.limits is None:
        raise ValueError(f"account {candidate.id} has no valid limits and cannot be reserved")
    return candidate.limits


def _parse_settings(doc: Mapping[str, Any]) -> AccountCampaignSettings | InvalidDocument:
    try:
        return AccountCampaignSettings.from_doc(doc)
    except InvalidDocument as exc:
        _log_invalid(exc)
        return exc


def _log_invalid(exc: InvalidDocument) -> None:
    get_logger().warning(
        "store.invalid_document",
        collection=exc.collection,
        doc_id=str(exc.doc_id),
        field=exc.field,
        reason=exc.reason,
    )


def _give_back(key: str, path: str, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (filter, update) returning one open reservation's count and closing its record; it matches nothing once
    the record is gone (committed, rolled back or reclaimed), and never takes a counter below zero."""
    flt = {"_id": key, open_path(token): {"$exists": True}, "sent": {"$gt": 0}, path: {"$gt": 0}}
    return flt, {"$inc": {"sent": -1, path: -1}, "$unset": {open_path(token): ""}}


def _flight_filter(key: str, group: list[Reservation]) -> dict[str, Any]:
    return {"_id": key, **{open_path(r.token): {"$exists": True} for r in group}}


def _flight_update(group: list[Reservation]) -> dict[str, Any]:
    return {"$set": {f"{open_path(r.token)}.flown": True for r in group}}


def _open_fields(group: list[Reservation]) -> dict[str, str]:
    """The `$unset` of the open records of `group`."""
    return {open_path(r.token): "" for r in group}


def _all_or_none(landed: int, total: int) -> bool | None:
    return True if landed == total else False if landed == 0 else None
