"""What each account could send for a campaign now, as the arbiter would decide it, read without writing.

The arbiter (`store/arbiter.py`) answers this with conditional writes; `run-dispatcher --dry-run` must change
nothing, so this reads the same documents (the campaign's active allowed accounts, least recently used first,
their `email_campaign_settings`, today's `account_usage`) and applies the same pure rules (`domain/limits.py`).
Sends the preview itself would make are kept in a `Planned` overlay in memory, never written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain.limits import (
    INVALID_ACCOUNT,
    INVALID_SETTINGS,
    AccountLimits,
    blocked_by,
    capacity,
    describe_unavailable,
    free_at,
    limits_for,
    merge_settings,
)
from app.domain.models import AccountCampaignSettings, Campaign, EmailAccount, InvalidDocument, id_str
from app.domain.scheduling import after_minutes, utc_day
from app.store import schema
from app.store.account_scan import RECHECK_SECONDS, NoAccountAvailable
from app.store.account_usage import usage_key, usage_path
from app.store.client import Database
from app.store.documents import id_values


@dataclass(frozen=True)
class AccountState:
    """One allowed account as a reservation for the campaign reads it: limits, today's counts, wait window."""

    account: EmailAccount
    limits: AccountLimits | None  # None: its email_campaign_settings are malformed (never reserved)
    sent_today: int = 0
    campaign_sent_today: int = 0
    next_available_at: datetime | None = None

    def blocked(self, now: datetime) -> str | None:
        """Why the arbiter would pass this account over at `now` (a limit, the wait window), or None."""
        if self.limits is None:
            return INVALID_SETTINGS
        return blocked_by(self.limits, self.sent_today, self.campaign_sent_today, self.next_available_at, now)

    def free_at(self, now: datetime) -> datetime:
        """When it could next send for the campaign."""
        if self.limits is None:
            return now + timedelta(seconds=RECHECK_SECONDS)
        return free_at(self.limits, self.sent_today, self.campaign_sent_today, self.next_available_at, now)


@dataclass
class Planned:
    """Sends a preview has given accounts so far, counted as the arbiter's writes would count them."""

    sent: Counter[str] = field(default_factory=Counter)
    by_campaign: Counter[tuple[str, str]] = field(default_factory=Counter)
    windows: dict[str, datetime] = field(default_factory=dict)
    used: dict[str, None] = field(default_factory=dict)  # accounts in the order last used (an ordered set)

    def record(self, account_id: str, campaign_id: str, limits: AccountLimits, now: datetime) -> None:
        """One send from `account_id` for `campaign_id` at `now`: counted, its wait window opened, used last."""
        self.sent[account_id] += 1
        self.by_campaign[(account_id, campaign_id)] += 1
        if limits.min_wait_minutes > 0:
            self.windows[account_id] = after_minutes(now, limits.min_wait_minutes)
        self.used.pop(account_id, None)
        self.used[account_id] = None


@dataclass(frozen=True)
class CampaignAccounts:
    """The accounts a campaign may use, least recently used first, as read from the database."""

    campaign_id: str
    accounts: tuple[AccountState, ...] = ()
    invalid_accounts: int = 0  # malformed email_accounts documents among the allowed ones

    def states(self, planned: Planned | None = None) -> list[AccountState]:
        """The accounts with the preview's own sends added, in the order the arbiter would try them now."""
        planned = planned or Planned()
        views = [self._with(state, planned) for state in self.accounts]
        # A reservation sets last_used_at to now: accounts the preview used go last, the latest used at the end.
        rank = {account_id: i for i, account_id in enumerate(planned.used)}
        return sorted(views, key=lambda s: rank.get(s.account.id, -1))

    def capacities(self, now: datetime, wanted: int, planned: Planned | None = None) -> list[tuple[str, int]]:
        """How many of `wanted` sends each free account could take now (`limits.capacity`), in arbiter order."""
        return [
            (s.account.id, capacity(s.limits, s.sent_today, s.campaign_sent_today, wanted))
            for s in self.states(planned)
            if s.limits is not None and s.blocked(now) is None
        ]

    def unavailable(self, now: datetime, planned: Planned | None = None) -> NoAccountAvailable:
        """When an account could next send and why none can now, in the arbiter's words."""
        reasons: Counter[str] = Counter()
        times: list[datetime] = []
        for state in self.states(planned):
            reasons[state.blocked(now) or ""] += 1
            times.append(state.free_at(now))
        reasons.pop("", None)
        if self.invalid_accounts:
            reasons[INVALID_ACCOUNT] += self.invalid_accounts
        retry_at = min(times, default=now + timedelta(seconds=RECHECK_SECONDS))
        return NoAccountAvailable(retry_at, describe_unavailable(reasons, retry_at))

    def state(self, account_id: str) -> AccountState:
        """One account as read (KeyError when it is not among the campaign's accounts)."""
        return {s.account.id: s for s in self.accounts}[account_id]

    def _with(self, state: AccountState, planned: Planned) -> AccountState:
        account_id = state.account.id
        given = planned.sent.get(account_id, 0)
        window = planned.windows.get(account_id)
        if not given and window is None:
            return state
        opens = [t for t in (state.next_available_at, window) if t is not None]
        return replace(
            state,
            sent_today=state.sent_today + given,
            campaign_sent_today=state.campaign_sent_today + planned.by_campaign.get((account_id, self.campaign_id), 0),
            next_available_at=max(opens, default=None),
        )


