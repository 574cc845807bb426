"""Account limits, pure: which limits apply, whether an account may send now, when it could, how many at once.

Seed 001's names: an account sends at most `email_campaign_settings.max_daily_sends` per day across all
campaigns, at most the lower of the campaign's and the account's `daily_limit` per day for one campaign, and
never twice within `min_wait_time` minutes (the larger of the account's and the campaign's). On top of those:
at most `max_hourly_sends` per clock hour across all campaigns and the campaign's `settings.hourly_limit` for
one campaign; a gap of `min_wait_time` plus a random 0..`settings.wait_jitter` minutes drawn once per gap; and a
warm-up `ramp` ({start, increase}) that caps the daily sends from the account's `ramp_started_on`. Days and
hours are the account's own (`email_accounts.timezone`, default UTC). The arbiter (`app/store/arbiter.py`)
enforces these with atomic writes; the reports show the same values.

The account's days and hours are computed in `account_clock.py`, the retry times of accounts held by open
reservations in `reservation_rechecks.py`; both are importable from here as before.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime

from app.domain.account_clock import account_day as account_day
from app.domain.account_clock import account_hour as account_hour
from app.domain.account_clock import next_account_day_start as next_account_day_start
from app.domain.account_clock import next_account_hour_start as next_account_hour_start
from app.domain.accounts import Ramp
from app.domain.models import AccountCampaignSettings, Campaign, EmailAccount
from app.domain.reservation_rechecks import HELD_WINDOW_MARGIN_SECONDS as HELD_WINDOW_MARGIN_SECONDS
from app.domain.reservation_rechecks import UNSENT_RECHECK_SECONDS as UNSENT_RECHECK_SECONDS
from app.domain.reservation_rechecks import held_window_end as held_window_end
from app.domain.reservation_rechecks import unsent_recheck as unsent_recheck

# Why an account could not be reserved; the first three are seed 001's setting names.
MAX_DAILY_SENDS = "max_daily_sends"
DAILY_LIMIT = "daily_limit"
MIN_WAIT_TIME = "min_wait_time"
MAX_HOURLY_SENDS = "max_hourly_sends"
HOURLY_LIMIT = "hourly_limit"
_DAILY = (MAX_DAILY_SENDS, DAILY_LIMIT)
TAKEN = "taken"
LIMIT_RACED = "limit_raced"
INVALID_SETTINGS = "invalid_settings"
INVALID_ACCOUNT = "invalid_account"

_REASON_TEXT = {
    MAX_DAILY_SENDS: "at max_daily_sends for today",
    DAILY_LIMIT: "at the campaign's daily_limit for today",
    MIN_WAIT_TIME: "inside their min_wait_time window",
    MAX_HOURLY_SENDS: "at max_hourly_sends for this hour",
    HOURLY_LIMIT: "at the campaign's hourly_limit for this hour",
    TAKEN: "just reserved by another dispatcher",
    LIMIT_RACED: "reached a daily limit during this attempt",
    INVALID_SETTINGS: "skipped for malformed email_campaign_settings (see store.invalid_document)",
    INVALID_ACCOUNT: "skipped as malformed email_accounts documents (see store.invalid_document)",
}


@dataclass(frozen=True)
class AccountLimits:
    """The limits that apply to one account sending for one campaign (None: unlimited).

    `max_daily_sends` is the configured ceiling; with a `ramp` the day's own limit is `effective_daily_limit`
    (the arbiter reserves under `limits_on(limits, now)`, which has it resolved). `timezone` is the account's:
    its days and hours are the ones counted.
    """

    max_daily_sends: int | None = None
    campaign_daily_limit: int | None = None
    min_wait_minutes: float = 0.0
    max_hourly_sends: int | None = None
    campaign_hourly_limit: int | None = None
    wait_jitter_minutes: float = 0.0  # extra random minutes per gap, uniform 0..N
    timezone: str = "UTC"
    ramp: Ramp | None = None
    ramp_started_on: date | None = None

    @property
    def waits(self) -> bool:
        """True when sends of this account are spaced by a wait window (a minimum gap or a random one)."""
        return self.min_wait_minutes > 0 or self.wait_jitter_minutes > 0


def effective_daily_limit(limits: AccountLimits, today: date) -> int | None:
    """Today's daily limit for all campaigns: `max_daily_sends`, or under a warm-up ramp `start + increase * n`
    on the n-th day since `ramp_started_on` (day 0: that date; before it, and without it, `start`), never above
    `max_daily_sends`."""
    if limits.ramp is None:
        return limits.max_daily_sends
    days = 0 if limits.ramp_started_on is None else max((today - limits.ramp_started_on).days, 0)
    ramped = limits.ramp.start + limits.ramp.increase * days
    return ramped if limits.max_daily_sends is None else min(ramped, limits.max_daily_sends)


def limits_on(limits: AccountLimits, now: datetime) -> AccountLimits:
    """`limits` with the ramp resolved to the account's day of `now`: `max_daily_sends` is the effective limit."""
    if limits.ramp is None:
        return limits
    today = date.fromisoformat(account_day(now, limits.timezone))
    return replace(limits, max_daily_sends=effective_daily_limit(limits, today), ramp=None, ramp_started_on=None)


