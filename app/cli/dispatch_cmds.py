"""`run-dispatcher` (seed 001) and `update-lead-statuses`."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import typer
from rich.markup import escape

from app.cli.common import (
    JSON_OPTION,
    console,
    err_console,
    fail,
    fmt_time,
    print_json,
    print_table,
    run_db,
    settings_of,
)
from app.config import Settings
from app.dispatch.dispatcher import Dispatcher, DispatcherOptions, DispatcherStats, default_owner
from app.domain.health import HealthPolicy
from app.domain.outcomes import RetryPolicy
from app.domain.settlement import Outcome
from app.domain.templating import Renderer
from app.logging import configure_logging
from app.send.pipeline import Pipeline, PipelineConfig, utcnow
from app.send.preview import SEND, SKIP, WAIT, Preview, PreviewRow, dry_run
from app.store import schema
from app.store.arbiter import Arbiter
from app.store.catalog import Catalog
from app.store.client import Database
from app.store.documents import get_doc, id_filter
from app.store.statuses import rebuild_statuses
from app.transport.base import Sender
from app.transport.dryrun import DryRunSender
from app.transport.smtp import SmtpSender


def _split_ids(values: list[str] | None) -> frozenset[str] | None:
    if not values:
        return None
    ids = frozenset(part.strip() for value in values for part in value.split(",") if part.strip())
    return ids or None


async def _check_targets(db: Database, campaign_id: str | None, accounts: frozenset[str] | None) -> None:
    """Refuse unknown --campaign-id / --account-filter ids before anything runs."""
    if campaign_id is not None:
        await get_doc(db[schema.CAMPAIGNS], "campaign", campaign_id)
    for account_id in sorted(accounts or ()):
        await get_doc(db[schema.EMAIL_ACCOUNTS], "account", account_id)


def build_dispatcher(
    db: Database,
    settings: Settings,
    sender: Sender,
    options: DispatcherOptions,
    *,
    account_filter: frozenset[str] | None = None,
    owner: str | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> Dispatcher:
    """Wire a dispatcher with its send pipeline, arbiter, catalog and renderer from settings."""
    owner = owner or default_owner()
    catalog = Catalog(db)
    pipeline = Pipeline(
        db,
        # A send is MAIL, RCPT, DATA and maybe a connect, each bounded by the SMTP timeout.
        arbiter=Arbiter(db, owner=owner, hold_seconds=4 * settings.smtp_timeout),
        sender=sender,
        catalog=catalog,
        renderer=Renderer(),
        config=PipelineConfig(
            retry=RetryPolicy(
                base_seconds=settings.retry_base_seconds,
                cap_seconds=settings.retry_cap_seconds,
                max_attempts=settings.retry_max_attempts,
            ),
            lease_seconds=options.lease_seconds,
            send_timeout_seconds=settings.smtp_timeout,
            account_filter=account_filter,
            health=HealthPolicy(
                max_error_rate=settings.pause_error_rate,
                min_attempts=settings.pause_min_attempts,
                window=max(50, settings.pause_min_attempts),
            ),
        ),
    )
    return Dispatcher(db, pipeline, catalog, options, owner=owner, on_outcome=on_outcome)


async def run_until_signalled(dispatcher: Dispatcher) -> DispatcherStats:
    """Run the loop; SIGTERM or SIGINT stops claiming and drains in-flight work."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, dispatcher.stop)
    try:
        return await dispatcher.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


@dataclass(frozen=True)
class _DryRun:
    """What a dry run found: what a real run would do now, and the part of the schema it would create first."""

    database: str
    preview: Preview
    missing_collections: list[str]
    missing_indexes: list[schema.MissingIndex]


async def _dry_run(db: Database, options: DispatcherOptions, accounts: frozenset[str] | None, limit: int) -> _DryRun:
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
    )
    return _DryRun(db.name, found, missing_collections, missing_indexes)


