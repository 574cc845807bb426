"""`run-dispatcher --dry-run [--at T]`: read what a real run would do now (or at T), then print it with the schema
it would create and the campaigns whose sending window is closed then.

The preview is read through the dry-run sender and writes nothing; the schema is checked, never ensured.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.markup import escape

from app.cli.common import console, err_console, fmt_time, print_json, print_table
from app.dispatch.dispatcher import DispatcherOptions
from app.domain.models import Campaign
from app.domain.sending_windows import describe_opening, next_open
from app.domain.templating import Renderer
from app.jobs.preview import runs_due
from app.send.compose import MAILTO_ONLY, UnsubscribeLinks
from app.send.pipeline import utcnow
from app.send.preview import SEND, SKIP, WAIT, Preview, PreviewRow, dry_run
from app.store import schema_checks
from app.store.catalog import Catalog
from app.store.client import Database
from app.transport.dryrun import DryRunSender


@dataclass(frozen=True)
class DryRunFindings:
    """What a dry run found: what a real run would do now, and the part of the schema it would create first."""

    database: str
    preview: Preview
    missing_collections: list[str]
    missing_indexes: list[schema_checks.MissingIndex]
    at: datetime | None = None  # --at: the moment previewed (None: now)
    closed_windows: list[str] = field(default_factory=list)  # per campaign whose window is closed then: when it opens
    job_runs: list[str] = field(default_factory=list)  # the job runs that would start then (`app/jobs/preview.py`)


def parse_at(text: str) -> datetime:
    """`--at`: an ISO time with its offset or Z; raise ValueError saying what to pass (a naive time is refused:
    which zone it meant cannot be guessed)."""
    example = "e.g. 2025-03-08T15:00:00Z or 2025-03-10T09:30:00-04:00"
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--at {text!r} is not an ISO time: give a date and time with Z or an offset, {example}"
        ) from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"--at {text!r} has no time zone: add Z (UTC) or an offset such as -04:00, {example}")
    return at


def closed_windows(campaigns: list[Campaign], now: datetime) -> list[str]:
    """For each campaign whose sending window is closed at `now` (in the campaign's zone): when it opens."""
    notes = []
    for campaign in campaigns:
        window = campaign.settings.schedule
        if window is None:
            continue
        opens = next_open(now, window, window.timezone)
        if opens > now:
            own = " (recipients with their own time zone follow theirs)" if window.recipient_timezone else ""
            local = now.astimezone(window.timezone)
            notes.append(
                f"campaign {campaign.name}: the sending window is closed at {local:%a %Y-%m-%d %H:%M} "
                f"{local.tzname()}; it opens {describe_opening(opens, window.timezone)}{own}"
            )
    return notes


async def read_dry_run(
    db: Database,
    options: DispatcherOptions,
    accounts: frozenset[str] | None,
    limit: int,
    unsubscribe: UnsubscribeLinks = MAILTO_ONLY,
    at: datetime | None = None,
) -> DryRunFindings:
    """Preview what a real run would do now (or `at`), through the dry-run sender; reads only (the schema is
    checked)."""
    missing_collections = await schema_checks.missing_collections(db)
    missing_indexes = await schema_checks.missing_indexes(db)
    now = utcnow() if at is None else at.astimezone(UTC)
    catalog = Catalog(db)
    found = await dry_run(
        db,
        catalog,
        Renderer(),
        DryRunSender(),
        now=now,
        campaign_id=options.campaign_id,
        account_filter=accounts,
        limit=limit,
        batch_size=options.batch_size,
        unsubscribe=unsubscribe,
    )
    windows = closed_windows(await catalog.active_campaigns(options.campaign_id), now)
    # A dispatcher runs jobs only when it is not restricted to one campaign.
    runs = [] if options.campaign_id else [run.describe() for run in await runs_due(db, now)]
    return DryRunFindings(db.name, found, missing_collections, missing_indexes, at, windows, runs)


def schema_warning(
    database: str, collections: Collection[str], indexes: Collection[schema_checks.MissingIndex]
) -> str | None:
    """The dry run's warning about missing collections and indexes, or None when the schema is complete."""
    if not collections and not indexes:
        return None
    lines = [f"database {database} lacks collections or indexes the dispatcher relies on (a dry run creates none):"]
    if collections:
        lines.append(f"  missing collections (read as empty here): {', '.join(collections)}")
    # A missing collection lacks every index of its own: naming the collection says so.
    lines.extend(f"  missing index {index}" for index in indexes if index.collection not in collections)
    lines.append(
        "`outbound run-dispatcher` without --dry-run creates them before it sends, "
        "as does any command that writes (import-leads, demo seed)."
    )
    return "\n".join(lines)


def print_dry_run(dry: DryRunFindings, as_json: bool) -> None:
    """The schema warning on stderr (stdout stays the preview alone, for --json), then the preview."""
    warning = schema_warning(dry.database, dry.missing_collections, dry.missing_indexes)
    if warning is not None:
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    _print_preview(dry.preview, as_json, dry.at, [*dry.closed_windows, *dry.job_runs])


def _cells(r: PreviewRow) -> tuple[Any, ...]:
    return (
        r.campaign,
        r.lead_id,
        r.step_order,
        r.action,
        r.email,
        r.account,
        r.subject,
        fmt_time(r.send_at),
        r.problem,
    )


def _print_preview(found: Preview, as_json: bool, at: datetime | None, windows: list[str]) -> None:
    """The rows (a table, or a JSON list), then the summary, the closed sending windows, the job runs that would
    start and what was left out (on stderr with --json)."""
    when = "now" if at is None else f"at {at.isoformat()}"
    if as_json:
        print_json([row.__dict__ for row in found.rows])
    else:
        print_table(
            f"Dry run: {found.count(SEND)} emails would be sent {when} (nothing was sent or changed)",
            ["campaign", "lead", "step", "action", "to", "from", "subject", "at (UTC)", "reason"],
            [_cells(r) for r in found.rows],
        )
    notes = [
        f"Would be sent {when}: {found.count(SEND)}; skipped: {found.count(SKIP)}; waiting: {found.count(WAIT)}; "
        f"campaigns that would pause: {len(found.paused)}.",
        *(f"campaign {name} would pause: {reason}" for name, reason in found.paused.items()),
        *windows,
        *(
            f"campaign {name}: showing {shown} of {due} due leads (raise --limit to see more)"
            for name, shown, due in found.capped
        ),
    ]
    out = err_console if as_json else console
    for note in notes:
        out.print(escape(note))
