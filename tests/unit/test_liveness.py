"""When a dispatcher counts as gone, and how often it beats: pure tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.liveness import beat_seconds, is_gone, reclaim_seconds, state

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("beat_at", "stopped_at", "beat", "gone"),
    [
        (ago(0), None, 2.0, False),  # just beat
        (ago(5.9), None, 2.0, False),  # missed two beats: a slow database, not a death
        (ago(6.0), None, 2.0, False),  # exactly three intervals: still given the benefit of the doubt
        (ago(6.1), None, 2.0, True),  # missed three beats
        (ago(6.1), None, 5.0, False),  # judged by its own (longer) interval
        (ago(0), ago(0), 2.0, True),  # stopped cleanly: gone at once
        (None, None, 2.0, False),  # never beat: nothing says it died
        (None, ago(1), 2.0, True),
        (NOW + timedelta(seconds=3), None, 2.0, False),  # its clock runs ahead of ours
    ],
)
def test_a_dispatcher_is_gone_when_it_stopped_or_missed_three_beats(
    beat_at: datetime | None, stopped_at: datetime | None, beat: float, gone: bool
) -> None:
    assert is_gone(beat_at, stopped_at, NOW, beat) is gone


@pytest.mark.parametrize(
    ("lease", "beat", "reclaim"),
    [
        (120.0, 5.0, 20.0),  # the default lease: at most 5 s between beats
        (10.0, 2.0, 8.0),  # a fifth of the lease
        (2.0, 0.5, 2.0),  # never faster than twice a second
        (0.1, 0.5, 2.0),
    ],
)
def test_beats_come_a_fifth_of_a_lease_apart_and_a_crash_is_reclaimed_within_a_lease(
    lease: float, beat: float, reclaim: float
) -> None:
    assert beat_seconds(lease) == beat
    assert reclaim_seconds(beat) == reclaim
    assert reclaim <= max(lease, 2.0)


@pytest.mark.parametrize("lease", [0.0, -1.0, float("nan"), float("inf")])
def test_a_lease_that_is_not_a_positive_number_is_refused(lease: float) -> None:
    with pytest.raises(ValueError, match="lease_seconds"):
        beat_seconds(lease)


@pytest.mark.parametrize(
    ("beat_at", "stopped_at", "expected"),
    [
        (ago(1), None, "alive"),
        (ago(6.0), None, "alive"),
        (ago(6.1), None, "gone"),
        (None, None, "gone"),  # never beat: nothing says it runs
        (ago(0), ago(0), "stopped"),
    ],
)
def test_the_state_an_operator_is_shown(beat_at: datetime | None, stopped_at: datetime | None, expected: str) -> None:
    assert state(beat_at, stopped_at, NOW, 2.0) == expected
