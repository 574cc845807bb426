"""One settled outcome -> the recipient's status: the table the dispatcher and update-lead-statuses share."""

from __future__ import annotations

import pytest

from app.domain.recipient_status import SETTLED_OUTCOMES, is_bounce, recipient_status


@pytest.mark.parametrize(
    ("outcome", "smtp_code", "status"),
    [
        ("sent", None, "contacted"),
        ("sent", 250, "contacted"),
        ("uncertain", None, "uncertain"),
        ("failed", 550, "bounced"),  # the address was refused: a hard bounce
        ("failed", 553, "bounced"),
        ("failed", 554, "bounced"),
        ("failed", 421, "failed"),  # gave up after retrying a temporary failure
        ("failed", 451, "failed"),
        ("failed", None, "failed"),  # gave up after dropped connections, or a malformed template
        ("failed", 535, "failed"),  # the account's credentials were refused on every attempt, not the address
        ("failed", 530, "failed"),
        ("failed", 534, "failed"),
        ("template_error", None, "failed"),
        ("skipped", None, None),  # a suppressed or replied recipient keeps the status it has
        ("skipped", 550, None),
    ],
)
def test_a_settled_outcome_gives_the_recipient_status_the_dispatcher_writes(outcome, smtp_code, status):
    assert recipient_status(outcome, smtp_code) == status


def test_every_settled_outcome_has_a_status_or_leaves_it():
    for outcome in SETTLED_OUTCOMES:
        assert recipient_status(outcome) in {"contacted", "uncertain", "failed", None}


@pytest.mark.parametrize("outcome", ["retry", "bounced", "resolved_sent", ""])
def test_an_outcome_that_does_not_settle_a_recipient_is_refused_naming_the_valid_ones(outcome):
    with pytest.raises(ValueError, match="unknown settled outcome") as caught:
        recipient_status(outcome)
    assert "template_error" in str(caught.value)


@pytest.mark.parametrize(
    ("smtp_code", "bounce"),
    [(550, True), (599, True), (500, True), (535, False), (499, False), (600, False), (250, False), (None, False)],
)
def test_only_a_5xx_for_the_address_is_a_bounce(smtp_code, bounce):
    assert is_bounce(smtp_code) is bounce
