"""Sends per hour over the last day as an inline SVG bar chart, drawn on the server. Pure.

Inline SVG needs no script and no image request, so the chart shows with scripts off and passes the
dashboard's Content-Security-Policy (no inline style: geometry and colours are attributes and CSS classes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape

HOURS = 24
WIDTH = 720
HEIGHT = 180
LEFT = 28  # room for the y-axis labels
BOTTOM = 18  # room for the hour labels
TOP = 8
GAP = 2
LABEL_EVERY = 6  # hours between x-axis labels


@dataclass(frozen=True)
class HourCount:
    """Sends in the hour starting at `start` (UTC)."""

    start: datetime
    count: int


def hour_start(moment: datetime) -> datetime:
    """The start of the UTC hour `moment` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def last_hours(counts: Mapping[datetime, int], now: datetime, hours: int = HOURS) -> list[HourCount]:
    """One entry per hour, oldest first, the last being the hour `now` is in; hours without sends count 0.

    `counts` maps hour starts (any time zone) to sends; hours outside the window are ignored.
    """
    by_hour: dict[datetime, int] = {}
    for start, count in counts.items():
        key = hour_start(start)
        by_hour[key] = by_hour.get(key, 0) + count
    last = hour_start(now)
    starts = [last - timedelta(hours=back) for back in range(hours - 1, -1, -1)]
    return [HourCount(start, by_hour.get(start, 0)) for start in starts]


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at or above `value` (at least 1): a round top for the axis."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _bar(hour: HourCount, x: float, width: float, top: int) -> str:
    plot = HEIGHT - TOP - BOTTOM
    height = plot * hour.count / top
    y = TOP + plot - height
    end = hour.start + timedelta(hours=1)
    title = f"{hour.start:%H:%M}–{end:%H:%M} UTC: {hour.count} sent"
    return (
        f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}">'
        f"<title>{escape(title)}</title></rect>"
    )


def _axes(hours: Sequence[HourCount], top: int, slot: float) -> list[str]:
    base = HEIGHT - BOTTOM
    parts = [
        f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{top}</text>',
        f'<text x="{LEFT - 4}" y="{base}" text-anchor="end">0</text>',
    ]
    for index, hour in enumerate(hours):
        if index % LABEL_EVERY == 0:
            x = LEFT + index * slot
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 4}">{hour.start:%H}:00</text>')
    return parts


def sends_chart(hours: Sequence[HourCount]) -> Markup:
    """The bar chart of `hours` (from `last_hours`) as SVG markup, with a text summary for screen readers."""
    total = sum(h.count for h in hours)
    top = nice_ceiling(max((h.count for h in hours), default=0))
    slot = (WIDTH - LEFT) / max(len(hours), 1)
    summary = f"{total} sent in the last {len(hours)} hours"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(summary)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(summary)}</title>",
        *_axes(hours, top, slot),
        *(_bar(h, LEFT + i * slot + GAP / 2, slot - GAP, top) for i, h in enumerate(hours) if h.count > 0),
        "</svg>",
    ]
    return Markup("".join(parts))
