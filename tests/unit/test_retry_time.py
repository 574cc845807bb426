"""When a waiting lead should look again at an account held by an open reservation: pure tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.limits import AccountLimits, free_at, held_window_end, unsent_recheck

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 15, tzinfo=UTC)
HOLD = NOW + timedelta(seconds=120.6)  # reserved at NOW with a 0.6 s wait and a 2-minute crash hold


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("next_available_at", "reserved_wait_end", "now", "expected"),
    [
        # No reservation holds the window: its end is its end.
        (HOLD, None, at(0.1), HOLD),
        (None, None, at(0.1), None),
        # A live holder's window: a margin after reservation + wait, not the crash hold.
        (HOLD, at(0.6), at(0.1), at(1.6)),
        # The send runs long: look again a margin from now, never later than the hold.
        (HOLD, at(0.6), at(30), at(31)),
        (HOLD, at(0.6), at(120), HOLD),
        # A long wait with a short hold: the hold is the later bound.
        (at(600), at(599), at(1), at(600)),
    ],
)
def test_a_window_held_by_a_reservation_ends_a_margin_after_its_wait(
    next_available_at: datetime | None, reserved_wait_end: datetime | None, now: datetime, expected: datetime | None
) -> None:
    assert held_window_end(next_available_at, reserved_wait_end, now) == expected


LIMITED = AccountLimits(max_daily_sends=3, campaign_daily_limit=2)


@pytest.mark.parametrize(
    ("sent", "campaign_sent", "unsent", "recheck_at", "expected"),
    [
        (1, 1, (0, 0), at(20), NOW),  # room left: now
        (3, 1, (0, 0), at(20), MIDNIGHT),  # full with settled sends: tomorrow
        (3, 1, (1, 0), at(20), at(20)),  # full only because of an unsent reservation: when it must be settled
        (3, 1, (1, 0), None, MIDNIGHT),  # nobody reclaims: tomorrow, as before
        (2, 2, (1, 0), at(20), MIDNIGHT),  # the campaign's limit is reached by settled sends
        (2, 2, (2, 1), at(20), at(20)),  # ... or only thanks to one of its own unsent reservations
        (3, 1, (1, 0), MIDNIGHT + timedelta(hours=1), MIDNIGHT),  # never later than tomorrow
    ],
)
def test_a_limit_filled_by_unsent_reservations_is_looked_at_again_when_they_must_be_settled(
    sent: int, campaign_sent: int, unsent: tuple[int, int], recheck_at: datetime | None, expected: datetime
) -> None:
    assert free_at(LIMITED, sent, campaign_sent, None, NOW, unsent=unsent, recheck_at=recheck_at) == expected


@pytest.mark.parametrize(
    ("since", "now", "expected"),
    [
        (NOW, at(1), at(20)),  # made now: reclaimed within 20 s if its holder died
        (at(-30), NOW, at(1)),  # overdue: a second from now, not in a loop
    ],
)
def test_unsent_reservations_are_rechecked_once_a_reclaim_must_have_run(
    since: datetime, now: datetime, expected: datetime
) -> None:
    assert unsent_recheck(since, now) == expected