async def read_accounts(
    db: Database, campaign: Campaign, now: datetime, *, only: Collection[str] | None = None
) -> CampaignAccounts:
    """The campaign's active allowed accounts (settings.account_ids, narrowed to `only`), least recently used
    first, with their combined limits, today's counts and wait windows. Reads only."""
    path = usage_path(campaign.id)  # refuses a campaign id the arbiter could not count either
    allowed = _allowed_ids(campaign, only)
    if allowed is not None and not allowed:
        return CampaignAccounts(campaign.id)
    flt: dict[str, Any] = {"status": "active"}
    if allowed is not None:
        flt["_id"] = {"$in": [form for i in sorted(allowed) for form in id_values(i)]}
    rows: list[tuple[EmailAccount, datetime | None]] = []
    invalid = 0
    async for doc in db[schema.EMAIL_ACCOUNTS].find(flt, sort=[("last_used_at", 1), ("_id", 1)]):
        try:
            rows.append(_account_row(doc))
        except InvalidDocument:
            invalid += 1
    ids = [account.id for account, _ in rows]
    settings = await _settings(db, ids)
    counts = await _counts(db, ids, utc_day(now), path)
    states = tuple(
        AccountState(account, _limits(settings.get(account.id), campaign), *counts.get(account.id, (0, 0)), window)
        for account, window in rows
    )
    return CampaignAccounts(campaign.id, states, invalid)


def _allowed_ids(campaign: Campaign, only: Collection[str] | None) -> set[str] | None:
    """Account ids the campaign may use, or None for "every active account" (as the arbiter's `_allowed_ids`)."""
    allowed: set[str] | None = set(campaign.settings.account_ids) or None
    if only is not None:
        given = {id_str(a) for a in only}
        allowed = given if allowed is None else allowed & given
    return allowed


def _account_row(doc: Mapping[str, Any]) -> tuple[EmailAccount, datetime | None]:
    account = EmailAccount.from_doc(doc)
    value = doc.get("next_available_at")
    if value is not None and not isinstance(value, datetime):
        raise InvalidDocument(schema.EMAIL_ACCOUNTS, doc.get("_id"), "next_available_at", "must be a date")
    return account, value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _limits(settings: AccountCampaignSettings | InvalidDocument | None, campaign: Campaign) -> AccountLimits | None:
    return None if isinstance(settings, InvalidDocument) else limits_for(settings, campaign)


async def _settings(db: Database, ids: list[str]) -> dict[str, AccountCampaignSettings | InvalidDocument]:
    """Each account's email_campaign_settings combined the arbiter's way: the strictest valid value of each limit,
    or the first malformed document when none is valid."""
    if not ids:
        return {}
    parsed: dict[str, list[AccountCampaignSettings | InvalidDocument]] = {}
    flt = {"email_id": {"$in": [form for i in ids for form in id_values(i)]}}
    async for doc in db[schema.EMAIL_CAMPAIGN_SETTINGS].find(flt, sort=[("_id", 1)]):
        try:
            item: AccountCampaignSettings | InvalidDocument = AccountCampaignSettings.from_doc(doc)
        except InvalidDocument as exc:
            item = exc
        parsed.setdefault(id_str(doc.get("email_id")), []).append(item)
    combined: dict[str, AccountCampaignSettings | InvalidDocument] = {}
    for key, items in parsed.items():
        valid = merge_settings(s for s in items if isinstance(s, AccountCampaignSettings))
        combined[key] = valid if valid is not None else items[0]
    return combined


async def _counts(db: Database, ids: list[str], day: str, path: str) -> dict[str, tuple[int, int]]:
    """Today's (sent, sent for this campaign) per account, from `account_usage` by `_id`."""
    if not ids:
        return {}
    campaign_id = path.partition(".")[2]
    found: dict[str, tuple[int, int]] = {}
    keys = [usage_key(i, day) for i in ids]
    async for doc in db[schema.ACCOUNT_USAGE].find({"_id": {"$in": keys}}, projection={"sent": 1, path: 1}):
        campaigns = doc.get("campaigns")
        campaign_sent = campaigns.get(campaign_id) if isinstance(campaigns, Mapping) else None
        found[str(doc["_id"]).rpartition(":")[0]] = (_count(doc.get("sent")), _count(campaign_sent))
    return found


def _count(value: object) -> int:
    """A counter as the arbiter reads it: anything but a number is 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)
