"""`outbound status [--json]`: what `GET /ready` answers, from the command line.

Whether the database answers and, for each dispatcher that beat in the last two days, where it runs, its
version, when it started and last beat, the leads it works on, its last error and whether it is alive. Exits 1
when `/ready` would answer 503, so a health check can run it.
"""

from __future__ import annotations

import typer

from app.cli.common import JSON_OPTION, console, fmt_time, now_utc, print_json, run_db, settings_of
from app.domain.readiness import DispatcherStatus, Readiness
from app.store.dispatchers import readiness


def _dispatcher_lines(status: DispatcherStatus) -> list[str]:
    hb = status.heartbeat
    age = f" ({status.beat_age_seconds:g} s ago)" if status.beat_age_seconds is not None else ""
    stopped = f", stopped {fmt_time(hb.stopped_at)}" if hb.stopped_at else ""
    error = f"{hb.last_error} at {fmt_time(hb.last_error_at)}" if hb.last_error else "none"
    return [
        f"Dispatcher {hb.owner}: {status.state}",
        f"  host {hb.host or '-'}, pid {hb.pid if hb.pid is not None else '-'}, version {hb.version or '-'}",
        f"  started {fmt_time(hb.started_at)}, last beat {fmt_time(hb.beat_at)}{age}{stopped}",
        f"  leads in flight {hb.leads_in_flight if hb.leads_in_flight is not None else '-'}, last error: {error}",
    ]


def render(verdict: Readiness) -> list[str]:
    """The text `outbound status` prints (times in UTC)."""
    lines = [f"Database: {'reachable' if verdict.database_ok else 'unreachable'}"]
    if verdict.database_ok and not verdict.dispatchers:
        lines.append("Dispatchers: none has beaten in the last two days")
    for status in verdict.dispatchers:
        lines.extend(_dispatcher_lines(status))
    lines.append("Ready" if verdict.ready else f"Not ready: {verdict.reason}")
    return lines


def register(app: typer.Typer) -> None:
    """Add `status`."""

    @app.command("status")
    def status_command(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
        """Say whether the database answers and which dispatchers are alive; exit 1 when not ready.

        The same verdict as `GET /ready` of `outbound serve`: ready when the database answers and a dispatcher
        beat within 3 of its beat intervals.

        Example: outbound status --json
        """
        now = now_utc()
        verdict = run_db(settings_of(ctx), lambda db: readiness(db, now), read_only=True)
        if json_:
            print_json(verdict.to_json())
        else:
            for line in render(verdict):
                console.print(line, markup=False)
        if not verdict.ready:
            raise typer.Exit(1)
