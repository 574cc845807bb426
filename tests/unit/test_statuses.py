"""`derive_update`: recipient statuses and processed records rebuilt from the activity log, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.models import Lead
from app.domain.statuses import derive_update

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def lead(status: str = "not_contacted", processed: dict[str, Any] | None = None, **recipient: Any) -> Lead:
    return Lead.from_doc(
        {
            "_id": "lead-1",
            "campaign_id": "c1",
            "lead_data": [{"email": "ann@example.com", "status": status, **recipient}],
            "progress": {"current_step_order": 1, "processed_recipients": processed or {}},
        }
    )


def activity(kind: str, step: int, minutes: int, smtp_code: int | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "lead_id": "lead-1",
        "type": kind,
        "step_order": step,
        "recipient_index": 0,
        "email": "ann@example.com",
        "created_at": T0 + timedelta(minutes=minutes),
        **extra,
    }
    if smtp_code is not None:
        doc["smtp_code"] = smtp_code
    return doc


def status_after(current: str, log: list[dict[str, Any]]) -> str:
    values = derive_update(lead(current), log)
    return str(values.get("lead_data.0.status", current))


SENT_1 = activity("sent", 1, 0, account_id="a1", message_id="<m1@x>")


@pytest.mark.parametrize(
    ("case", "current", "log", "expected"),
    [
        (
            "step 2 failed after its retries",
            "failed",
            [SENT_1, activity("retry", 2, 60), activity("failed", 2, 90)],
            "failed",
        ),
        ("the same, with the status lost", "not_contacted", [SENT_1, activity("failed", 2, 90)], "failed"),
        ("step 2 bounced", "bounced", [SENT_1, activity("failed", 2, 90, smtp_code=550)], "bounced"),
        ("step 2 bounced, status lost", "not_contacted", [SENT_1, activity("failed", 2, 90, smtp_code=550)], "bounced"),
        ("failed then sent", "not_contacted", [activity("failed", 1, 0), activity("sent", 2, 90)], "contacted"),
        ("uncertain then sent", "uncertain", [activity("uncertain", 1, 0), activity("sent", 2, 90)], "contacted"),
        ("sent then uncertain", "contacted", [SENT_1, activity("uncertain", 2, 90)], "uncertain"),
        ("sent then a template error", "not_contacted", [SENT_1, activity("template_error", 2, 90)], "failed"),
        ("sent then skipped", "not_contacted", [SENT_1, activity("skipped", 2, 90, error="suppressed")], "contacted"),
        ("only skipped", "not_contacted", [activity("skipped", 1, 0)], "not_contacted"),
        ("gave up on account refusals", "not_contacted", [activity("failed", 1, 0, smtp_code=535)], "failed"),
        ("a retry does not settle", "not_contacted", [activity("retry", 1, 0, smtp_code=451)], "not_contacted"),
        (
            "an uncertain send resolved as delivered",
            "contacted",
            [activity("uncertain", 1, 0), activity("resolved_sent", 1, 30)],
            "contacted",
        ),
        ("the log read newest first", "not_contacted", [activity("failed", 2, 90), SENT_1], "failed"),
        ("a reply is kept", "replied", [SENT_1, activity("failed", 2, 90)], "replied"),
        ("an unsubscribe is kept", "unsubscribed", [SENT_1], "unsubscribed"),
        ("a bounce read from the inbox is kept", "bounced", [SENT_1], "bounced"),
    ],
)
def test_a_recipients_status_is_the_one_its_latest_settled_outcome_gives(case, current, log, expected):
    assert status_after(current, log) == expected, case


def test_a_lead_that_agrees_with_its_log_needs_no_update():
    processed = {
        "step_1_recipient_0": {"status": "sent"},
        "step_2_recipient_0": {"status": "failed"},
    }
    agreed = lead("failed", processed, last_contacted_at=T0, last_step=1)

    assert derive_update(agreed, [SENT_1, activity("failed", 2, 90)]) == {}


def test_lost_processed_records_are_rebuilt_from_each_steps_latest_settled_outcome():
    log = [SENT_1, activity("retry", 2, 60, smtp_code=451), activity("failed", 2, 90, smtp_code=550, error="550 no")]

    values = derive_update(lead("bounced", last_contacted_at=T0, last_step=1), log)

    assert values == {
        "progress.processed_recipients.step_1_recipient_0": {
            "processed_at": T0,
            "email": "ann@example.com",
            "status": "sent",
            "account_id": "a1",
            "message_id": "<m1@x>",
        },
        "progress.processed_recipients.step_2_recipient_0": {
            "processed_at": T0 + timedelta(minutes=90),
            "email": "ann@example.com",
            "status": "failed",
            "error": "550 no",
            "smtp_code": 550,
        },
    }


def test_a_template_error_and_a_skip_are_recorded_as_the_dispatcher_records_them():
    log = [activity("template_error", 1, 0, error="template error: x"), activity("skipped", 2, 5, error="suppressed")]

    values = derive_update(lead("failed"), log)

    assert values["progress.processed_recipients.step_1_recipient_0"]["status"] == "failed"
    assert values["progress.processed_recipients.step_2_recipient_0"]["status"] == "skipped"


def test_an_uncertain_send_resolved_for_a_resend_is_not_recorded_as_processed_again():
    log = [activity("uncertain", 1, 0), activity("resolved_resend", 1, 30)]

    values = derive_update(lead("uncertain", last_contacted_at=T0, last_step=1), log)

    assert values == {}


def test_last_contacted_is_the_latest_message_handed_to_smtp():
    log = [SENT_1, activity("uncertain", 2, 60), activity("failed", 3, 120)]

    values = derive_update(lead("failed", last_contacted_at=T0, last_step=1), log)

    assert values["lead_data.0.last_contacted_at"] == T0 + timedelta(minutes=60)
    assert values["lead_data.0.last_step"] == 2


def test_activities_for_recipients_the_lead_does_not_have_are_ignored():
    stray = {**SENT_1, "recipient_index": 3}
    malformed = {**SENT_1, "recipient_index": "0"}

    assert derive_update(lead("not_contacted"), [stray, malformed]) == {}
