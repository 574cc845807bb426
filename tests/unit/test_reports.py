"""Pure summaries behind the inspection commands: lead states, campaign progress, account usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain import reports
from app.domain.limits import AccountLimits
from app.domain.models import AccountCampaignSettings, InvalidDocument, Lead
from app.store import lead_queries

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def lead(recipients: int = 1, **progress: Any) -> Lead:
    return Lead.from_doc(
        {
            "_id": "L1",
            "campaign_id": "C1",
            "lead_data": [{"email": f"p{i}@example.com"} for i in range(recipients)],
            "progress": progress,
        }
    )


@pytest.mark.parametrize(
    ("progress", "state"),
    [
        ({"completed": True, "stopped": True}, reports.COMPLETED),
        ({"stopped": True, "next_due_at": NOW}, reports.STOPPED),
        ({"next_due_at": NOW, "lease_until": NOW + timedelta(seconds=1)}, reports.IN_PROGRESS),
        ({"next_due_at": NOW, "lease_until": NOW - timedelta(seconds=1)}, reports.DUE),
        ({"next_due_at": NOW}, reports.DUE),
        ({"next_due_at": NOW + timedelta(minutes=1)}, reports.WAITING),
        ({}, reports.WAITING),
    ],
)
def test_lead_state_follows_precedence_completed_stopped_leased_due_waiting(
    progress: dict[str, Any], state: str
) -> None:
    assert reports.lead_state(lead(**progress), NOW) == state


def test_due_filter_requires_due_time_open_lead_and_free_lease() -> None:
    flt = lead_queries.due_filter(NOW)
    assert flt["progress.next_due_at"] == {"$gte": datetime(1, 1, 1, tzinfo=UTC), "$lte": NOW}  # bounded: indexed range
    assert flt["progress.stopped"] == {"$ne": True}
    assert flt["progress.completed"] == {"$ne": True}
    assert {"progress.lease_until": {"$lte": NOW}} in flt["$or"]


def test_pending_recipients_are_those_the_current_step_has_not_processed() -> None:
    item = lead(3, current_step_order=2, processed_recipients={"step_2_recipient_1": {}, "step_1_recipient_0": {}})
    assert reports.pending_recipients(item) == [0, 2]


def test_campaign_progress_counts_step_outcomes_and_lead_states() -> None:
    leads = [
        lead(
            2,
            current_step_order=2,
            next_due_at=NOW,
            processed_recipients={
                "step_1_recipient_0": {"status": "sent"},
                "step_1_recipient_1": {"status": "failed"},
            },
        ),
        lead(1, completed=True, processed_recipients={"step_1_recipient_0": {}, "step_2_recipient_0": {}}),
        lead(1, stopped=True, processed_recipients={"step_1_recipient_0": {"status": "uncertain"}}),
    ]
    result = reports.campaign_progress(leads, [1, 2], NOW)
    by_step = {s.step_order: s for s in result.steps}
    assert by_step[1] == reports.StepProgress(step_order=1, leads_at_step=1, sent=2, failed=1, uncertain=1)
    assert by_step[2] == reports.StepProgress(step_order=2, leads_at_step=1, sent=1)
    assert result.counts == reports.LeadCounts(total=3, completed=1, stopped=1, due=1)
    # 6 (lead, step) pairs: the completed lead finished 2, the lead at step 2 finished 1.
    assert result.percent_complete == 50.0


def test_campaign_progress_of_an_empty_campaign_is_zero_percent() -> None:
    result = reports.campaign_progress([], [1, 2, 3], NOW)
    assert result.percent_complete == 0.0
    assert result.counts.total == 0
    assert [s.step_order for s in result.steps] == [1, 2, 3]


def test_account_limits_take_the_strictest_of_several_settings_documents() -> None:
    limits = reports.account_limits(
        [
            AccountCampaignSettings(email_id="A", daily_limit=30, min_wait_time=2, max_daily_sends=100),
            AccountCampaignSettings(email_id="A", daily_limit=None, min_wait_time=5, max_daily_sends=80),
        ]
    )
    assert limits == AccountLimits(max_daily_sends=80, campaign_daily_limit=30, min_wait_minutes=5)
    assert reports.account_limits([]) == AccountLimits()


def test_usage_reserved_is_sent_minus_committed() -> None:
    usage = reports.usage_from_doc(
        {"account_id": "A", "day": "2025-03-10", "sent": 5, "committed": 3, "campaigns": {"C1": 4, "C2": 1}}
    )
    assert usage.reserved == 2
    assert usage.campaigns == {"C1": 4, "C2": 1}


def test_usage_with_a_negative_count_is_reported_as_malformed() -> None:
    with pytest.raises(InvalidDocument) as info:
        reports.usage_from_doc({"_id": "u1", "account_id": "A", "day": "2025-03-10", "sent": -1})
    assert info.value.collection == "account_usage"
    assert info.value.field == "sent"


@pytest.mark.parametrize(("sent", "limit", "left"), [(3, 10, 7), (12, 10, 0), (3, None, None)])
def test_remaining_sends_never_go_below_zero(sent: int, limit: int | None, left: int | None) -> None:
    assert reports.remaining_sends(sent, limit) == left


def test_parse_day_accepts_iso_days_and_explains_bad_ones() -> None:
    assert reports.parse_day("2025-01-31") == "2025-01-31"
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        reports.parse_day("31/01/2025")


def test_utc_day_uses_the_utc_calendar() -> None:
    from datetime import timezone

    late_evening_west = datetime(2025, 3, 10, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert reports.utc_day(late_evening_west) == "2025-03-11"


def test_account_state_rejects_a_non_date_wait_window() -> None:
    with pytest.raises(InvalidDocument) as info:
        reports.account_state({"_id": "A", "next_available_at": "soon"})
    assert info.value.field == "next_available_at"
    state = reports.account_state({"_id": "A", "reservation_token": "t", "disabled_reason": "535 auth"})
    assert state.reserved is True
    assert state.disabled_reason == "535 auth"
