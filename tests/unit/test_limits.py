"""Limit arithmetic of the arbiter: which limits apply, whether an account has room, and when it is free."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.limits import (
    DAILY_LIMIT,
    MAX_DAILY_SENDS,
    MIN_WAIT_TIME,
    TAKEN,
    AccountLimits,
    blocked_by,
    describe_unavailable,
    free_at,
    has_capacity,
    limit_reached,
    limits_for,
)
from app.domain.models import AccountCampaignSettings, Campaign, CampaignSettings
from app.store.arbiter import usage_path

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 15, tzinfo=UTC)


def campaign(daily_limit: int | None = None, min_wait: float = 0.0) -> Campaign:
    return Campaign(
        id="c1",
        name="Spring",
        status="active",
        sequence_id="s1",
        settings=CampaignSettings(daily_limit=daily_limit, min_wait_time=min_wait),
    )


def account_settings(
    daily_limit: int | None = None, min_wait: float = 0.0, max_daily: int | None = None
) -> AccountCampaignSettings:
    return AccountCampaignSettings(
        email_id="a1", daily_limit=daily_limit, min_wait_time=min_wait, max_daily_sends=max_daily
    )


@pytest.mark.parametrize(
    ("own", "camp", "expected"),
    [
        # No settings at all: unlimited, no wait.
        (None, campaign(), AccountLimits(None, None, 0.0)),
        # Only the campaign speaks.
        (None, campaign(daily_limit=50, min_wait=4), AccountLimits(None, 50, 4.0)),
        # Only the account speaks.
        (account_settings(30, 2, 100), campaign(), AccountLimits(100, 30, 2.0)),
        # Both: the lower daily limit and the longer wait win.
        (account_settings(30, 2, 100), campaign(daily_limit=50, min_wait=4), AccountLimits(100, 30, 4.0)),
        (account_settings(80, 6, None), campaign(daily_limit=50, min_wait=4), AccountLimits(None, 50, 6.0)),
        # A zero limit is a limit, not "unset".
        (account_settings(0, 0, 0), campaign(daily_limit=50), AccountLimits(0, 0, 0.0)),
        (account_settings(None, 0.5, None), campaign(daily_limit=0, min_wait=0.25), AccountLimits(None, 0, 0.5)),
    ],
)
def test_limits_combine_account_and_campaign_settings_strictest_first(
    own: AccountCampaignSettings | None, camp: Campaign, expected: AccountLimits
) -> None:
    assert limits_for(own, camp) == expected


@pytest.mark.parametrize(
    ("limits", "sent", "campaign_sent", "reached"),
    [
        (AccountLimits(None, None, 0), 10_000, 10_000, None),
        (AccountLimits(5, None, 0), 4, 4, None),
        (AccountLimits(5, None, 0), 5, 0, MAX_DAILY_SENDS),  # other campaigns used the account up
        (AccountLimits(5, None, 0), 6, 0, MAX_DAILY_SENDS),
        (AccountLimits(None, 3, 0), 40, 2, None),
        (AccountLimits(None, 3, 0), 3, 3, DAILY_LIMIT),
        (AccountLimits(10, 3, 0), 9, 3, DAILY_LIMIT),
        (AccountLimits(10, 3, 0), 10, 1, MAX_DAILY_SENDS),
        (AccountLimits(0, None, 0), 0, 0, MAX_DAILY_SENDS),  # a limit of 0 never sends
        (AccountLimits(None, 0, 0), 0, 0, DAILY_LIMIT),
    ],
)
def test_capacity_needs_room_under_both_daily_limits(
    limits: AccountLimits, sent: int, campaign_sent: int, reached: str | None
) -> None:
    assert limit_reached(limits, sent, campaign_sent) == reached
    assert has_capacity(limits, sent, campaign_sent) is (reached is None)


@pytest.mark.parametrize(
    ("limits", "sent", "campaign_sent", "next_available_at", "blocked", "free"),
    [
        # Free now: never used, or its wait window already over.
        (AccountLimits(5, 3, 4), 0, 0, None, None, NOW),
        (AccountLimits(5, 3, 4), 1, 1, NOW - timedelta(minutes=1), None, NOW),
        (AccountLimits(5, 3, 4), 1, 1, NOW, None, NOW),
        # Inside the wait window: free when it ends.
        (AccountLimits(5, 3, 4), 1, 1, NOW + timedelta(minutes=3), MIN_WAIT_TIME, NOW + timedelta(minutes=3)),
        # Exhausted for today: free at the next UTC midnight.
        (AccountLimits(5, 3, 4), 5, 1, None, MAX_DAILY_SENDS, MIDNIGHT),
        (AccountLimits(5, 3, 4), 3, 3, NOW + timedelta(minutes=2), DAILY_LIMIT, MIDNIGHT),
        # Exhausted and a wait window reaching past midnight: the later of the two.
        (
            AccountLimits(5, None, 1000),
            5,
            0,
            MIDNIGHT + timedelta(hours=2),
            MAX_DAILY_SENDS,
            MIDNIGHT + timedelta(hours=2),
        ),
    ],
)
def test_free_at_is_the_wait_window_end_or_tomorrow_when_exhausted(
    limits: AccountLimits,
    sent: int,
    campaign_sent: int,
    next_available_at: datetime | None,
    blocked: str | None,
    free: datetime,
) -> None:
    assert blocked_by(limits, sent, campaign_sent, next_available_at, NOW) == blocked
    assert free_at(limits, sent, campaign_sent, next_available_at, NOW) == free


def test_unavailable_reason_counts_each_cause_and_names_the_retry_time() -> None:
    reason = describe_unavailable({MAX_DAILY_SENDS: 2, MIN_WAIT_TIME: 1, TAKEN: 1}, MIDNIGHT)
    assert "4 accounts" in reason
    assert "2 at max_daily_sends for today" in reason
    assert "1 inside their min_wait_time window" in reason
    assert "1 just reserved by another dispatcher" in reason
    assert MIDNIGHT.isoformat() in reason


def test_unavailable_reason_without_accounts_tells_the_operator_where_to_look() -> None:
    reason = describe_unavailable({}, NOW)
    assert "no active sending account" in reason
    assert "account_ids" in reason


@pytest.mark.parametrize("bad", ["", "a.b", "$where", "x\0y"])
def test_campaign_ids_that_would_break_the_usage_path_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"account_usage\.campaigns"):
        usage_path(bad)


def test_usage_path_keys_counters_by_campaign_id() -> None:
    assert usage_path("65f0c0ffee0000000000beef") == "campaigns.65f0c0ffee0000000000beef"


def test_capacity_is_what_every_limit_leaves_and_one_with_a_wait_window() -> None:
    from app.domain.limits import capacity

    unlimited = AccountLimits(max_daily_sends=None, campaign_daily_limit=None, min_wait_minutes=0.0)
    assert capacity(unlimited, 500, 500, wanted=7) == 7
    daily = AccountLimits(max_daily_sends=10, campaign_daily_limit=None, min_wait_minutes=0.0)
    assert capacity(daily, 8, 0, wanted=7) == 2
    campaign_cap = AccountLimits(max_daily_sends=10, campaign_daily_limit=4, min_wait_minutes=0.0)
    assert capacity(campaign_cap, 0, 3, wanted=7) == 1
    assert capacity(campaign_cap, 0, 6, wanted=7) == 0  # already over (the limit was lowered): never negative
    waiting = AccountLimits(max_daily_sends=None, campaign_daily_limit=None, min_wait_minutes=0.5)
    assert capacity(waiting, 0, 0, wanted=7) == 1


def test_allocate_spreads_one_per_account_per_round_in_the_given_order() -> None:
    from app.domain.limits import allocate

    assert allocate([("a", 5), ("b", 5), ("c", 5)], 2) == {"a": 1, "b": 1}
    assert allocate([("a", 5), ("b", 5), ("c", 5)], 7) == {"a": 3, "b": 2, "c": 2}
    assert allocate([("a", 1), ("b", 5)], 4) == {"a": 1, "b": 3}
    assert allocate([("a", 1), ("b", 2)], 10) == {"a": 1, "b": 2}  # no more than the room there is
    assert allocate([("a", 0)], 3) == {}
    assert allocate([], 3) == {}
    assert allocate([("a", 4)], 0) == {}
