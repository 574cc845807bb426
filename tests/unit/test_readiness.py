"""Whether Outbound is ready, from the database's answer and the heartbeats: pure tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.readiness import Heartbeat, judge

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def beat(owner: str, seconds_ago: float, *, every: float | None = 2.0, stopped: bool = False) -> Heartbeat:
    at = NOW - timedelta(seconds=seconds_ago)
    return Heartbeat(owner, beat_at=at, beat_seconds=every, stopped_at=at if stopped else None)


def test_a_database_that_does_not_answer_is_not_ready() -> None:
    verdict = judge(None, NOW)
    assert (verdict.ready, verdict.database_ok, verdict.reason) == (False, False, "database unreachable")
    assert verdict.to_json() == {
        "status": "not ready",
        "database": "unreachable",
        "dispatchers": [],
        "reason": "database unreachable",
    }


def test_one_alive_dispatcher_is_enough_and_the_most_recent_beat_comes_first() -> None:
    verdict = judge([beat("old", 60), beat("new", 1), beat("done", 0.5, stopped=True)], NOW)
    assert verdict.ready and verdict.reason is None
    assert [(d.heartbeat.owner, d.state) for d in verdict.dispatchers] == [
        ("done", "stopped"),
        ("new", "alive"),
        ("old", "gone"),
    ]


def test_without_an_alive_dispatcher_the_reason_names_the_last_beat() -> None:
    verdict = judge([beat("a", 30), beat("b", 9), beat("c", 0, stopped=True)], NOW)
    assert verdict.reason == f"no dispatcher has beaten since {NOW.isoformat()}"
    half_a_minute_ago = (NOW - timedelta(seconds=30)).isoformat()
    assert judge([beat("a", 30)], NOW).reason == f"no dispatcher has beaten since {half_a_minute_ago}"
    assert judge([], NOW).reason == "no dispatcher has beaten yet"


def test_a_heartbeat_without_an_interval_is_judged_by_the_longest_one() -> None:
    assert judge([beat("a", 14, every=None)], NOW).ready
    assert not judge([beat("a", 16, every=None)], NOW).ready
