"""Account days and hours in the account's time zone, hourly limits, random gaps and warm-up ramps: pure tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from app.domain.accounts import AccountCampaignSettings, EmailAccount, Ramp
from app.domain.campaigns import Campaign, CampaignSettings
from app.domain.limits import (
    HOURLY_LIMIT,
    MAX_DAILY_SENDS,
    MAX_HOURLY_SENDS,
    AccountLimits,
    account_day,
    account_hour,
    capacity,
    effective_daily_limit,
    free_at,
    gap_minutes,
    limit_reached,
    limits_for,
    limits_on,
    merge_settings,
    next_account_day_start,
    next_account_hour_start,
)
from app.domain.models import InvalidDocument


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "tz", "day", "hour"),
    [
        (utc(2026, 3, 14, 9, 30), "UTC", "2026-03-14", "09"),
        (utc(2026, 3, 14, 23, 30), "Europe/Berlin", "2026-03-15", "00"),  # local midnight is before UTC's
        (utc(2026, 3, 15, 3, 59), "America/New_York", "2026-03-14", "23"),  # EDT, UTC-4
        (utc(2026, 1, 15, 4, 59), "America/New_York", "2026-01-14", "23"),  # EST, UTC-5
        (utc(2026, 3, 14, 18, 29), "Asia/Kolkata", "2026-03-14", "23"),  # UTC+5:30
        (utc(2026, 3, 14, 18, 30), "Asia/Kolkata", "2026-03-15", "00"),
        (utc(2026, 3, 14, 10, 0), "Pacific/Kiritimati", "2026-03-15", "00"),  # UTC+14
        (utc(2024, 2, 29, 12, 0), "Australia/Sydney", "2024-02-29", "23"),  # a leap day, AEDT
    ],
)
def test_an_accounts_day_and_hour_are_its_local_ones(now: datetime, tz: str, day: str, hour: str) -> None:
    assert (account_day(now, tz), account_hour(now, tz)) == (day, hour)


@pytest.mark.parametrize(
    ("now", "tz", "day_starts", "hour_starts"),
    [
        (utc(2026, 3, 14, 9, 30), "UTC", utc(2026, 3, 15), utc(2026, 3, 14, 10)),
        (utc(2026, 3, 14, 9, 30), "Europe/Berlin", utc(2026, 3, 14, 23), utc(2026, 3, 14, 10)),
        (utc(2026, 3, 14, 9, 30), "Asia/Kolkata", utc(2026, 3, 14, 18, 30), utc(2026, 3, 14, 10, 30)),
        (utc(2026, 3, 14, 9, 0), "Asia/Kolkata", utc(2026, 3, 14, 18, 30), utc(2026, 3, 14, 9, 30)),
        # Clocks go forward in New York on 2026-03-08 at 02:00: that day is 23 hours long.
        (utc(2026, 3, 8, 6, 30), "America/New_York", utc(2026, 3, 9, 4), utc(2026, 3, 8, 7)),
        # Clocks go back in Berlin on 2026-10-25 at 03:00: that day is 25 hours long.
        (utc(2026, 10, 24, 22, 30), "Europe/Berlin", utc(2026, 10, 25, 23), utc(2026, 10, 24, 23)),
    ],
)
def test_daily_limits_reset_at_local_midnight_and_hourly_ones_at_the_local_hour(
    now: datetime, tz: str, day_starts: datetime, hour_starts: datetime
) -> None:
    assert next_account_day_start(now, tz) == day_starts
    assert next_account_hour_start(now, tz) == hour_starts


def test_the_next_hour_is_always_after_now_across_a_clock_change() -> None:
    # 00:30 UTC is 01:30 CET... and 02:30 CEST does not exist on 2026-03-29 in Berlin.
    for minute in range(0, 180, 7):
        now = utc(2026, 3, 29, 0, 0).replace(minute=minute % 60, hour=minute // 60)
        assert next_account_hour_start(now, "Europe/Berlin") > now


RAMP = Ramp(start=5, increase=2)


@pytest.mark.parametrize(
    ("max_daily", "started", "today", "expected"),
    [
        (None, None, date(2026, 3, 14), None),  # no ramp below is tested separately
        (40, date(2026, 3, 10), date(2026, 3, 10), 5),  # day 0
        (40, date(2026, 3, 10), date(2026, 3, 11), 7),
        (40, date(2026, 3, 10), date(2026, 3, 14), 13),
        (40, date(2026, 3, 10), date(2026, 3, 30), 40),  # never above max_daily_sends
        (40, date(2026, 3, 20), date(2026, 3, 14), 5),  # before the start date: the first day's
        (40, None, date(2026, 3, 14), 5),  # no start date: the first day's
        (None, date(2026, 3, 10), date(2026, 4, 9), 65),  # without a ceiling it keeps growing
        (3, date(2026, 3, 10), date(2026, 3, 10), 3),  # a ceiling below the start wins
        (40, date(2024, 2, 28), date(2024, 3, 1), 9),  # across a leap day
    ],
)
def test_a_ramp_grows_the_daily_limit_from_its_start_day(
    max_daily: int | None, started: date | None, today: date, expected: int | None
) -> None:
    ramp = None if max_daily is None and started is None else RAMP
    limits = AccountLimits(max_daily_sends=max_daily, ramp=ramp, ramp_started_on=started)
    assert effective_daily_limit(limits, today) == expected


def test_without_a_ramp_the_daily_limit_is_max_daily_sends() -> None:
    assert effective_daily_limit(AccountLimits(max_daily_sends=30), date(2026, 3, 14)) == 30


def test_the_arbiter_reserves_under_the_ramp_of_the_accounts_own_day() -> None:
    limits = AccountLimits(max_daily_sends=40, timezone="Asia/Tokyo", ramp=RAMP, ramp_started_on=date(2026, 3, 10))
    # 16:00 UTC on the 10th is already the 11th in Tokyo: ramp day 1.
    assert limits_on(limits, utc(2026, 3, 10, 16)).max_daily_sends == 7
    assert limits_on(limits, utc(2026, 3, 10, 14)).max_daily_sends == 5


@pytest.mark.parametrize(
    ("limits", "sent", "campaign_sent", "hour", "expected"),
    [
        (AccountLimits(max_hourly_sends=3), 10, 10, (2, 2), None),
        (AccountLimits(max_hourly_sends=3), 10, 10, (3, 0), MAX_HOURLY_SENDS),
        (AccountLimits(campaign_hourly_limit=2), 10, 10, (5, 1), None),
        (AccountLimits(campaign_hourly_limit=2), 10, 10, (5, 2), HOURLY_LIMIT),
        (AccountLimits(max_daily_sends=10, max_hourly_sends=3), 10, 0, (3, 0), MAX_DAILY_SENDS),  # the day first
        (AccountLimits(max_hourly_sends=0), 0, 0, (0, 0), MAX_HOURLY_SENDS),
    ],
)
def test_hourly_limits_are_reached_like_daily_ones(
    limits: AccountLimits, sent: int, campaign_sent: int, hour: tuple[int, int], expected: str | None
) -> None:
    assert limit_reached(limits, sent, campaign_sent, hour=hour) == expected


@pytest.mark.parametrize(
    ("limits", "hour", "wanted", "expected"),
    [
        (AccountLimits(max_hourly_sends=5), (3, 0), 10, 2),
        (AccountLimits(campaign_hourly_limit=4), (9, 3), 10, 1),
        (AccountLimits(max_daily_sends=100, max_hourly_sends=5), (5, 0), 10, 0),
        (AccountLimits(wait_jitter_minutes=2), (0, 0), 10, 1),  # a random gap is a wait window
    ],
)
def test_a_batch_takes_no_more_than_the_hour_leaves(
    limits: AccountLimits, hour: tuple[int, int], wanted: int, expected: int
) -> None:
    assert capacity(limits, 0, 0, wanted, hour=hour) == expected


def test_an_account_at_its_hourly_limit_is_free_at_its_next_local_hour() -> None:
    now = utc(2026, 3, 14, 9, 40)
    limits = AccountLimits(max_hourly_sends=2, timezone="Asia/Kolkata")
    assert free_at(limits, 2, 2, None, now, hour=(2, 2)) == utc(2026, 3, 14, 10, 30)
    daily = AccountLimits(max_daily_sends=2, timezone="Europe/Berlin")
    assert free_at(daily, 2, 2, None, now) == utc(2026, 3, 14, 23)


@pytest.mark.parametrize(
    ("minimum", "jitter", "draw", "expected"),
    [
        (4.0, 0.0, 0.9, 4.0),
        (4.0, 3.0, 0.0, 4.0),  # never below the minimum
        (4.0, 3.0, 0.5, 5.5),
        (4.0, 3.0, 1.0, 7.0),
        (0.0, 2.0, 0.25, 0.5),
        (4.0, 3.0, 7.0, 7.0),  # a random source out of range is clamped
        (4.0, 3.0, -1.0, 4.0),
    ],
)
def test_each_gap_is_the_minimum_plus_a_uniform_share_of_the_jitter(
    minimum: float, jitter: float, draw: float, expected: float
) -> None:
    limits = AccountLimits(min_wait_minutes=minimum, wait_jitter_minutes=jitter)
    assert gap_minutes(limits, lambda: draw) == pytest.approx(expected)


@dataclass(frozen=True)
class PacedSettings(CampaignSettings):
    """Campaign settings carrying `settings.hourly_limit` and `settings.wait_jitter`."""

    hourly_limit: int | None = None
    wait_jitter: float = 0.0


def test_limits_combine_the_accounts_hourly_zone_and_ramp_with_the_campaigns_hourly_limit_and_jitter() -> None:
    account = EmailAccount.from_doc(
        {
            "_id": "a1",
            "email": "a@example.com",
            "smtp_host": "smtp.example.com",
            "timezone": "Europe/Berlin",
            "ramp_started_on": "2026-03-01",
        }
    )
    own = AccountCampaignSettings(email_id="a1", max_daily_sends=50, max_hourly_sends=8, ramp=RAMP)
    campaign = Campaign("c1", "c", "active", None, PacedSettings(min_wait_time=3, hourly_limit=4, wait_jitter=2.5))
    assert limits_for(own, campaign, account) == AccountLimits(
        max_daily_sends=50,
        min_wait_minutes=3.0,
        max_hourly_sends=8,
        campaign_hourly_limit=4,
        wait_jitter_minutes=2.5,
        timezone="Europe/Berlin",
        ramp=RAMP,
        ramp_started_on=date(2026, 3, 1),
    )


def test_several_settings_documents_merge_to_the_strictest_hourly_limit_and_ramp() -> None:
    merged = merge_settings(
        [
            AccountCampaignSettings("a1", max_hourly_sends=10, ramp=Ramp(10, 1)),
            AccountCampaignSettings("a1", max_hourly_sends=4, ramp=Ramp(5, 3)),
            AccountCampaignSettings("a1"),
        ]
    )
    assert merged is not None
    assert (merged.max_hourly_sends, merged.ramp) == (4, Ramp(5, 1))


ACCOUNT = {"_id": "a1", "email": "a@example.com", "smtp_host": "smtp.example.com"}


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": 3}, "timezone"),
        ({"ramp_started_on": "2026-02-30"}, "ramp_started_on"),
        ({"ramp_started_on": "yesterday"}, "ramp_started_on"),
        ({"ramp_started_on": 20260301}, "ramp_started_on"),
    ],
)
def test_a_malformed_timezone_or_ramp_start_is_refused_naming_the_field(
    fields: dict[str, object], field_name: str
) -> None:
    with pytest.raises(InvalidDocument) as caught:
        EmailAccount.from_doc({**ACCOUNT, **fields})
    assert caught.value.field == field_name


def test_an_account_without_a_timezone_counts_utc_days() -> None:
    account = EmailAccount.from_doc(ACCOUNT)
    assert (account.timezone, account.ramp_started_on) == ("UTC", None)


@pytest.mark.parametrize(
    ("ramp", "field_name"),
    [
        ({"start": 0, "increase": 2}, "ramp.start"),
        ({"start": 5}, "ramp"),
        ({"start": 5, "increase": -1}, "ramp.increase"),
        ("5,2", "ramp"),
    ],
)
def test_a_malformed_ramp_is_refused_naming_the_field(ramp: object, field_name: str) -> None:
    with pytest.raises(InvalidDocument) as caught:
        AccountCampaignSettings.from_doc({"email_id": "a1", "ramp": ramp})
    assert caught.value.field == field_name


def test_settings_read_the_hourly_limit_and_the_ramp() -> None:
    settings = AccountCampaignSettings.from_doc(
        {"email_id": "a1", "max_hourly_sends": 6, "ramp": {"start": 5, "increase": 2}}
    )
    assert (settings.max_hourly_sends, settings.ramp) == (6, RAMP)


def test_campaign_pacing_settings_are_read_and_checked() -> None:
    from app.domain.models import Campaign, InvalidDocument

    doc = {"_id": "c", "name": "C", "status": "active", "settings": {"hourly_limit": 6, "wait_jitter": 2.5}}
    settings = Campaign.from_doc(doc).settings
    assert (settings.hourly_limit, settings.wait_jitter) == (6, 2.5)
    assert Campaign.from_doc({**doc, "settings": {}}).settings.hourly_limit is None
    for bad in ({"hourly_limit": -1}, {"wait_jitter": "lots"}):
        with pytest.raises(InvalidDocument, match=next(iter(bad))):
            Campaign.from_doc({**doc, "settings": bad})
