"""The arbiter's reads: the accounts a reservation may use, their limits and today's counts.

Accounts come least recently used first; their `email_campaign_settings` from a snapshot of that (small)
collection; today's counts from `account_usage` by `_id`. Malformed documents are logged and counted, never
ignored, so that the reason an account does not send reaches the operator. The values read, and the pure
judgement on them (why one is passed over, who takes which send), are in `account_candidates.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from app.domain.limits import AccountLimits, limits_for, limits_on
from app.domain.models import AccountCampaignSettings, Campaign, InvalidDocument, id_str
from app.store import schema
from app.store.account_candidates import RECHECK_SECONDS as RECHECK_SECONDS
from app.store.account_candidates import AccountRow as AccountRow
from app.store.account_candidates import Blocked as Blocked
from app.store.account_candidates import Candidate as Candidate
from app.store.account_candidates import Counts as Counts
from app.store.account_candidates import NoAccountAvailable as NoAccountAvailable
from app.store.account_candidates import Tally as Tally
from app.store.account_candidates import assign as assign
from app.store.account_candidates import aware
from app.store.account_candidates import blocked as blocked
from app.store.account_candidates import chunks as chunks
from app.store.account_candidates import pinned_only as pinned_only
from app.store.account_candidates import room as room
from app.store.account_candidates import valid_limits as valid_limits
from app.store.account_settings import SettingsSnapshot
from app.store.account_usage import usage_key
from app.store.client import Database
from app.store.documents import id_values, iter_valid
from app.store.reclaim import records


def window_open(now: datetime) -> dict[str, Any]:
    """Accounts whose wait window is over, never opened, or unreadable (so that it is reported, not ignored)."""
    return {"$or": [{"next_available_at": {"$lte": now}}, {"next_available_at": {"$not": {"$type": "date"}}}]}


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
            times = [aware(e["at"]) for e in unsent if isinstance(e.get("at"), datetime)]
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
