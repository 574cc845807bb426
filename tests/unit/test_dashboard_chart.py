"""The sends-per-hour chart: hour buckets, the axis top, and the SVG it draws (no inline style, escaped)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest

from app.web.dashboard.chart import HOURS, HourCount, last_hours, nice_ceiling, sends_chart

NOW = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)


def test_last_hours_are_the_24_hours_ending_with_the_current_one_oldest_first() -> None:
    hours = last_hours({}, NOW)
    assert len(hours) == HOURS
    assert hours[-1].start == datetime(2026, 12, 1, 22, tzinfo=UTC)
    assert hours[0].start == datetime(2026, 11, 30, 23, tzinfo=UTC)
    assert all(b.start - a.start == timedelta(hours=1) for a, b in pairwise(hours))
    assert all(h.count == 0 for h in hours)


def test_counts_land_in_their_utc_hour_and_those_outside_the_window_are_dropped() -> None:
    plus_two = timezone(timedelta(hours=2))
    counts = {
        datetime(2026, 12, 1, 22, tzinfo=UTC): 4,
        datetime(2026, 12, 1, 5, 0, tzinfo=plus_two): 2,  # 03:00 UTC
        datetime(2026, 11, 30, 22, tzinfo=UTC): 9,  # 24 hours before the current hour: outside
    }
    by_hour = {h.start.hour: h.count for h in last_hours(counts, NOW)}
    assert by_hour[22] == 4 and by_hour[3] == 2
    assert sum(by_hour.values()) == 6


@pytest.mark.parametrize(
    ("value", "top"), [(0, 1), (1, 1), (2, 2), (3, 5), (5, 5), (6, 10), (11, 20), (21, 50), (51, 100), (4321, 5000)]
)
def test_the_axis_top_is_the_next_round_number(value: int, top: int) -> None:
    assert nice_ceiling(value) == top


def test_the_chart_draws_one_bar_per_hour_with_sends_scaled_to_the_top() -> None:
    hours = [HourCount(NOW - timedelta(hours=2), 0), HourCount(NOW - timedelta(hours=1), 5), HourCount(NOW, 10)]
    svg = str(sends_chart(hours))
    heights = [float(h) for h in re.findall(r'<rect class="bar" [^>]*height="([\d.]+)"', svg)]
    assert len(heights) == 2  # an hour without sends draws no bar
    assert heights[1] == pytest.approx(2 * heights[0])
    assert 'aria-label="15 sent in the last 3 hours"' in svg
    assert "<title>21:30–22:30 UTC: 5 sent</title>" in svg
    assert "style" not in svg  # the Content-Security-Policy admits no inline style


def test_an_empty_day_still_draws_its_axes() -> None:
    svg = str(sends_chart(last_hours({}, NOW)))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<rect" not in svg and "0 sent in the last 24 hours" in svg
    assert svg.count("<text") == 2 + HOURS // 6
