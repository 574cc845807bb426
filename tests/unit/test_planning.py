"""Planning: what a claimed lead needs now, decided from plain values at one fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domain.gates import DEFAULT_GATES, Defer, Gate, GateContext, stop_policy_gate, suppression_gate
from app.domain.models import Campaign, Lead, Recipient, SequenceStep
from app.domain.planning import (
    COMPLETE,
    CONFIG_ERROR,
    INACTIVE,
    SEND,
    STEP_DONE,
    STOP,
    UNSCHEDULE,
    WAIT,
    LeadPlan,
    pending_recipients,
    plan,
    uncertain_hold,
)

NOW = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def campaign(status: str = "active", **settings: Any) -> Campaign:
    return Campaign.from_doc(
        {"_id": "c1", "name": "Spring outreach", "status": status, "sequence_id": "s1", "settings": settings}
    )


def step(order: int) -> SequenceStep:
    return SequenceStep(id=f"st{order}", sequence_id="s1", step_order=order, template_id=f"t{order}", delay_minutes=60)


STEPS = {1: step(1), 2: step(2)}


def lead(*statuses: str, **progress: Any) -> Lead:
    """A lead whose recipients r0@acme.example, r1@acme.example, ... have these statuses."""
    data = [{"email": f"r{i}@acme.example", "status": s} for i, s in enumerate(statuses or ("not_contacted",))]
    return Lead.from_doc({"_id": "l1", "campaign_id": "c1", "lead_data": data, "progress": progress})


def processed(step_order: int, index: int, status: str = "sent", at: datetime = NOW) -> dict[str, Any]:
    return {f"step_{step_order}_recipient_{index}": {"status": status, "processed_at": at}}


_ACTIVE = campaign()


def run(
    the_lead: Lead,
    suppressed: dict[str, str] | None = None,
    *,
    the_campaign: Campaign | None = _ACTIVE,
    steps: dict[int, SequenceStep] = STEPS,
    gates: tuple[Gate, ...] = DEFAULT_GATES,
) -> LeadPlan:
    return plan(the_lead, the_campaign, steps, GateContext(NOW, suppressed or {}), gates)


# --- sending and skipping ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "suppressed", "index", "skips"),
    [
        pytest.param(("not_contacted", "not_contacted"), {}, 0, (), id="first-pending-is-sent"),
        pytest.param(("contacted",), {}, 0, (), id="contacted-earlier-is-mailed-again"),
        pytest.param(("unsubscribed", "not_contacted"), {}, 1, ((0, "recipient is unsubscribed"),), id="unsubscribed"),
        pytest.param(("bounced", "not_contacted"), {}, 1, ((0, "recipient is bounced"),), id="bounced"),
        pytest.param(
            ("not_contacted", "not_contacted"),
            {"r0@acme.example": "bounce"},
            1,
            ((0, "suppressed (bounce): r0@acme.example"),),
            id="suppressed-address",
        ),
        pytest.param(
            ("not_contacted", "not_contacted", "not_contacted"),
            {"r0@acme.example": "bounce", "r1@acme.example": "complaint"},
            2,
            ((0, "suppressed (bounce): r0@acme.example"), (1, "suppressed (complaint): r1@acme.example")),
            id="several-skips-before-the-send",
        ),
    ],
)
def test_first_admitted_recipient_is_sent_after_recording_the_skips_before_it(
    statuses: tuple[str, ...], suppressed: dict[str, str], index: int, skips: tuple[tuple[int, str], ...]
) -> None:
    result = run(lead(*statuses), suppressed)
    assert result == LeadPlan(SEND, STEPS[1], skips, index=index)


def test_a_suppressed_domain_skips_every_address_at_it() -> None:
    the_lead = Lead(
        id="l1",
        campaign_id="c1",
        recipients=(Recipient("ann@blocked.example"), Recipient("bob@open.example")),
        progress=lead().progress,
    )
    result = run(the_lead, {"blocked.example": "complaint"})
    assert (result.action, result.index, result.skips) == (SEND, 1, ((0, "suppressed (complaint): blocked.example"),))


def test_already_processed_recipients_of_the_step_are_not_sent_again() -> None:
    result = run(lead("contacted", "not_contacted", processed_recipients=processed(1, 0)))
    assert (result.action, result.index) == (SEND, 1)


def test_reply_from_one_recipient_stops_the_whole_lead() -> None:
    result = run(lead("not_contacted", "replied", "not_contacted"))
    assert result == LeadPlan(STOP, STEPS[1], reason="replied")


@pytest.mark.parametrize(
    ("statuses", "suppressed", "action", "reason"),
    [
        pytest.param(("unsubscribed",), {}, STOP, "unsubscribed", id="one-unsubscribed"),
        pytest.param(("bounced", "bounced"), {}, STOP, "bounced", id="all-bounced"),
        pytest.param(
            ("bounced", "unsubscribed"), {}, STOP, "no recipient left to mail (bounced, unsubscribed)", id="mixed"
        ),
        # A suppression is not a recipient status: the lead walks on, skipping them at every step.
        pytest.param(("not_contacted",), {"r0@acme.example": "bounce"}, STEP_DONE, None, id="suppressed-only"),
    ],
)
def test_every_recipient_skipped_records_the_skips(
    statuses: tuple[str, ...], suppressed: dict[str, str], action: str, reason: str | None
) -> None:
    result = run(lead(*statuses), suppressed)
    assert (result.action, result.reason, [i for i, _ in result.skips]) == (action, reason, list(range(len(statuses))))


def test_no_pending_recipient_means_the_step_is_done() -> None:
    done = processed(1, 0) | processed(1, 1, status="skipped")
    assert run(lead("contacted", "contacted", processed_recipients=done)) == LeadPlan(STEP_DONE, STEPS[1])


def test_a_custom_gate_deferring_releases_the_lead_until_then() -> None:
    later = NOW + timedelta(hours=3)

    def closed_window(recipient: Recipient, ctx: GateContext) -> Defer | None:
        return Defer(later, "outside the sending window")

    result = run(lead("unsubscribed", "not_contacted"), gates=(stop_policy_gate, suppression_gate, closed_window))
    assert result == LeadPlan(
        WAIT, STEPS[1], ((0, "recipient is unsubscribed"),), until=later, reason="outside the sending window"
    )


@pytest.mark.parametrize(
    ("retries", "avoid"),
    [
        pytest.param({}, None, id="no-earlier-attempt"),
        pytest.param({"step_1_recipient_0": {"account_id": "a7", "attempts": 1}}, "a7", id="last-failed-account"),
        pytest.param({"step_1_recipient_1": {"account_id": "a7"}}, None, id="another-recipients-retry"),
        pytest.param({"step_2_recipient_0": {"account_id": "a7"}}, None, id="another-steps-retry"),
        pytest.param({"step_1_recipient_0": {"attempts": 1}}, None, id="marker-without-account"),
    ],
)
def test_avoid_names_the_account_that_failed_last_for_this_recipient(
    retries: dict[str, Any], avoid: str | None
) -> None:
    result = run(lead("not_contacted", "not_contacted", retries=retries))
    assert (result.action, result.index, result.avoid) == (SEND, 0, avoid)


# --- uncertain sends ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_hours", "action", "until"),
    [
        pytest.param(1, WAIT, NOW + timedelta(hours=23), id="within-the-hold"),
        pytest.param(23.5, WAIT, NOW + timedelta(hours=0.5), id="just-before-the-end"),
        pytest.param(24, STEP_DONE, None, id="at-the-end"),
        pytest.param(30, STEP_DONE, None, id="after-it"),
    ],
)
def test_an_uncertain_send_of_the_step_holds_the_lead_for_uncertain_after_hours(
    age_hours: float, action: str, until: datetime | None
) -> None:
    entries = processed(1, 0, "uncertain", NOW - timedelta(hours=age_hours)) | processed(1, 1)
    result = run(lead("uncertain", "contacted", processed_recipients=entries))
    assert (result.action, result.until) == (action, until)
    if action == WAIT:
        assert result.reason is not None and "resolve-send" in result.reason


@pytest.mark.parametrize(
    ("entries", "hours", "expected"),
    [
        pytest.param(processed(1, 0, "uncertain", NOW - timedelta(hours=2)), 6, NOW + timedelta(hours=4), id="held"),
        pytest.param(processed(1, 0, "uncertain", NOW - timedelta(hours=2)), 0, None, id="hold-disabled"),
        pytest.param(processed(1, 0, "sent", NOW), 6, None, id="sent-does-not-hold"),
        pytest.param(processed(2, 0, "uncertain", NOW), 6, None, id="another-step"),
        pytest.param(
            processed(1, 0, "uncertain", NOW - timedelta(hours=5)) | processed(1, 1, "uncertain", NOW),
            6,
            NOW + timedelta(hours=6),
            id="latest-of-several",
        ),
        pytest.param({"step_1_recipient_0": {"status": "uncertain"}}, 6, None, id="no-processed-at"),
    ],
)
def test_uncertain_hold(entries: dict[str, Any], hours: float, expected: datetime | None) -> None:
    assert uncertain_hold(lead("uncertain", "uncertain", processed_recipients=entries), 1, hours, NOW) == expected


def test_pending_recipients_are_those_without_an_entry_for_the_step() -> None:
    the_lead = lead("contacted", "not_contacted", "contacted", processed_recipients=processed(1, 0) | processed(1, 2))
    assert (pending_recipients(the_lead, 1), pending_recipients(the_lead, 2)) == ((1,), (0, 1, 2))


# --- the lead, the campaign and the sequence ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("the_lead", "the_campaign", "action"),
    [
        pytest.param(lead(stopped=True), campaign(), UNSCHEDULE, id="stopped-lead"),
        pytest.param(lead(completed=True), campaign(), UNSCHEDULE, id="completed-lead"),
        pytest.param(lead(stopped=True), None, UNSCHEDULE, id="stopped-lead-of-a-missing-campaign"),
        pytest.param(lead(), campaign("paused"), INACTIVE, id="paused-campaign"),
        pytest.param(lead(), campaign("draft"), INACTIVE, id="draft-campaign"),
        pytest.param(lead(), None, INACTIVE, id="missing-campaign"),
    ],
)
def test_leads_that_must_not_be_mailed_now(the_lead: Lead, the_campaign: Campaign | None, action: str) -> None:
    assert run(the_lead, the_campaign=the_campaign) == LeadPlan(action)


def test_a_step_beyond_the_last_completes_the_lead() -> None:
    assert run(lead(current_step_order=3)) == LeadPlan(COMPLETE)


@pytest.mark.parametrize(
    ("steps", "current"),
    [
        pytest.param({1: step(1), 3: step(3)}, 2, id="gap-in-the-middle"),
        pytest.param({}, 1, id="empty-sequence"),
    ],
)
def test_a_missing_step_is_a_config_error_saying_what_to_fix(steps: dict[int, SequenceStep], current: int) -> None:
    result = run(lead(current_step_order=current), steps=steps)
    assert result.action == CONFIG_ERROR
    assert result.reason == (
        f"the campaign's sequence s1 has no step {current}: "
        "add it (outbound step add --campaign-id c1 ...), then run outbound campaign resume c1"
    )


@pytest.mark.parametrize("setting", ["recipient", "none"])
def test_with_stop_on_reply_recipient_a_reply_stops_only_that_recipient(setting: str) -> None:
    result = run(lead("replied", "not_contacted"), the_campaign=campaign(stop_on_reply=setting))
    assert result.action == SEND and result.index == 1
    assert result.skips == ((0, "recipient is replied"),)
    everyone = run(lead("replied", "unsubscribed"), the_campaign=campaign(stop_on_reply=setting))
    assert everyone.action == STOP


def test_an_unknown_stop_on_reply_is_refused_naming_the_setting() -> None:
    with pytest.raises(Exception, match="stop_on_reply"):
        campaign(stop_on_reply="sometimes")
