"""The dashboard's view models: funnels, usage bars, the live numbers, and how values read. Pure.

Routes gather plain values (the same dicts the CLI prints) and these functions turn them into what a page
shows; the live endpoint returns the same numbers under the same keys the page marks with `data-live`, so
a poll updates exactly what the server first rendered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Funnel:
    """What a step's (or a campaign's) messages led to: sent, then replied, bounced or unsubscribed."""

    sent: int = 0
    replied: int = 0
    bounced: int = 0
    unsubscribed: int = 0

    def share(self, count: int) -> str:
        """`count` as a share of the messages sent, for people: `12.5%`, `-` before anything was sent."""
        return fmt_percent(100.0 * count / self.sent) if self.sent else "-"

    def __add__(self, other: Funnel) -> Funnel:
        return Funnel(
            self.sent + other.sent,
            self.replied + other.replied,
            self.bounced + other.bounced,
            self.unsubscribed + other.unsubscribed,
        )


def step_funnel(step: Mapping[str, Any]) -> Funnel:
    """The funnel of one step row of `campaign_progress` (sent recipients and the answers they drew)."""
    return Funnel(
        sent=int(step.get("sent", 0)),
        replied=int(step.get("replied", 0)),
        bounced=int(step.get("bounced", 0)),
        unsubscribed=int(step.get("unsubscribed", 0)),
    )


def campaign_funnel(steps: Iterable[Mapping[str, Any]]) -> Funnel:
    """The whole campaign's funnel: its steps' funnels added up."""
    total = Funnel()
    for step in steps:
        total = total + step_funnel(step)
    return total


@dataclass(frozen=True)
class StepView:
    """One step's row on a page: the progress row as the CLI prints it, and its funnel."""

    row: Mapping[str, Any]
    funnel: Funnel


@dataclass(frozen=True)
class CampaignView:
    """A campaign on a page: its `campaign_progress`, the whole campaign's funnel and each step's."""

    progress: Mapping[str, Any]
    funnel: Funnel
    steps: tuple[StepView, ...]

    @property
    def id(self) -> str:
        """The campaign's id."""
        return str(self.progress["id"])


def campaign_view(progress: Mapping[str, Any]) -> CampaignView:
    """The page's view of one campaign's `campaign_progress`."""
    steps = tuple(StepView(row, step_funnel(row)) for row in progress["steps"])
    return CampaignView(progress, campaign_funnel(progress["steps"]), steps)


@dataclass(frozen=True)
class Bar:
    """A progress bar: `value` of `max`, and the words beside it."""

    value: float
    max: float
    label: str


def usage_bar(used: int, limit: int | None) -> Bar:
    """Sends used against a limit: `12 / 50`; without a limit the bar is empty and says `12 (no limit)`."""
    if limit is None:
        return Bar(0, 1, f"{fmt_count(used)} (no limit)")
    return Bar(min(used, limit), max(limit, 1), f"{fmt_count(used)} / {fmt_count(limit)}")


def live_key(*parts: object) -> str:
    """The key a live number is known by on the page and in `/dashboard/live`: `campaign.<id>.sent`."""
    return ".".join(str(p) for p in parts)


def campaign_live(progress: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """The live texts and bars of one campaign's `campaign_progress`: its percentage, lead states, the
    funnel of each step and of the whole campaign, and today's sends."""
    cid = progress["id"]
    values: dict[str, str] = {
        live_key("campaign", cid, "percent"): fmt_percent(progress["percent_complete"]),
        live_key("campaign", cid, "status"): str(progress["status"]),
        live_key("campaign", cid, "sent_today"): fmt_count(progress.get("sent_today", 0)),
    }
    for state, count in progress["leads"].items():
        values[live_key("campaign", cid, "leads", state)] = fmt_count(count)
    funnels = [(str(s["step_order"]), step_funnel(s), s) for s in progress["steps"]]
    funnels.append(("all", campaign_funnel(progress["steps"]), {}))
    for step, funnel, row in funnels:
        values[live_key("campaign", cid, "step", step, "sent")] = fmt_count(funnel.sent)
        for name in ("replied", "bounced", "unsubscribed"):
            count = getattr(funnel, name)
            values[live_key("campaign", cid, "step", step, name)] = fmt_count(count)
            values[live_key("campaign", cid, "step", step, name, "share")] = funnel.share(count)
        for name in ("leads_at_step", "failed", "uncertain"):
            if name in row:
                values[live_key("campaign", cid, "step", step, name)] = fmt_count(row[name])
    bars = {live_key("campaign", cid, "progress"): {"value": float(progress["percent_complete"]), "max": 100.0}}
    return values, bars


# A page polls at most this often, and waits this many times as long as the server took to answer, so an
# open tab never costs the service more than a tenth of its time however large the campaigns grow.
LIVE_SECONDS = 5
LIVE_COST_FACTOR = 10
MAX_LIVE_SECONDS = 120


def next_poll_seconds(took_seconds: float) -> int:
    """How long a page waits before its next poll, given how long this answer took to compute."""
    return int(min(max(LIVE_SECONDS, math.ceil(took_seconds * LIVE_COST_FACTOR)), MAX_LIVE_SECONDS))


def fmt_count(value: int | float) -> str:
    """A count with thousands separators: `12,345`."""
    return f"{int(value):,}"


def fmt_percent(value: float) -> str:
    """A percentage with at most one decimal: `12.5%`, `100%`."""
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text}%"


def fmt_time(moment: datetime | None) -> str:
    """A moment in UTC to the minute (`2026-12-01 22:05 UTC`), `-` for none."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        hours, rest = divmod(int(seconds), 3600)
        return f"{hours} h {rest // 60} min" if rest >= 60 else f"{hours} h"
    return f"{int(seconds // 86400)} d"


def fmt_relative(moment: datetime | None, now: datetime) -> str:
    """How far `moment` is from `now`: `in 5 min`, `3 h ago`, `now` within a second, `-` for none."""
    if moment is None:
        return "-"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    return f"in {_span(seconds)}" if seconds > 0 else f"{_span(-seconds)} ago"


def next_free(next_available_at: datetime | None, now: datetime) -> str:
    """When an account may send next: `now` if its wait is over (or it never waited), else `in 4 min`."""
    if next_available_at is None:
        return "now"
    moment = next_available_at if next_available_at.tzinfo else next_available_at.replace(tzinfo=UTC)
    return "now" if moment <= now else fmt_relative(moment, now)
