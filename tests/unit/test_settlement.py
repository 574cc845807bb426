"""Settle: one lead's write (fields, next due time, activities, outcome) for what a claim did, at one `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.models import Campaign, Lead, SequenceStep
from app.domain.settlement import LeadContext, RecipientResult, advance, release, retry, settle, step_after
from app.domain.settlement import Outcome as SettleOutcome

NOW = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)


def campaign(**settings: Any) -> Campaign:
    settings = {"min_wait_time": 10, "uncertain_after_hours": 24, **settings}
    return Campaign.from_doc(
        {"_id": "c1", "name": "Spring", "status": "active", "sequence_id": "s1", "settings": settings}
    )


def step(order: int, delay_minutes: float = 0) -> SequenceStep:
    return SequenceStep(f"st{order}", "s1", order, f"t{order}", delay_minutes)


STEPS = {1: step(1), 2: step(2, delay_minutes=1440), 5: step(5, delay_minutes=30)}


def context(recipients: int = 2, order: int = 1, the_campaign: Campaign | None = None, **progress: Any) -> LeadContext:
    data = [{"email": f"r{i}@acme.example"} for i in range(recipients)]
    lead = Lead.from_doc(
        {"_id": "l1", "campaign_id": "c1", "lead_data": data, "progress": {"current_step_order": order, **progress}}
    )
    return LeadContext(lead, the_campaign or campaign(), STEPS, STEPS[order])


SENT = RecipientResult("sent", "contacted", account_id="a1", message_id="<m1@sender.example>")
UNCERTAIN = RecipientResult("uncertain", "uncertain", account_id="a1", error="dropped during DATA")
SKIPPED = RecipientResult("skipped", None, error="recipient is unsubscribed")
FAILED = RecipientResult("failed", "bounced", account_id="a1", error="5.1.1 no such user", smtp_code=550)


# --- next due time ------------------------------------------------------------------------------------------------


def test_a_send_with_recipients_pending_makes_the_lead_due_after_min_wait_time() -> None:
    ctx = context(recipients=3)
    result = settle(ctx, [(0, SENT)], NOW)
    assert result.next_due_at == NOW + timedelta(minutes=10)
    assert result.outcome == SettleOutcome("sent", "l1", "c1", "a1", NOW + timedelta(minutes=10))
    assert not result.step_completed
    assert result.set == {
        "progress.processed_recipients.step_1_recipient_0": {
            "processed_at": NOW,
            "email": "r0@acme.example",
            "template_id": "t1",
            "status": "sent",
            "account_id": "a1",
            "message_id": "<m1@sender.example>",
        },
        "lead_data.0.status": "contacted",
        "lead_data.0.last_contacted_at": NOW,
        "lead_data.0.last_step": 1,
        "progress.last_sent_at": NOW,
    }
    assert result.unset == ()


@pytest.mark.parametrize(
    ("results", "due"),
    [
        pytest.param([(0, SKIPPED)], NOW, id="a-skip-is-due-at-once"),
        pytest.param([(0, FAILED)], NOW, id="a-failure-is-due-at-once"),
        pytest.param([(0, SKIPPED), (1, SENT)], NOW + timedelta(minutes=10), id="skips-then-a-send-waits"),
    ],
)
def test_the_next_pending_recipient_waits_only_after_a_contact(
    results: list[tuple[int, RecipientResult]], due: datetime
) -> None:
    result = settle(context(recipients=3), results, NOW)
    assert result.next_due_at == due
    assert "progress.current_step_order" not in result.set


def test_a_skip_records_its_reason_but_touches_no_contact_fields() -> None:
    result = settle(context(recipients=2), [(0, SKIPPED)], NOW)
    assert result.set == {
        "progress.processed_recipients.step_1_recipient_0": {
            "processed_at": NOW,
            "email": "r0@acme.example",
            "template_id": "t1",
            "status": "skipped",
            "error": "recipient is unsubscribed",
        }
    }
    assert result.outcome.kind == "skipped"


@pytest.mark.parametrize(
    ("order", "next_order", "due"),
    [
        pytest.param(1, 2, NOW + timedelta(minutes=1440), id="next-step-after-its-delay"),
        pytest.param(2, 5, NOW + timedelta(minutes=30), id="step-orders-may-have-gaps"),
    ],
)
def test_the_last_recipient_of_a_step_advances_the_lead(order: int, next_order: int, due: datetime) -> None:
    done = {f"step_{order}_recipient_0": {"status": "sent", "processed_at": EARLIER}}
    result = settle(context(order=order, processed_recipients=done), [(1, SENT)], NOW)
    assert result.set["progress.current_step_order"] == next_order
    assert (result.next_due_at, result.step_completed) == (due, True)
    assert result.outcome == SettleOutcome("sent", "l1", "c1", "a1", due)
    assert "progress.completed" not in result.set


def test_the_last_recipient_of_the_last_step_completes_the_lead() -> None:
    result = settle(context(recipients=1, order=5), [(0, SENT)], NOW)
    assert result.set["progress.completed"] is True
    assert result.set["progress.completed_at"] == NOW
    assert "progress.current_step_order" not in result.set
    assert (result.next_due_at, result.step_completed) == (None, True)
    assert result.outcome == SettleOutcome("sent", "l1", "c1", "a1", None)


@pytest.mark.parametrize(
    ("order", "kind", "due", "values"),
    [
        pytest.param(1, "advanced", NOW + timedelta(minutes=1440), {"progress.current_step_order": 2}, id="next"),
        pytest.param(5, "completed", None, {"progress.completed": True, "progress.completed_at": NOW}, id="last"),
    ],
)
def test_advance_moves_a_finished_step_on(order: int, kind: str, due: datetime | None, values: dict[str, Any]) -> None:
    result = advance(context(order=order), NOW)
    assert (result.set, result.next_due_at, result.activities) == (values, due, [])
    assert result.outcome == SettleOutcome(kind, "l1", "c1", None, due)


def test_an_uncertain_last_recipient_holds_the_step_for_uncertain_after_hours() -> None:
    result = settle(context(recipients=1), [(0, UNCERTAIN)], NOW)
    assert result.next_due_at == NOW + timedelta(hours=24)
    assert "progress.current_step_order" not in result.set
    assert "progress.completed" not in result.set
    assert not result.step_completed
    assert result.set["lead_data.0.status"] == "uncertain"
    assert result.set["lead_data.0.last_contacted_at"] == NOW


def test_an_uncertain_last_recipient_advances_at_once_when_the_hold_is_off() -> None:
    result = settle(context(recipients=1, the_campaign=campaign(uncertain_after_hours=0)), [(0, UNCERTAIN)], NOW)
    assert result.set["progress.current_step_order"] == 2


def test_an_earlier_uncertain_recipient_of_the_step_still_holds_the_step() -> None:
    done = {"step_1_recipient_0": {"status": "uncertain", "processed_at": EARLIER}}
    result = settle(context(recipients=2, processed_recipients=done), [(1, SENT)], NOW)
    assert "progress.current_step_order" not in result.set
    assert result.next_due_at == EARLIER + timedelta(hours=24)


def test_settling_a_retried_recipient_clears_its_retry_marker() -> None:
    ctx = context(recipients=2, retries={"step_1_recipient_0": {"account_id": "a9", "attempts": 1}})
    assert settle(ctx, [(0, SENT)], NOW).unset == ("progress.retries.step_1_recipient_0",)


# --- retry and release --------------------------------------------------------------------------------------------


def test_retry_keeps_a_marker_and_the_step_and_records_a_retry_activity() -> None:
    failure = RecipientResult("retry", None, account_id="a1", error="4.7.1 later", smtp_code=451)
    due = NOW + timedelta(seconds=45)
    result = retry(context(recipients=2), [], 0, failure, 2, due, NOW)
    assert result.set == {
        "progress.retries.step_1_recipient_0": {"account_id": "a1", "attempts": 2, "error": "4.7.1 later", "at": NOW}
    }
    assert (result.next_due_at, result.unset, result.step_completed) == (due, (), False)
    assert result.outcome == SettleOutcome("retry", "l1", "c1", "a1", due)
    assert [a["type"] for a in result.activities] == ["retry"]
    assert result.activities[0]["smtp_code"] == 451


def test_retry_records_the_skips_before_it_without_moving_the_step() -> None:
    failure = RecipientResult("retry", None, account_id="a1", error="busy")
    result = retry(context(recipients=2), [(0, SKIPPED)], 1, failure, 1, NOW, NOW)
    assert result.set["progress.processed_recipients.step_1_recipient_0"]["status"] == "skipped"
    assert "progress.retries.step_1_recipient_1" in result.set
    assert "progress.current_step_order" not in result.set
    assert [(a["recipient_index"], a["type"]) for a in result.activities] == [(0, "skipped"), (1, "retry")]


def test_release_of_skips_alone_never_completes_the_step() -> None:
    # The last step's only other recipient is skipped: settle() would complete the lead, release() must not.
    done = {"step_5_recipient_1": {"status": "sent", "processed_at": EARLIER}}
    ctx = context(recipients=3, order=5, processed_recipients=done)
    later = NOW + timedelta(hours=2)
    outcome = SettleOutcome("waiting", "l1", "c1", None, later)
    result = release(ctx, [(0, SKIPPED), (2, SKIPPED)], later, outcome, NOW)
    assert not {"progress.completed", "progress.completed_at", "progress.current_step_order"} & set(result.set)
    assert (result.next_due_at, result.outcome, result.step_completed) == (later, outcome, False)


# --- activities ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "kind", "extra"),
    [
        pytest.param(SENT, "sent", {"account_id": "a1", "message_id": "<m1@sender.example>"}, id="sent"),
        pytest.param(SKIPPED, "skipped", {"error": "recipient is unsubscribed"}, id="skipped"),
        pytest.param(
            FAILED, "failed", {"account_id": "a1", "error": "5.1.1 no such user", "smtp_code": 550}, id="failed"
        ),
        pytest.param(
            RecipientResult("failed", None, error="missing variable", activity="template_error"),
            "template_error",
            {"error": "missing variable"},
            id="own-activity-type",
        ),
    ],
)
def test_activities_name_campaign_lead_step_recipient_and_type(
    result: RecipientResult, kind: str, extra: dict[str, Any]
) -> None:
    settled = settle(context(recipients=3, order=2), [(1, result)], NOW)
    assert settled.activities == [
        {
            "campaign_id": "c1",
            "lead_id": "l1",
            "step_order": 2,
            "recipient_index": 1,
            "email": "r1@acme.example",
            "type": kind,
            "created_at": NOW,
            **extra,
        }
    ]


@pytest.mark.parametrize(
    ("order", "expected"),
    [(1, 2), (2, 5), (3, 5), (5, None), (0, 1)],
)
def test_step_after_is_the_next_order_present(order: int, expected: int | None) -> None:
    nxt = step_after(STEPS, order)
    assert (nxt.step_order if nxt else None) == expected
