"""The send ledger's state table: every write is a move the table allows, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.domain.ledger_states import FAILED, RETRY_WAIT, SENDING, SENT, UNCERTAIN, IllegalMove, move

NOW = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("current", "target", "extra", "expected"),
    [
        pytest.param(SENDING, SENT, {}, {"state": "sent", "updated_at": NOW, "sent_at": NOW}, id="sending-sent"),
        pytest.param(
            SENDING,
            RETRY_WAIT,
            {"error": "4.7.1 later", "smtp_code": 451},
            {"state": "retry_wait", "updated_at": NOW, "last_error": "4.7.1 later", "smtp_code": 451},
            id="sending-retry-wait",
        ),
        pytest.param(
            SENDING,
            FAILED,
            {"error": "5.1.1 no such user", "smtp_code": 550},
            {"state": "failed", "updated_at": NOW, "last_error": "5.1.1 no such user", "smtp_code": 550},
            id="sending-failed",
        ),
        pytest.param(
            SENDING,
            UNCERTAIN,
            {"error": "dropped during DATA"},
            {"state": "uncertain", "updated_at": NOW, "last_error": "dropped during DATA"},
            id="sending-uncertain",
        ),
        pytest.param(RETRY_WAIT, SENDING, {}, {"state": "sending", "updated_at": NOW}, id="retry-wait-sending"),
        pytest.param(UNCERTAIN, SENT, {}, {"state": "sent", "updated_at": NOW, "sent_at": NOW}, id="resolved-as-sent"),
        pytest.param(UNCERTAIN, RETRY_WAIT, {}, {"state": "retry_wait", "updated_at": NOW}, id="resolved-as-not-sent"),
    ],
)
def test_allowed_moves_set_the_state_and_only_a_send_sets_sent_at(
    current: str, target: str, extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert move(current, target, NOW, **extra) == expected


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        pytest.param(SENT, SENDING, "a send in state 'sent' cannot become 'sending' (allowed: nothing)", id="sent"),
        pytest.param(
            FAILED, RETRY_WAIT, "a send in state 'failed' cannot become 'retry_wait' (allowed: nothing)", id="failed"
        ),
        pytest.param(
            RETRY_WAIT,
            SENT,
            "a send in state 'retry_wait' cannot become 'sent' (allowed: sending)",
            id="retry-wait-skips-sending",
        ),
        pytest.param(
            UNCERTAIN,
            FAILED,
            "a send in state 'uncertain' cannot become 'failed' (allowed: retry_wait, sent)",
            id="uncertain-failed",
        ),
        pytest.param(
            SENDING,
            SENDING,
            "a send in state 'sending' cannot become 'sending' (allowed: failed, retry_wait, sent, uncertain)",
            id="sending-twice",
        ),
        pytest.param(
            "queued", SENDING, "a send in state 'queued' cannot become 'sending' (allowed: nothing)", id="unknown"
        ),
    ],
)
def test_illegal_moves_raise_saying_what_is_allowed(current: str, target: str, message: str) -> None:
    with pytest.raises(IllegalMove) as caught:
        move(current, target, NOW, error="x")
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)