def gap_minutes(limits: AccountLimits, rand: Callable[[], float] = random.random) -> float:
    """The wait before the account's next send, drawn once per gap: `min_wait_time` plus a uniform 0..N
    `wait_jitter` minutes, so that no gap is ever below the minimum."""
    jitter = min(max(rand(), 0.0), 1.0) * limits.wait_jitter_minutes
    return limits.min_wait_minutes + jitter


def merge_settings(items: Iterable[AccountCampaignSettings]) -> AccountCampaignSettings | None:
    """One account's `email_campaign_settings` documents as one: the strictest value of each limit wins."""
    given = list(items)
    if not given:
        return None
    ramps = [s.ramp for s in given if s.ramp is not None]
    return AccountCampaignSettings(
        email_id=given[0].email_id,
        daily_limit=_least(s.daily_limit for s in given),
        min_wait_time=max(s.min_wait_time for s in given),
        max_daily_sends=_least(s.max_daily_sends for s in given),
        max_hourly_sends=_least(s.max_hourly_sends for s in given),
        ramp=Ramp(min(r.start for r in ramps), min(r.increase for r in ramps)) if ramps else None,
    )


def _least(values: Iterable[int | None]) -> int | None:
    given = [v for v in values if v is not None]
    return min(given) if given else None


def limits_for(
    settings: AccountCampaignSettings | None, campaign: Campaign | None = None, account: EmailAccount | None = None
) -> AccountLimits:
    """Combine an account's settings with a campaign's (None: the account's own): the stricter value wins.
    `account` gives the time zone its days and hours are counted in, and the day its ramp started."""
    own = settings or AccountCampaignSettings(email_id="")
    pace = campaign.settings if campaign else None
    hourly, jitter = _campaign_pace(campaign)
    return AccountLimits(
        max_daily_sends=own.max_daily_sends,
        campaign_daily_limit=_least((pace.daily_limit if pace else None, own.daily_limit)),
        min_wait_minutes=max(pace.min_wait_time if pace else 0.0, own.min_wait_time),
        max_hourly_sends=own.max_hourly_sends,
        campaign_hourly_limit=hourly,
        wait_jitter_minutes=jitter,
        timezone=account.timezone if account else "UTC",
        ramp=own.ramp,
        ramp_started_on=account.ramp_started_on if account else None,
    )


def next_reset(limits: AccountLimits, now: datetime) -> datetime:
    """The earliest a used-up limit can reset: the account's next hour when it has an hourly limit, else its next
    day."""
    if limits.max_hourly_sends is not None or limits.campaign_hourly_limit is not None:
        return next_account_hour_start(now, limits.timezone)
    return next_account_day_start(now, limits.timezone)


def _campaign_pace(campaign: Campaign | None) -> tuple[int | None, float]:
    """The campaign's `settings.hourly_limit` and `settings.wait_jitter` (minutes)."""
    if campaign is None:
        return None, 0.0
    return campaign.settings.hourly_limit, campaign.settings.wait_jitter


def limit_reached(
    limits: AccountLimits, sent_today: int, campaign_sent_today: int, *, hour: tuple[int, int] = (0, 0)
) -> str | None:
    """Which limit is used up (MAX_DAILY_SENDS, DAILY_LIMIT, MAX_HOURLY_SENDS or HOURLY_LIMIT), or None while
    there is room. `hour` is (all campaigns, this campaign) sent this clock hour."""
    if limits.max_daily_sends is not None and sent_today >= limits.max_daily_sends:
        return MAX_DAILY_SENDS
    if limits.campaign_daily_limit is not None and campaign_sent_today >= limits.campaign_daily_limit:
        return DAILY_LIMIT
    if limits.max_hourly_sends is not None and hour[0] >= limits.max_hourly_sends:
        return MAX_HOURLY_SENDS
    if limits.campaign_hourly_limit is not None and hour[1] >= limits.campaign_hourly_limit:
        return HOURLY_LIMIT
    return None


