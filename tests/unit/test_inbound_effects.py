"""The table of what an answer does to a lead: status, stop, suppression."""

from __future__ import annotations

import pytest

from app.domain.inbound_effects import (
    AUTO_REPLY,
    HARD_BOUNCE,
    REPLY,
    SOFT_BOUNCE,
    UNSUBSCRIBE,
    LeadChange,
    activity_type,
    decide,
)

TWO = ["contacted", "not_contacted"]


@pytest.mark.parametrize(
    ("answer", "statuses", "stop_on_reply", "soft", "expected"),
    [
        (REPLY, TWO, "lead", 0, LeadChange("replied", "replied", "replied")),
        (REPLY, TWO, "recipient", 0, LeadChange("replied", "replied", None)),
        (REPLY, ["contacted"], "recipient", 0, LeadChange("replied", "replied", "replied")),
        (REPLY, TWO, "none", 0, LeadChange("replied")),
        (AUTO_REPLY, TWO, "lead", 0, LeadChange("auto_reply")),
        (HARD_BOUNCE, TWO, "lead", 0, LeadChange("bounced", "bounced", None, "bounced")),
        (HARD_BOUNCE, ["contacted"], "lead", 0, LeadChange("bounced", "bounced", "bounced", "bounced")),
        (
            HARD_BOUNCE,
            ["contacted", "unsubscribed"],
            "lead",
            0,
            LeadChange("bounced", "bounced", "no recipient left to mail (bounced, unsubscribed)", "bounced"),
        ),
        (SOFT_BOUNCE, TWO, "lead", 0, LeadChange("soft_bounce")),
        (SOFT_BOUNCE, TWO, "lead", 1, LeadChange("soft_bounce")),
        (
            SOFT_BOUNCE,
            TWO,
            "lead",
            2,
            LeadChange("soft_bounce", "bounced", None, "bounced", "soft bounce number 3: counted as a hard bounce"),
        ),
        (UNSUBSCRIBE, TWO, "lead", 0, LeadChange("unsubscribed", "unsubscribed", None, "unsubscribed")),
        (
            UNSUBSCRIBE,
            ["contacted"],
            "lead",
            0,
            LeadChange("unsubscribed", "unsubscribed", "unsubscribed", "unsubscribed"),
        ),
        # A recipient already stopped keeps the first reason; the suppression is still added.
        (UNSUBSCRIBE, ["replied", "contacted"], "lead", 0, LeadChange("unsubscribed", None, None, "unsubscribed")),
        (REPLY, ["unsubscribed", "contacted"], "lead", 0, LeadChange("replied")),
    ],
)
def test_what_an_answer_does(
    answer: str, statuses: list[str], stop_on_reply: str, soft: int, expected: LeadChange
) -> None:
    assert decide(answer, statuses, 0, stop_on_reply=stop_on_reply, earlier_soft_bounces=soft) == expected


def test_the_answer_applies_to_the_recipient_named() -> None:
    change = decide(HARD_BOUNCE, ["bounced", "contacted"], 1)
    assert change == LeadChange("bounced", "bounced", "bounced", "bounced")


def test_unknown_answers_and_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown answer"):
        decide("maybe", TWO, 0)
    with pytest.raises(ValueError, match="stop_on_reply"):
        decide(REPLY, TWO, 0, stop_on_reply="campaign")


def test_activity_types() -> None:
    assert [activity_type(a) for a in (REPLY, AUTO_REPLY, HARD_BOUNCE, SOFT_BOUNCE, UNSUBSCRIBE)] == [
        "replied",
        "auto_reply",
        "bounced",
        "soft_bounce",
        "unsubscribed",
    ]
