"""Whether Outbound is ready to send, from the database's answer and the dispatchers' heartbeats: pure.

`GET /ready` and `outbound status` both judge with `judge`: ready when the database answers and at least one
dispatcher is alive by the liveness rules (it beat within `GONE_AFTER_BEATS` of its own beat intervals).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.liveness import MAX_BEAT_SECONDS, State, state

DATABASE_UNREACHABLE = "database unreachable"


@dataclass(frozen=True)
class Heartbeat:
    """One dispatcher's heartbeat document (`dispatchers`), as read; fields it lacks are None."""

    owner: str
    host: str | None = None
    pid: int | None = None
    version: str | None = None
    started_at: datetime | None = None
    beat_at: datetime | None = None
    beat_seconds: float | None = None
    stopped_at: datetime | None = None
    leads_in_flight: int | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def interval(self) -> float:
        """Its own beat interval, or the longest any dispatcher uses when it recorded none."""
        if self.beat_seconds is not None and self.beat_seconds > 0:
            return self.beat_seconds
        return MAX_BEAT_SECONDS


@dataclass(frozen=True)
class DispatcherStatus:
    """A heartbeat judged at `now`: its state and how long ago it last beat."""

    heartbeat: Heartbeat
    state: State
    beat_age_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        """The fields `/ready` and `outbound status --json` show (times as ISO 8601)."""
        hb = self.heartbeat
        return {
            "id": hb.owner,
            "host": hb.host,
            "pid": hb.pid,
            "version": hb.version,
            "started_at": _iso(hb.started_at),
            "beat_at": _iso(hb.beat_at),
            "beat_age_seconds": self.beat_age_seconds,
            "beat_seconds": hb.beat_seconds,
            "leads_in_flight": hb.leads_in_flight,
            "last_error": hb.last_error,
            "last_error_at": _iso(hb.last_error_at),
            "stopped_at": _iso(hb.stopped_at),
            "state": self.state,
        }


@dataclass(frozen=True)
class Readiness:
    """The verdict: `reason` says why it is not ready (None when it is)."""

    database_ok: bool
    dispatchers: tuple[DispatcherStatus, ...]
    reason: str | None

    @property
    def ready(self) -> bool:
        """True when nothing stands in the way."""
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        """`{status, database, dispatchers, reason?}`: the body of `/ready`."""
        body: dict[str, Any] = {
            "status": "ready" if self.ready else "not ready",
            "database": "ok" if self.database_ok else "unreachable",
            "dispatchers": [d.to_json() for d in self.dispatchers],
        }
        if self.reason is not None:
            body["reason"] = self.reason
        return body


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def judge(heartbeats: list[Heartbeat] | None, now: datetime) -> Readiness:
    """Ready or not at `now`; `heartbeats` is None when the database did not answer.

    Dispatchers are listed most recent beat first.
    """
    if heartbeats is None:
        return Readiness(False, (), DATABASE_UNREACHABLE)
    statuses = tuple(
        DispatcherStatus(
            hb,
            state(hb.beat_at, hb.stopped_at, now, hb.interval),
            None if hb.beat_at is None else round((now - hb.beat_at).total_seconds(), 1),
        )
        for hb in sorted(heartbeats, key=lambda h: h.beat_at or datetime.min.replace(tzinfo=now.tzinfo), reverse=True)
    )
    if any(s.state == "alive" for s in statuses):
        return Readiness(True, statuses, None)
    last = max((hb.beat_at for hb in heartbeats if hb.beat_at is not None), default=None)
    reason = f"no dispatcher has beaten since {last.isoformat()}" if last else "no dispatcher has beaten yet"
    return Readiness(True, statuses, reason)