def has_capacity(
    limits: AccountLimits, sent_today: int, campaign_sent_today: int, *, hour: tuple[int, int] = (0, 0)
) -> bool:
    """True while the account may send once more today and this hour, overall and for this campaign."""
    return limit_reached(limits, sent_today, campaign_sent_today, hour=hour) is None


def blocked_by(
    limits: AccountLimits,
    sent_today: int,
    campaign_sent_today: int,
    next_available_at: datetime | None,
    now: datetime,
    *,
    hour: tuple[int, int] = (0, 0),
) -> str | None:
    """Why the account cannot send for this campaign at `now` (a limit or MIN_WAIT_TIME), or None if it can."""
    reached = limit_reached(limits, sent_today, campaign_sent_today, hour=hour)
    if reached is not None:
        return reached
    if next_available_at is not None and next_available_at > now:
        return MIN_WAIT_TIME
    return None


def free_at(
    limits: AccountLimits,
    sent_today: int,
    campaign_sent_today: int,
    next_available_at: datetime | None,
    now: datetime,
    *,
    unsent: tuple[int, int] = (0, 0),
    recheck_at: datetime | None = None,
    hour: tuple[int, int] = (0, 0),
) -> datetime:
    """When this account could next send for this campaign: its wait window's end, the next hour when an hourly
    limit is used up, or its next day when a daily one is.

    `unsent` (all campaigns, this campaign) are counted reservations not yet handed to SMTP: a rollback, or the
    reclaim of a crashed holder, may give them back. When a limit is reached only because of them and
    `recheck_at` is given, that is when to look again instead.
    """
    earliest = now if next_available_at is None else max(now, next_available_at)
    reached = limit_reached(limits, sent_today, campaign_sent_today, hour=hour)
    if reached is None:
        return earliest
    if reached in _DAILY:
        reset = next_account_day_start(now, limits.timezone)
    else:
        reset = next_account_hour_start(now, limits.timezone)
    without_unsent = (sent_today - unsent[0], campaign_sent_today - unsent[1])
    hour_without = (hour[0] - unsent[0], hour[1] - unsent[1])
    if recheck_at is not None and has_capacity(limits, *without_unsent, hour=hour_without):
        return max(min(recheck_at, reset), earliest)
    return max(reset, earliest)


def capacity(
    limits: AccountLimits, sent_today: int, campaign_sent_today: int, wanted: int, *, hour: tuple[int, int] = (0, 0)
) -> int:
    """How many of `wanted` sends the account may take at once: what its limits leave, 1 with a wait window."""
    caps = (
        (limits.max_daily_sends, sent_today),
        (limits.campaign_daily_limit, campaign_sent_today),
        (limits.max_hourly_sends, hour[0]),
        (limits.campaign_hourly_limit, hour[1]),
    )
    room = [wanted, *(cap - used for cap, used in caps if cap is not None)]
    if limits.waits:
        room.append(1)
    return max(0, min(room))


def allocate(capacities: list[tuple[str, int]], wanted: int) -> dict[str, int]:
    """Spread `wanted` sends over accounts in the given (least recently used first) order, one per account per
    round, never more than an account's capacity: {account id: sends}."""
    left = dict(capacities)
    plan: dict[str, int] = {}
    while wanted > 0 and any(left.values()):
        for account_id, _ in capacities:
            if wanted == 0:
                break
            if left[account_id] > 0:
                left[account_id] -= 1
                plan[account_id] = plan.get(account_id, 0) + 1
                wanted -= 1
    return plan


def describe_unavailable(blocked: Mapping[str, int], retry_at: datetime) -> str:
    """An operator's sentence for why no account could be reserved, e.g. "2 accounts at max_daily_sends..."."""
    if not blocked:
        return (
            "no active sending account for this campaign: check email_accounts.status and the campaign's "
            "settings.account_ids"
        )
    parts = [f"{count} {_REASON_TEXT.get(reason, reason)}" for reason, count in sorted(blocked.items())]
    total = sum(blocked.values())
    noun = "account" if total == 1 else "accounts"
    return f"no sending account is free ({total} {noun}: {'; '.join(parts)}); next try at {retry_at.isoformat()}"
