"""The one stop policy: which statuses skip a recipient and which stop the lead."""

from __future__ import annotations

import pytest

from app.domain.stop_policy import SKIP_STATUSES, lead_stop_reason, skip_reason, stops_every_lead


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("not_contacted", None),
        ("contacted", None),
        ("failed", None),
        ("uncertain", None),
        ("replied", "recipient is replied"),
        ("unsubscribed", "recipient is unsubscribed"),
        ("bounced", "recipient is bounced"),
        ("invalid", "recipient is invalid"),
    ],
)
def test_skip_reason_by_status(status: str, reason: str | None) -> None:
    assert skip_reason(status) == reason


@pytest.mark.parametrize(
    ("statuses", "reason"),
    [
        ([], None),
        (["not_contacted"], None),
        (["contacted", "bounced"], None),
        (["replied", "not_contacted"], "replied"),
        (["contacted", "replied"], "replied"),
        (["bounced"], "bounced"),
        (["unsubscribed", "unsubscribed"], "unsubscribed"),
        (["bounced", "unsubscribed"], "no recipient left to mail (bounced, unsubscribed)"),
    ],
)
def test_a_reply_from_one_recipient_stops_the_whole_lead_and_so_does_having_nobody_left(
    statuses: list[str], reason: str | None
) -> None:
    assert lead_stop_reason(statuses) == reason


def test_every_skipping_status_stops_a_lead_when_all_recipients_have_it() -> None:
    assert all(stops_every_lead(s) for s in SKIP_STATUSES)
    assert not stops_every_lead("contacted")
