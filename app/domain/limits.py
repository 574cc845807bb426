"""Account limits, pure: which limits apply, whether an account may send now, when it could, how many at once.

Seed 001's names: an account sends at most `email_campaign_settings.max_daily_sends` per day across all
campaigns, at most the lower of the campaign's and the account's `daily_limit` per day for one campaign, and
never twice within `min_wait_time` minutes (the larger of the account's and the campaign's). The arbiter
(`app/store/arbiter.py`) enforces these with atomic writes; the reports show the same values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.liveness import MAX_BEAT_SECONDS, reclaim_seconds
from app.domain.models import AccountCampaignSettings, Campaign
from app.domain.scheduling import next_day_start

# Why an account could not be reserved; the first three are seed 001's setting names.
MAX_DAILY_SENDS = "max_daily_sends"
DAILY_LIMIT = "daily_limit"
MIN_WAIT_TIME = "min_wait_time"
TAKEN = "taken"
LIMIT_RACED = "limit_raced"
INVALID_SETTINGS = "invalid_settings"
INVALID_ACCOUNT = "invalid_account"
# A window held by a live reservation is looked at again this long after its send should have ended.
HELD_WINDOW_MARGIN_SECONDS = 1.0
# By then a reservation not yet in flight has flown, been rolled back, or (its holder gone) been reclaimed,
# whatever lease its holder runs with.
UNSENT_RECHECK_SECONDS = reclaim_seconds(MAX_BEAT_SECONDS)

_REASON_TEXT = {
    MAX_DAILY_SENDS: "at max_daily_sends for today",
    DAILY_LIMIT: "at the campaign's daily_limit for today",
    MIN_WAIT_TIME: "inside their min_wait_time window",
    TAKEN: "just reserved by another dispatcher",
    LIMIT_RACED: "reached a daily limit during this attempt",
    INVALID_SETTINGS: "skipped for malformed email_campaign_settings (see store.invalid_document)",
    INVALID_ACCOUNT: "skipped as malformed email_accounts documents (see store.invalid_document)",
}


@dataclass(frozen=True)
class AccountLimits:
    """The limits that apply to one account sending for one campaign (None: unlimited)."""

    max_daily_sends: int | None = None
    campaign_daily_limit: int | None = None
    min_wait_minutes: float = 0.0


def merge_settings(items: Iterable[AccountCampaignSettings]) -> AccountCampaignSettings | None:
    """One account's `email_campaign_settings` documents as one: the strictest value of each limit wins."""
    given = list(items)
    if not given:
        return None
    daily = [s.daily_limit for s in given if s.daily_limit is not None]
    total = [s.max_daily_sends for s in given if s.max_daily_sends is not None]
    return AccountCampaignSettings(
        email_id=given[0].email_id,
        daily_limit=min(daily) if daily else None,
        min_wait_time=max(s.min_wait_time for s in given),
        max_daily_sends=min(total) if total else None,
    )


def limits_for(settings: AccountCampaignSettings | None, campaign: Campaign | None = None) -> AccountLimits:
    """Combine an account's settings with a campaign's (None: the account's own): the stricter value wins."""
    own_daily = settings.daily_limit if settings else None
    campaign_daily = campaign.settings.daily_limit if campaign else None
    daily = [d for d in (campaign_daily, own_daily) if d is not None]
    return AccountLimits(
        max_daily_sends=settings.max_daily_sends if settings else None,
        campaign_daily_limit=min(daily) if daily else None,
        min_wait_minutes=max(
            campaign.settings.min_wait_time if campaign else 0.0, settings.min_wait_time if settings else 0.0
        ),
    )


def limit_reached(limits: AccountLimits, sent_today: int, campaign_sent_today: int) -> str | None:
    """Which daily limit is used up (MAX_DAILY_SENDS or DAILY_LIMIT), or None while there is room."""
    if limits.max_daily_sends is not None and sent_today >= limits.max_daily_sends:
        return MAX_DAILY_SENDS
    if limits.campaign_daily_limit is not None and campaign_sent_today >= limits.campaign_daily_limit:
        return DAILY_LIMIT
    return None


def has_capacity(limits: AccountLimits, sent_today: int, campaign_sent_today: int) -> bool:
    """True while the account may send once more today, overall and for this campaign."""
    return limit_reached(limits, sent_today, campaign_sent_today) is None


def blocked_by(
    limits: AccountLimits,
    sent_today: int,
    campaign_sent_today: int,
    next_available_at: datetime | None,
    now: datetime,
) -> str | None:
    """Why the account cannot send for this campaign at `now` (a limit or MIN_WAIT_TIME), or None if it can."""
    reached = limit_reached(limits, sent_today, campaign_sent_today)
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
) -> datetime:
    """When this account could next send for this campaign: its wait window's end, or tomorrow when exhausted.

    `unsent` (all campaigns, this campaign) are counted reservations not yet handed to SMTP: a rollback, or the
    reclaim of a crashed holder, may give them back. When a limit is reached only because of them and
    `recheck_at` is given, that is when to look again instead of tomorrow.
    """
    earliest = now if next_available_at is None else max(now, next_available_at)
    if has_capacity(limits, sent_today, campaign_sent_today):
        return earliest
    without_unsent = (sent_today - unsent[0], campaign_sent_today - unsent[1])
    if recheck_at is not None and has_capacity(limits, *without_unsent):
        return max(min(recheck_at, next_day_start(now)), earliest)
    return max(next_day_start(now), earliest)


def unsent_recheck(
    since: datetime,
    now: datetime,
    *,
    horizon_seconds: float = UNSENT_RECHECK_SECONDS,
    margin_seconds: float = HELD_WINDOW_MARGIN_SECONDS,
) -> datetime:
    """When to look again at a limit filled by reservations not yet in flight, the oldest made at `since`.

    By `since + horizon_seconds` each has flown, been rolled back or been reclaimed; never sooner than a margin
    from `now`, so a slow holder is polled, not spun on.
    """
    return max(since + timedelta(seconds=horizon_seconds), now + timedelta(seconds=margin_seconds))


def held_window_end(
    next_available_at: datetime | None,
    reserved_wait_end: datetime | None,
    now: datetime,
    *,
    margin_seconds: float = HELD_WINDOW_MARGIN_SECONDS,
) -> datetime | None:
    """When a wait window held by an open reservation can really end, for a waiting lead's retry time.

    While reserved, the window stays closed until the holder's crash hold ends (`next_available_at`), but a live
    holder moves it to its hand-over plus the wait when it commits. `reserved_wait_end` (reservation time plus the
    wait; None when no reservation holds the window) is therefore the earliest end: look again a margin after it,
    and every margin while the send lasts, never later than the hold.
    """
    if next_available_at is None or reserved_wait_end is None:
        return next_available_at
    expected = max(reserved_wait_end, now) + timedelta(seconds=margin_seconds)
    return min(next_available_at, expected)


def capacity(limits: AccountLimits, sent_today: int, campaign_sent_today: int, wanted: int) -> int:
    """How many of `wanted` sends the account may take at once: what its limits leave, 1 with a wait window."""
    room = [wanted]
    if limits.max_daily_sends is not None:
        room.append(limits.max_daily_sends - sent_today)
    if limits.campaign_daily_limit is not None:
        room.append(limits.campaign_daily_limit - campaign_sent_today)
    if limits.min_wait_minutes > 0:
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
