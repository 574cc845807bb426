"""The daily report's pure rules: which day it covers, when it is due, what it lists and how it reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.daily_report import (
    AccountStanding,
    CampaignInfo,
    ReportInputs,
    UncertainSend,
    account_notes,
    build_report,
    day_bounds,
    render_html,
    render_text,
    report_day,
    report_due,
    subject,
)

BERLIN = "Europe/Berlin"
BERLIN_TZ = ZoneInfo(BERLIN)
SEVEN = time(7, 0)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "tz", "day"),
    [
        (utc(2026, 12, 2, 6, 0), "UTC", date(2026, 12, 1)),
        (utc(2026, 12, 1, 23, 30), "UTC", date(2026, 11, 30)),
        # 23:30 UTC is already the next day in Berlin (UTC+1 in winter).
        (utc(2026, 12, 1, 23, 30), BERLIN, date(2026, 12, 1)),
        (utc(2026, 12, 2, 4, 0), "America/New_York", date(2026, 11, 30)),
        (utc(2027, 1, 1, 0, 0), "UTC", date(2026, 12, 31)),
        (utc(2028, 3, 1, 6, 0), "UTC", date(2028, 2, 29)),
    ],
)
def test_the_report_covers_the_local_day_before(now: datetime, tz: str, day: date) -> None:
    assert report_day(now, tz) == day


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 12, 1), 24), (date(2026, 3, 28), 24)],
)
def test_a_berlin_day_is_23_or_25_hours_long_across_dst(day: date, hours: int) -> None:
    start, end = day_bounds(day, BERLIN)
    assert end - start == timedelta(hours=hours)
    assert start.astimezone(BERLIN_TZ).time() == time(0, 0)


def test_day_bounds_in_utc_are_the_utc_midnights() -> None:
    assert day_bounds(date(2026, 12, 1), "UTC") == (utc(2026, 12, 1), utc(2026, 12, 2))


@pytest.mark.parametrize(
    ("now", "at", "tz", "last", "due"),
    [
        # Before, at and after 07:00 UTC; the day already sent.
        (utc(2026, 12, 2, 6, 59), SEVEN, "UTC", None, False),
        (utc(2026, 12, 2, 7, 0), SEVEN, "UTC", None, True),
        (utc(2026, 12, 2, 15, 0), SEVEN, "UTC", date(2026, 11, 30), True),
        (utc(2026, 12, 2, 7, 1), SEVEN, "UTC", date(2026, 12, 1), False),
        # Across midnight: 23:50 due at 23:50, and after midnight the new day waits for 23:50 again.
        (utc(2026, 12, 1, 23, 55), time(23, 50), "UTC", None, True),
        (utc(2026, 12, 2, 0, 5), time(23, 50), "UTC", date(2026, 11, 30), False),
        (utc(2026, 12, 2, 0, 0), time(0, 0), "UTC", date(2026, 11, 30), True),
        # Berlin in winter is UTC+1: 07:00 local is 06:00 UTC.
        (utc(2026, 12, 2, 5, 59), SEVEN, BERLIN, None, False),
        (utc(2026, 12, 2, 6, 0), SEVEN, BERLIN, None, True),
        # Berlin in summer is UTC+2.
        (utc(2026, 7, 2, 5, 0), SEVEN, BERLIN, None, True),
        (utc(2026, 7, 2, 4, 59), SEVEN, BERLIN, None, False),
        # Spring forward (29 March 2026, 02:00 -> 03:00): 02:30 never shows; due as the clock jumps past it.
        (utc(2026, 3, 29, 0, 59), time(2, 30), BERLIN, None, False),
        (utc(2026, 3, 29, 1, 0), time(2, 30), BERLIN, None, True),
        # Fall back (25 October 2026, 03:00 -> 02:00): due at the first 02:30, not again at the second.
        (utc(2026, 10, 25, 0, 30), time(2, 30), BERLIN, None, True),
        (utc(2026, 10, 25, 1, 30), time(2, 30), BERLIN, date(2026, 10, 24), False),
    ],
)
def test_report_due(now: datetime, at: time, tz: str, last: date | None, due: bool) -> None:
    assert report_due(now, at, tz, last) is due


def test_naive_times_are_refused_saying_what_to_pass() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        report_due(datetime(2026, 12, 2, 7, 0), SEVEN, "UTC", None)


def standing(sent: int, limit: int | None, status: str = "active", reason: str | None = None) -> AccountStanding:
    return AccountStanding("A1", "sender@example.com", status, reason, sent, limit)


@pytest.mark.parametrize(
    ("account", "notes"),
    [
        (standing(79, 100), ()),
        (standing(80, 100), ("near its daily limit (80/100, 80%)",)),
        (standing(100, 100), ("at its daily limit (100/100)",)),
        (standing(103, 100), ("over its daily limit (103/100)",)),
        (standing(500, None), ()),
        (standing(0, 0), ("at its daily limit (0/0)",)),
        (standing(0, 100, "paused"), ("out of rotation (paused)",)),
        (
            standing(90, 100, "auth_failed", "535 bad credentials"),
            ("out of rotation (auth_failed: 535 bad credentials)", "near its daily limit (90/100, 90%)"),
        ),
    ],
)
def test_accounts_are_listed_near_at_or_over_their_limit_or_out_of_rotation(
    account: AccountStanding, notes: tuple[str, ...]
) -> None:
    assert account_notes(account) == notes


NOW = utc(2026, 12, 2, 7, 0)
DAY = date(2026, 12, 1)


def inputs(**changes: object) -> ReportInputs:
    values: dict[str, object] = {
        "campaigns": [
            CampaignInfo("C1", "Spring <launch>", "active"),
            CampaignInfo("C2", "Old list", "paused", "12 of the last 20 attempts failed", utc(2026, 12, 1, 9, 0)),
            CampaignInfo("C3", "Finished", "completed"),
            CampaignInfo("C4", "Done yesterday", "completed"),
        ],
        "activity_counts": {"C1": {"sent": 40, "replied": 3, "bounced": 1}, "C4": {"sent": 2, "unsubscribed": 1}},
        "failures": {"C1": 2},
        "accounts": [standing(85, 100), AccountStanding("A2", "quiet@example.com", "active", None, 3, 100)],
        "uncertain_total": 7,
        "uncertain_oldest": [UncertainSend("L1:1:0", "C1", "A1", utc(2026, 11, 30, 8, 0), "connection dropped")],
    }
    values.update(changes)
    return ReportInputs(**values)  # type: ignore[arg-type]


def test_report_lists_active_paused_and_busy_campaigns_busiest_first_with_totals() -> None:
    report = build_report(inputs(), DAY, "UTC", NOW)
    assert [(r.campaign_id, r.sent, r.replied, r.bounced, r.unsubscribed, r.failed) for r in report.campaigns] == [
        ("C1", 40, 3, 1, 0, 2),
        ("C4", 2, 0, 0, 1, 0),
        ("C2", 0, 0, 0, 0, 0),
    ]
    totals = report.totals
    assert (totals.sent, totals.replied, totals.bounced, totals.unsubscribed, totals.failed) == (42, 3, 1, 1, 2)
    assert [a.account_id for a in report.accounts] == ["A1"]
    assert [(p.campaign_id, p.reason) for p in report.paused] == [("C2", "12 of the last 20 attempts failed")]
    assert (report.day, report.timezone, report.uncertain_total) == ("2026-12-01", "UTC", 7)


def test_subject_has_the_totals_and_what_needs_attention_but_no_address() -> None:
    report = build_report(inputs(), DAY, "UTC", NOW)
    line = subject(report)
    assert line == (
        "Outbound daily report 2026-12-01: 42 sent, 3 replies, 1 bounce, 1 unsubscribe, 2 failed; "
        "1 account to check, 7 uncertain sends, 1 paused campaign"
    )
    assert "@" not in line


def test_a_quiet_day_reads_as_such() -> None:
    empty = inputs(campaigns=[], activity_counts={}, failures={}, accounts=[], uncertain_total=0, uncertain_oldest=[])
    report = build_report(empty, DAY, BERLIN, NOW)
    assert subject(report) == "Outbound daily report 2026-12-01: 0 sent, 0 replies, 0 bounces, 0 unsubscribes, 0 failed"
    text = render_text(report)
    assert "Accounts to check\n  none" in text and "Paused campaigns\n  none" in text
    assert "Uncertain sends: 0" in text and "(Europe/Berlin)" in text


def test_text_body_has_each_section() -> None:
    text = render_text(build_report(inputs(), DAY, "UTC", NOW))
    assert "Spring <launch> (C1)" in text
    assert "sender@example.com (A1): near its daily limit (85/100, 85%)" in text
    assert "Uncertain sends: 7" in text and "L1:1:0" in text and "resolve-send" in text
    assert "Old list (C2), since 2026-12-01 09:00 UTC: 12 of the last 20 attempts failed" in text
    total_line = next(line for line in text.splitlines() if line.startswith("all campaigns"))
    assert total_line.split()[2:] == ["42", "3", "1", "1", "2"]


def test_html_body_escapes_every_value() -> None:
    html = render_html(build_report(inputs(), DAY, "UTC", NOW))
    assert "Spring &lt;launch&gt; (C1)" in html and "<launch>" not in html
    assert html.startswith("<!doctype html>") and "<h2>Uncertain sends: 7</h2>" in html


def test_the_report_never_names_a_recipient() -> None:
    report = build_report(inputs(), DAY, "UTC", NOW)
    # The only addresses in it are the sending accounts'.
    for body in (render_text(report), render_html(report)):
        assert "recipient@" not in body
        assert body.count("@") == body.count("sender@example.com")


def test_a_paused_campaign_says_who_paused_it_when_that_was_recorded() -> None:
    paused = CampaignInfo("C2", "Old list", "paused", "bounces", utc(2026, 12, 1, 9, 0), "dispatcher (automatic)")
    unsigned = CampaignInfo("C5", "Quiet", "paused", None, None)
    report = build_report(inputs(campaigns=[paused, unsigned]), DAY, "UTC", NOW)
    for body in (render_text(report), render_html(report)):
        assert "Old list (C2), since 2026-12-01 09:00 UTC by dispatcher (automatic): bounces" in body
        assert "Quiet (C5), since -: no reason recorded" in body  # nothing recorded: no "by"