def _schema_warning(
    database: str, collections: Collection[str], indexes: Collection[schema.MissingIndex]
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


def _print_dry_run(dry: _DryRun, as_json: bool) -> None:
    """The schema warning on stderr (stdout stays the preview alone, for --json), then the preview."""
    warning = _schema_warning(dry.database, dry.missing_collections, dry.missing_indexes)
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


def register(app: typer.Typer) -> None:
    """Add `run-dispatcher` and `update-lead-statuses`."""

    @app.command("run-dispatcher")
    def run_dispatcher(
        ctx: typer.Context,
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Readable DEBUG logs on the console."),
        dry_run: bool = typer.Option(
            False,
            "--dry-run",
            help="Show what a real run would do now (sends, skips, waits, pauses); send and change nothing, then exit.",
        ),
        campaign_id: str | None = typer.Option(None, "--campaign-id", help="Only this campaign."),
        batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Leads fetched per query."),
        limit: int = typer.Option(
            1000, "--limit", min=1, help="With --dry-run: show at most N due leads per campaign (oldest due first)."
        ),
        account_filter: list[str] | None = typer.Option(
            None, "--account-filter", help="Only send from these account ids (repeat or comma-separate)."
        ),
        once: bool = typer.Option(False, "--once", help="Process everything due now, then exit (cron, tests)."),
        concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Leads processed at once."),
        poll_interval: float | None = typer.Option(
            None, "--poll-interval", min=0.01, help="Longest sleep between scans, seconds."
        ),
        json_: bool = JSON_OPTION,
    ) -> None:
        """Start email processing: send every due step of every active campaign, until SIGTERM/SIGINT.

        Example: outbound run-dispatcher --verbose --campaign-id 665f1c... --batch-size 50
        """
        settings = settings_of(ctx)
        if verbose:
            configure_logging("DEBUG", "console")
        accounts = _split_ids(account_filter)
        options = DispatcherOptions(
            campaign_id=campaign_id,
            batch_size=batch_size or settings.batch_size,
            concurrency=concurrency or settings.concurrency,
            poll_interval=poll_interval or settings.poll_interval,
            lease_seconds=settings.lease_seconds,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            once=once,
        )

        async def work(db: Database) -> Any:
            await _check_targets(db, campaign_id, accounts)
            if dry_run:
                return await _dry_run(db, options, accounts, limit)
            smtp = SmtpSender(
                timeout=settings.smtp_timeout,
                default_starttls=settings.smtp_starttls,
                local_hostname=settings.helo_name,
            )
            try:
                dispatcher = build_dispatcher(db, settings, smtp, options, account_filter=accounts)
                return await run_until_signalled(dispatcher)
            finally:
                await smtp.close()

        # A dry run must leave the database as it found it, so the schema is checked rather than ensured.
        result = run_db(settings, work, read_only=dry_run)
        if dry_run:
            _print_dry_run(result, json_)
            return
        stats: DispatcherStats = result
        summary = {"claimed": stats.claimed, "outcomes": dict(stats.outcomes), "db_errors": stats.db_errors}
        if json_:
            print_json(summary)
        else:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items())) or "nothing"
            console.print(f"Dispatcher stopped: {stats.claimed} leads processed ({outcomes}).")

    @app.command("update-lead-statuses")
    def update_lead_statuses(
        ctx: typer.Context,
        campaign_id: str | None = typer.Option(None, "--campaign-id", help="Only this campaign's leads."),
        json_: bool = JSON_OPTION,
    ) -> None:
        """Rebuild recipient statuses and processed-recipient records from the `activities` log.

        Leads held by a running dispatcher are skipped (run again later). Statuses set by people (replied,
        unsubscribed) are kept.

        Example: outbound update-lead-statuses --campaign-id 665f1c...
        """
        settings = settings_of(ctx)

        async def work(db: Database) -> dict[str, int]:
            flt: dict[str, Any] = {}
            if campaign_id is not None:
                campaign = await get_doc(db[schema.CAMPAIGNS], "campaign", campaign_id)
                flt = id_filter(str(campaign["_id"]), "campaign_id")
            return await rebuild_statuses(db, flt)

        counts = run_db(settings, work)
        if json_:
            print_json(counts)
        else:
            console.print(
                f"Examined {counts['examined']} leads: {counts['changed']} updated, "
                f"{counts['unchanged']} already right, {counts['leased']} skipped (held by a dispatcher), "
                f"{counts['invalid']} malformed."
            )
        if counts["invalid"]:
            fail(f"{counts['invalid']} malformed leads were skipped; see the log for which and why")
