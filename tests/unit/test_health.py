"""When a campaign's recent failures should pause it."""

from __future__ import annotations

import pytest

from app.domain.health import HealthPolicy, pause_reason

POLICY = HealthPolicy(max_error_rate=0.5, min_attempts=10, window=20)


@pytest.mark.parametrize(
    ("kinds", "paused"),
    [
        (["failed"] * 9, False),  # too few attempts to judge
        (["failed"] * 10, True),
        (["failed"] * 5 + ["sent"] * 5, True),  # exactly at the threshold
        (["failed"] * 4 + ["sent"] * 6, False),
        (["retry", "template_error", "failed"] * 4, True),
        (["sent"] * 20 + ["failed"] * 20, False),  # old failures fall outside the window (newest first)
        (["skipped"] * 30 + ["failed"] * 5, False),  # skips are not attempts
        (["uncertain"] * 10, False),
    ],
)
def test_pause_reason_follows_the_recent_failure_rate(kinds: list[str], paused: bool) -> None:
    reason = pause_reason(kinds, POLICY)
    assert (reason is not None) == paused
    if reason:
        assert "attempts failed" in reason and "outbound campaign resume <campaign_id>" in reason
