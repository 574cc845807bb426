"""`run-dispatcher --dry-run`: read what a real run would do now, then print it with the schema it would create.

The preview is read through the dry-run sender and writes nothing; the schema is checked, never ensured.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from rich.markup import escape

from app.cli.common import console, err_console, fmt_time, print_json, print_table
from app.dispatch.dispatcher import DispatcherOptions
from app.domain.templating import Renderer
from app.send.compose import MAILTO_ONLY, UnsubscribeLinks
from app.send.pipeline import utcnow
from app.send.preview import SEND, SKIP, WAIT, Preview, PreviewRow, dry_run
from app.store import schema
from app.store.catalog import Catalog
from app.store.client import Database
from app.transport.dryrun import DryRunSender


@dataclass(frozen=True)
class DryRunFindings:
    """What a dry run found: what a real run would do now, and the part of the schema it would create first."""

    database: str
    preview: Preview
    missing_collections: list[str]
    missing_indexes: list[schema.MissingIndex]


async def read_dry_run(
    db: Database,
    options: DispatcherOptions,
    accounts: frozenset[str] | None,
    limit: int,
    unsubscribe: UnsubscribeLinks = MAILTO_ONLY,
) -> DryRunFindings:
    """Preview what a real run would do now, through the dry-run sender; reads only (the schema is checked)."""
    missing_collections = await schema.missing_collections(db)
    missing_indexes = await schema.missing_indexes(db)
    found = await dry_run(
        db,
        Catalog(db),
        Renderer(),
        DryRunSender(),
        now=utcnow(),
        campaign_id=options.campaign_id,
        account_filter=accounts,
        limit=limit,
        batch_size=options.batch_size,
        unsubscribe=unsubscribe,
    )
    return DryRunFindings(db.name, found, missing_collections, missing_indexes)


def schema_warning(database: str, collections: Collection[str], indexes: Collection[schema.MissingIndex]) -> str | None:
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
    _print_preview(dry.preview, as_json)


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


def _print_preview(found: Preview, as_json: bool) -> None:
    """The rows (a table, or a JSON list), then the summary and what was left out (on stderr with --json)."""
    if as_json:
        print_json([row.__dict__ for row in found.rows])
    else:
        print_table(
            f"Dry run: {found.count(SEND)} emails would be sent now (nothing was sent or changed)",
            ["campaign", "lead", "step", "action", "to", "from", "subject", "at (UTC)", "reason"],
            [_cells(r) for r in found.rows],
        )
    notes = [
        f"Would be sent now: {found.count(SEND)}; skipped: {found.count(SKIP)}; waiting: {found.count(WAIT)}; "
        f"campaigns that would pause: {len(found.paused)}.",
        *(f"campaign {name} would pause: {reason}" for name, reason in found.paused.items()),
        *(
            f"campaign {name}: showing {shown} of {due} due leads (raise --limit to see more)"
            for name, shown, due in found.capped
        ),
    ]
    out = err_console if as_json else console
    for note in notes:
        out.print(escape(note))
