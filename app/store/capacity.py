"""What each account could send for a campaign now, as the arbiter would decide it, read without writing.

The arbiter (`store/arbiter.py`) answers this with conditional writes; `run-dispatcher --dry-run` must change
nothing, so this reads the same documents (the campaign's active allowed accounts, least recently used first,
their `email_campaign_settings`, today's `account_usage`) and applies the same pure rules (`domain/limits.py`).
Sends the preview itself would make are kept in a `Planned` overlay in memory, never written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from app.domain.limits import (
    INVALID_ACCOUNT,
    INVALID_SETTINGS,
    AccountLimits,
    blocked_by,
    capacity,
    describe_unavailable,
    free_at,
)
from app.domain.models import Campaign, EmailAccount
from app.domain.scheduling import after_minutes
from app.store.account_scan import RECHECK_SECONDS, AccountScan, Candidate, Counts, NoAccountAvailable, Tally
from app.store.account_usage import usage_path
from app.store.client import Database


@dataclass(frozen=True)
class AccountState:
    """One allowed account as a reservation for the campaign reads it: limits, today's counts, wait window."""

    account: EmailAccount
    limits: AccountLimits | None  # None: its email_campaign_settings are malformed (never reserved)
    sent_today: int = 0
    campaign_sent_today: int = 0
    next_available_at: datetime | None = None
    hour: tuple[int, int] = (0, 0)  # sent this clock hour (the account's): all campaigns, this campaign

    def blocked(self, now: datetime) -> str | None:
        """Why the arbiter would pass this account over at `now` (a limit, the wait window), or None."""
        if self.limits is None:
            return INVALID_SETTINGS
        return blocked_by(
            self.limits, self.sent_today, self.campaign_sent_today, self.next_available_at, now, hour=self.hour
        )

    def free_at(self, now: datetime) -> datetime:
        """When it could next send for the campaign."""
        if self.limits is None:
            return now + timedelta(seconds=RECHECK_SECONDS)
        return free_at(
            self.limits, self.sent_today, self.campaign_sent_today, self.next_available_at, now, hour=self.hour
        )


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
        if limits.waits:  # the shortest gap the arbiter could draw
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
            (s.account.id, capacity(s.limits, s.sent_today, s.campaign_sent_today, wanted, hour=s.hour))
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
        mine = planned.by_campaign.get((account_id, self.campaign_id), 0)
        # A preview is of one moment: its sends fall in the account's current hour.
        return replace(
            state,
            sent_today=state.sent_today + given,
            campaign_sent_today=state.campaign_sent_today + mine,
            next_available_at=max(opens, default=None),
            hour=(state.hour[0] + given, state.hour[1] + mine),
        )


async def read_accounts(
    db: Database, campaign: Campaign, now: datetime, *, only: Collection[str] | None = None
) -> CampaignAccounts:
    """The campaign's active allowed accounts (settings.account_ids, narrowed to `only`), least recently used
    first, with their combined limits at `now` (a ramp resolved to each account's day), the counts of each
    account's day and hour, and wait windows: the arbiter's own scan, read only."""
    path = usage_path(campaign.id)  # refuses a campaign id the arbiter could not count either
    scan = AccountScan(db, settings_ttl=0.0)
    tally = Tally()
    candidates = await scan.scan(campaign, {}, (), only, tally, now=now)
    counts = await scan.counts_for(candidates, now, path)
    states = tuple(_state(c, counts.get(c.id, Counts())) for c in candidates)
    return CampaignAccounts(campaign.id, states, len(tally.invalid))


def _state(candidate: Candidate, counts: Counts) -> AccountState:
    return AccountState(
        candidate.row.account,
        candidate.limits,
        counts.sent,
        counts.campaign,
        candidate.row.next_available_at,
        (counts.hour, counts.campaign_hour),
    )
