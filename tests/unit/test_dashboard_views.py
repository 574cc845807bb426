"""The dashboard's view models: funnels, the live numbers, usage bars and how values read; the flash
cookie; where an action may redirect; which security headers a path gets; static URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.web.dashboard.actions import back_to
from app.web.dashboard.flash import Flash, decode, encode
from app.web.dashboard.views import (
    Funnel,
    campaign_funnel,
    campaign_live,
    campaign_view,
    fmt_count,
    fmt_percent,
    fmt_relative,
    fmt_time,
    next_free,
    next_poll_seconds,
    step_funnel,
    usage_bar,
)
from app.web.security_headers import DASHBOARD_HEADERS, SECURITY_HEADERS, STATIC_HEADERS, headers_for
from app.web.templating import static_url

NOW = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
KEY = "k" * 40


def _progress() -> dict[str, Any]:
    """A `campaign_progress` result as the CLI's view returns it."""
    step = {"leads_at_step": 0, "failed": 0, "uncertain": 0, "auto_replies": 0, "soft_bounces": 0, "variants": []}
    return {
        "id": "c1",
        "name": "Spring",
        "status": "active",
        "percent_complete": 62.5,
        "leads": {"total": 4, "completed": 2, "stopped": 0, "in_progress": 0, "due": 1, "waiting": 1},
        "steps": [
            {**step, "step_order": 1, "sent": 8, "replied": 2, "bounced": 1, "unsubscribed": 0, "leads_at_step": 1},
            {**step, "step_order": 2, "sent": 3, "replied": 1, "bounced": 0, "unsubscribed": 1, "uncertain": 1},
        ],
        "sent_today": 1234,
    }


def test_a_campaigns_funnel_adds_up_its_steps() -> None:
    steps = _progress()["steps"]
    assert step_funnel(steps[0]) == Funnel(sent=8, replied=2, bounced=1, unsubscribed=0)
    assert campaign_funnel(steps) == Funnel(sent=11, replied=3, bounced=1, unsubscribed=1)
    assert campaign_view(_progress()).steps[1].funnel.unsubscribed == 1


def test_funnel_shares_are_of_the_messages_sent_and_dashes_before_any() -> None:
    funnel = Funnel(sent=8, replied=2, bounced=1)
    assert (funnel.share(funnel.replied), funnel.share(funnel.bounced), funnel.share(0)) == ("25%", "12.5%", "0%")
    assert Funnel().share(0) == "-"


def test_live_numbers_carry_the_keys_the_page_marks() -> None:
    values, bars = campaign_live(_progress())
    assert values["campaign.c1.percent"] == "62.5%"
    assert values["campaign.c1.status"] == "active"
    assert values["campaign.c1.sent_today"] == "1,234"
    assert values["campaign.c1.leads.completed"] == "2"
    assert values["campaign.c1.step.all.sent"] == "11"
    assert values["campaign.c1.step.all.replied.share"] == "27.3%"
    assert values["campaign.c1.step.1.leads_at_step"] == "1"
    assert values["campaign.c1.step.2.uncertain"] == "1"
    assert values["campaign.c1.step.2.unsubscribed.share"] == "33.3%"
    assert bars == {"campaign.c1.progress": {"value": 62.5, "max": 100.0}}


@pytest.mark.parametrize(("took", "wait"), [(0.0, 5), (0.2, 5), (0.55, 6), (1.05, 11), (30.0, 120)])
def test_a_page_polls_less_often_when_its_numbers_take_long_to_compute(took: float, wait: int) -> None:
    assert next_poll_seconds(took) == wait


def test_usage_bars_show_sends_against_the_limit_and_never_overflow() -> None:
    assert usage_bar(7, 50).label == "7 / 50"
    assert (usage_bar(60, 50).value, usage_bar(60, 50).max) == (50, 50)
    assert usage_bar(3, None).label == "3 (no limit)"
    assert usage_bar(0, 0).max == 1  # a zero limit still draws an (empty) bar


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (None, "-"),
        (NOW, "now"),
        (NOW + timedelta(seconds=30), "in 30 s"),
        (NOW + timedelta(minutes=4, seconds=59), "in 4 min"),
        (NOW - timedelta(hours=3), "3 h ago"),
        (NOW + timedelta(hours=1, minutes=59), "in 1 h 59 min"),
        (NOW - timedelta(days=2, hours=5), "2 d ago"),
        (datetime(2026, 12, 1, 22, 5), "in 5 min"),  # naive datetimes from the driver are UTC
    ],
)
def test_relative_times_read_as_people_say_them(moment: datetime | None, text: str) -> None:
    assert fmt_relative(moment, NOW) == text


def test_counts_percentages_and_moments_are_formatted_for_people() -> None:
    assert (fmt_count(1234567), fmt_count(0)) == ("1,234,567", "0")
    assert (fmt_percent(50.0), fmt_percent(12.34), fmt_percent(100)) == ("50%", "12.3%", "100%")
    assert fmt_time(datetime(2026, 12, 1, 23, 5, 59, tzinfo=UTC)) == "2026-12-01 23:05 UTC"
    assert fmt_time(None) == "-"


def test_an_account_is_free_now_once_its_wait_is_over() -> None:
    assert next_free(None, NOW) == "now"
    assert next_free(NOW - timedelta(minutes=1), NOW) == "now"
    assert next_free(NOW + timedelta(minutes=3), NOW) == "in 3 min"


def test_a_flash_round_trips_only_with_the_key_that_signed_it() -> None:
    value = encode(Flash("ok", "Campaign paused. Reason: <b>legal</b>"), KEY)
    assert decode(value, KEY) == Flash("ok", "Campaign paused. Reason: <b>legal</b>")
    assert decode(value, "x" * 40) is None
    payload, _, signature = value.partition(".")
    assert decode(payload[:-2] + "AA." + signature, KEY) is None
    assert decode("garbage", KEY) is None and decode("", KEY) is None


def test_an_action_redirects_only_to_a_dashboard_path() -> None:
    default = "/dashboard/campaigns/c1"
    assert back_to("/dashboard/uncertain?campaign=c1", default) == "/dashboard/uncertain?campaign=c1"
    for target in (None, "", "https://evil.example/dashboard", "//evil.example/dashboard", "/login", "/dashboard\\@x"):
        assert back_to(target, default) == default


def test_dashboard_pages_get_the_self_only_policy_and_everything_else_keeps_the_strict_one() -> None:
    for path in ("/", "/dashboard", "/dashboard/campaigns/c1", "/login", "/logout"):
        assert headers_for(path) == DASHBOARD_HEADERS
    for path in ("/u/token", "/health", "/api/v1/campaigns", "/metrics", "/nowhere"):
        assert headers_for(path) == SECURITY_HEADERS
    assert headers_for("/static/outbound.css") == STATIC_HEADERS
    dashboard = dict(DASHBOARD_HEADERS)
    csp = dashboard["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert dashboard["Cache-Control"] == "no-store"
    assert dict(STATIC_HEADERS)["X-Content-Type-Options"] == "nosniff"


def test_static_urls_carry_the_files_content_hash_and_refuse_unknown_files() -> None:
    url = static_url("outbound.js")
    assert url.startswith("/static/outbound.js?v=") and len(url.rsplit("=", 1)[1]) == 12
    for bad in ("missing.js", "../templating.py"):
        with pytest.raises(ValueError, match="no static file"):
            static_url(bad)
