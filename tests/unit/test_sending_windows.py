"""Sending windows: local days and hours, read across daylight-saving changes, midnight spans, blackouts, leap days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from app.domain.gates import Defer, GateContext, sending_window_gate
from app.domain.models import Campaign, InvalidDocument, Lead, Recipient, SequenceStep
from app.domain.planning import WAIT, plan
from app.domain.sending_windows import (
    InvalidSchedule,
    Schedule,
    describe_opening,
    is_open,
    local_instant,
    next_open,
    parse_schedule,
    zone,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def schedule(tz: str = "America/New_York", **fields: Any) -> Schedule:
    return parse_schedule({"timezone": tz, "start": "09:00", "end": "17:00", **fields})


OFFICE_NY = schedule()
OFFICE_BERLIN = schedule("Europe/Berlin")
OFFICE_SYDNEY = schedule("Australia/Sydney")
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NIGHTS_UTC = schedule("UTC", start="22:00", end="02:00")  # Mon-Fri nights, each until 02:00 the next day


@pytest.mark.parametrize(
    ("name", "sched", "now", "opens"),
    [
        # New York, spring forward on Sun 2025-03-09: Saturday waits for Monday 09:00 EDT (13:00 UTC, not 14:00).
        ("ny saturday before spring forward", OFFICE_NY, utc(2025, 3, 8, 15, 0), utc(2025, 3, 10, 13, 0)),
        ("ny friday inside, EST", OFFICE_NY, utc(2025, 3, 7, 16, 0), utc(2025, 3, 7, 16, 0)),
        ("ny friday at the end closes", OFFICE_NY, utc(2025, 3, 7, 22, 0), utc(2025, 3, 10, 13, 0)),
        ("ny monday 09:30 EDT is open", OFFICE_NY, utc(2025, 3, 10, 13, 30), utc(2025, 3, 10, 13, 30)),
        ("ny monday 08:59 EDT waits a minute", OFFICE_NY, utc(2025, 3, 10, 12, 59), utc(2025, 3, 10, 13, 0)),
        # New York, fall back on Sun 2025-11-02: Friday evening waits for Monday 09:00 EST (14:00 UTC).
        ("ny friday evening before fall back", OFFICE_NY, utc(2025, 10, 31, 22, 30), utc(2025, 11, 3, 14, 0)),
        # Berlin: clocks go forward on 2025-03-30 and back on 2025-10-26.
        ("berlin saturday before spring forward", OFFICE_BERLIN, utc(2025, 3, 29, 10, 0), utc(2025, 3, 31, 7, 0)),
        ("berlin saturday before fall back", OFFICE_BERLIN, utc(2025, 10, 25, 10, 0), utc(2025, 10, 27, 8, 0)),
        ("berlin before opening, CET", OFFICE_BERLIN, utc(2025, 1, 6, 7, 0), utc(2025, 1, 6, 8, 0)),
        # Sydney (southern hemisphere): clocks go back on 2025-04-06 and forward on 2025-10-05.
        ("sydney saturday before fall back", OFFICE_SYDNEY, utc(2025, 4, 5, 3, 0), utc(2025, 4, 6, 23, 0)),
        ("sydney saturday before spring forward", OFFICE_SYDNEY, utc(2025, 10, 4, 3, 0), utc(2025, 10, 5, 22, 0)),
        ("sydney friday after hours, AEST", OFFICE_SYDNEY, utc(2025, 7, 4, 8, 0), utc(2025, 7, 6, 23, 0)),
        # A window that spans midnight belongs to the day it opens on.
        ("night: friday's window runs into saturday", NIGHTS_UTC, utc(2025, 3, 8, 1, 0), utc(2025, 3, 8, 1, 0)),
        ("night: saturday after it closed", NIGHTS_UTC, utc(2025, 3, 8, 3, 0), utc(2025, 3, 10, 22, 0)),
        ("night: monday before it opens", NIGHTS_UTC, utc(2025, 3, 10, 21, 0), utc(2025, 3, 10, 22, 0)),
        ("night: tuesday 01:59 is monday's", NIGHTS_UTC, utc(2025, 3, 11, 1, 59), utc(2025, 3, 11, 1, 59)),
        ("night: monday 00:30 has no sunday window", NIGHTS_UTC, utc(2025, 3, 10, 0, 30), utc(2025, 3, 10, 22, 0)),
        # Blackout dates are local days.
        (
            "blackout christmas",
            schedule("UTC", blackout_dates=["2025-12-25"]),
            utc(2025, 12, 25, 10, 0),
            utc(2025, 12, 26, 9, 0),
        ),
        (
            "blackout a whole week",
            schedule("UTC", blackout_dates=[f"2025-12-{d}" for d in range(22, 27)]),
            utc(2025, 12, 22, 10, 0),
            utc(2025, 12, 29, 9, 0),
        ),
        (
            "blackout in new york's day, not utc's",
            schedule(blackout_dates=["2025-03-07"]),
            utc(2025, 3, 6, 23, 0),  # Thursday 18:00 EST
            utc(2025, 3, 10, 13, 0),
        ),
        # Leap days.
        ("leap day is a thursday like any other", schedule("UTC"), utc(2024, 2, 28, 18, 0), utc(2024, 2, 29, 9, 0)),
        (
            "leap day blacked out",
            schedule("UTC", blackout_dates=["2024-02-29"]),
            utc(2024, 2, 28, 18, 0),
            utc(2024, 3, 1, 9, 0),
        ),
        (
            "thursdays only, leap day blacked out",
            schedule("UTC", days=["thu"], blackout_dates=["2024-02-29"]),
            utc(2024, 2, 23, 12, 0),
            utc(2024, 3, 7, 9, 0),
        ),
        ("night window over a leap day", NIGHTS_UTC, utc(2024, 2, 29, 1, 0), utc(2024, 2, 29, 1, 0)),
        # Equal start and end: 24 hours from the start.
        ("24 hours from 09:00", schedule("UTC", end="09:00"), utc(2025, 3, 11, 8, 0), utc(2025, 3, 11, 8, 0)),
        ("24 hours, weekend closed", schedule("UTC", end="09:00"), utc(2025, 3, 8, 10, 0), utc(2025, 3, 10, 9, 0)),
    ],
)
def test_next_open(name: str, sched: Schedule, now: datetime, opens: datetime) -> None:
    assert next_open(now, sched, sched.timezone) == opens, name
    assert is_open(now, sched, sched.timezone) is (opens == now), name


@pytest.mark.parametrize(
    ("name", "tz", "day", "at", "instant"),
    [
        # The spring-forward gap: 02:30 does not exist; the first valid instant after it is the end of the gap.
        ("new york gap", "America/New_York", date(2025, 3, 9), time(2, 30), utc(2025, 3, 9, 7, 0)),
        ("berlin gap", "Europe/Berlin", date(2025, 3, 30), time(2, 30), utc(2025, 3, 30, 1, 0)),
        ("sydney gap", "Australia/Sydney", date(2025, 10, 5), time(2, 30), utc(2025, 10, 4, 16, 0)),
        # The fold: 01:30 (New York), 02:30 (Berlin, Sydney) happen twice; the first occurrence is meant.
        ("new york fold", "America/New_York", date(2025, 11, 2), time(1, 30), utc(2025, 11, 2, 5, 30)),
        ("berlin fold", "Europe/Berlin", date(2025, 10, 26), time(2, 30), utc(2025, 10, 26, 0, 30)),
        ("sydney fold", "Australia/Sydney", date(2025, 4, 6), time(2, 30), utc(2025, 4, 5, 15, 30)),
        ("an ordinary time", "Europe/Berlin", date(2025, 7, 1), time(9, 0), utc(2025, 7, 1, 7, 0)),
    ],
)
def test_local_times_the_clocks_skip_or_repeat(name: str, tz: str, day: date, at: time, instant: datetime) -> None:
    found = zone(tz)
    assert found is not None
    assert local_instant(day, at, found) == instant, name


@pytest.mark.parametrize(
    ("name", "tz", "now", "opens"),
    [
        ("new york: opens at 03:00 EDT", "America/New_York", utc(2025, 3, 9, 6, 0), utc(2025, 3, 9, 7, 0)),
        ("berlin: opens at 03:00 CEST", "Europe/Berlin", utc(2025, 3, 29, 23, 0), utc(2025, 3, 30, 1, 0)),
        ("sydney: opens at 03:00 AEDT", "Australia/Sydney", utc(2025, 10, 4, 15, 0), utc(2025, 10, 4, 16, 0)),
        ("inside the gap's window", "Europe/Berlin", utc(2025, 3, 30, 1, 30), utc(2025, 3, 30, 1, 30)),
    ],
)
def test_a_window_starting_in_the_gap_opens_when_the_gap_ends(
    name: str, tz: str, now: datetime, opens: datetime
) -> None:
    sched = parse_schedule({"timezone": tz, "start": "02:30", "end": "04:00", "days": EVERY_DAY})
    assert next_open(now, sched, sched.timezone) == opens, name


def test_a_window_wholly_inside_the_gap_does_not_open_that_day() -> None:
    sched = parse_schedule({"timezone": "America/New_York", "start": "02:10", "end": "02:40", "days": EVERY_DAY})
    # 2025-03-09 has no 02:10-02:40 in New York; the next window is Monday's, 02:10 EDT (06:10 UTC).
    assert next_open(utc(2025, 3, 9, 6, 0), sched, sched.timezone) == utc(2025, 3, 10, 6, 10)
    assert not is_open(utc(2025, 3, 9, 7, 0), sched, sched.timezone)


def test_a_window_starting_in_the_fold_opens_at_its_first_occurrence() -> None:
    sched = parse_schedule({"timezone": "Europe/Berlin", "start": "02:30", "end": "04:00", "days": EVERY_DAY})
    # 2025-10-26 02:30 CEST is 00:30 UTC; the second 02:30 (CET) would be 01:30 UTC.
    assert next_open(utc(2025, 10, 26, 0, 0), sched, sched.timezone) == utc(2025, 10, 26, 0, 30)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": 5}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"days": []}, "days"),
        ({"days": ["funday"]}, "days"),
        ({"days": "mon-fri"}, "days"),
        ({"start": "9:00"}, "start"),
        ({"start": None}, "start"),
        ({"end": "24:00"}, "end"),
        ({"end": "17:60"}, "end"),
        ({"blackout_dates": ["2025-13-01"]}, "blackout_dates"),
        ({"blackout_dates": ["25 December"]}, "blackout_dates"),
        ({"blackout_dates": "2025-12-25"}, "blackout_dates"),
        ({"recipient_timezone": "yes"}, "recipient_timezone"),
    ],
)
def test_an_unusable_schedule_is_refused_naming_the_field(raw: dict[str, Any], field: str) -> None:
    doc = {"timezone": "America/New_York", "start": "09:00", "end": "17:00", **raw}
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule(doc)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("days", "weekdays"),
    [
        (None, {0, 1, 2, 3, 4}),
        (["Mon", "WED"], {0, 2}),
        (["saturday", "sun"], {5, 6}),
    ],
)
def test_days_are_named_short_or_long_and_default_to_working_days(days: Any, weekdays: set[int]) -> None:
    raw = {"timezone": "UTC", "start": "09:00", "end": "17:00"}
    assert parse_schedule({**raw, "days": days} if days else raw).days == weekdays


def campaign_doc(schedule_doc: Any) -> dict[str, Any]:
    return {
        "_id": "c1",
        "name": "Spring",
        "status": "active",
        "sequence_id": "s1",
        "settings": {"schedule": schedule_doc},
    }


def test_a_campaign_whose_schedule_closes_every_day_is_refused_when_read() -> None:
    doc = campaign_doc({"timezone": "America/New_York", "days": [], "start": "09:00", "end": "17:00"})
    with pytest.raises(InvalidDocument) as caught:
        Campaign.from_doc(doc)
    assert caught.value.field == "settings.schedule.days"
    assert "every day closed" in str(caught.value)


def test_a_campaign_reads_its_schedule() -> None:
    found = Campaign.from_doc(campaign_doc({"timezone": "Europe/Berlin", "start": "08:30", "end": "18:00"}))
    assert found.settings.schedule == schedule("Europe/Berlin", start="08:30", end="18:00")
    assert Campaign.from_doc(campaign_doc(None)).settings.schedule is None
    with pytest.raises(InvalidDocument, match=r"settings\.schedule"):
        Campaign.from_doc(campaign_doc("9-5"))


@pytest.mark.parametrize(
    ("recipient_timezone", "fields", "zone_name"),
    [
        (True, {"timezone": "Australia/Sydney"}, "Australia/Sydney"),
        (True, {"timezone": "Nowhere/Special"}, "America/New_York"),
        (True, {"timezone": ""}, "America/New_York"),
        (True, {}, "America/New_York"),
        (False, {"timezone": "Australia/Sydney"}, "America/New_York"),
    ],
)
def test_a_recipients_own_valid_time_zone_wins_when_the_schedule_says_so(
    recipient_timezone: bool, fields: dict[str, Any], zone_name: str
) -> None:
    sched = schedule(recipient_timezone=recipient_timezone)
    assert sched.zone_for(fields).key == zone_name


def test_describe_opening_gives_local_time_and_zone() -> None:
    ny = zone("America/New_York")
    assert ny is not None
    assert describe_opening(utc(2025, 3, 10, 13, 0), ny) == "Mon 2025-03-10 09:00 EDT (America/New_York)"


@pytest.mark.parametrize(
    ("now", "fields", "verdict"),
    [
        (utc(2025, 3, 10, 14, 0), {}, None),  # Monday 10:00 in New York
        (
            utc(2025, 3, 8, 15, 0),
            {},
            Defer(
                utc(2025, 3, 10, 13, 0),
                "waiting for the sending window (opens Mon 2025-03-10 09:00 EDT (America/New_York))",
            ),
        ),
        # Monday 10:00 in New York is Tuesday 01:00 in Sydney: a Sydney recipient waits for 09:00 there.
        (
            utc(2025, 3, 10, 14, 0),
            {"timezone": "Australia/Sydney"},
            Defer(
                utc(2025, 3, 10, 22, 0),
                "waiting for the sending window (opens Tue 2025-03-11 09:00 AEDT (Australia/Sydney))",
            ),
        ),
    ],
)
def test_the_window_gate_defers_until_the_next_opening(
    now: datetime, fields: dict[str, Any], verdict: Defer | None
) -> None:
    recipient = Recipient("ann@acme.example", fields=fields)
    ctx = GateContext(now, schedule=schedule(recipient_timezone=True))
    assert sending_window_gate(recipient, ctx) == verdict
    assert sending_window_gate(recipient, GateContext(now)) is None  # no schedule: any time


def test_a_lead_due_outside_the_window_waits_for_its_opening() -> None:
    doc = campaign_doc({"timezone": "America/New_York", "start": "09:00", "end": "17:00"})
    the_campaign = Campaign.from_doc(doc)
    the_lead = Lead.from_doc({"_id": "l1", "campaign_id": "c1", "lead_data": [{"email": "ann@acme.example"}]})
    steps = {1: SequenceStep(id="st1", sequence_id="s1", step_order=1, template_id="t1", delay_minutes=0)}
    found = plan(the_lead, the_campaign, steps, GateContext(utc(2025, 3, 8, 15, 0)))
    assert (found.action, found.until) == (WAIT, utc(2025, 3, 10, 13, 0))
    assert found.reason is not None and found.reason.startswith("waiting for the sending window (opens Mon")
    assert plan(the_lead, the_campaign, steps, GateContext(utc(2025, 3, 10, 13, 30))).action == "send"
