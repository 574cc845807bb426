"""`run-dispatcher` (seed 001) and `update-lead-statuses`.

The run wiring lives in `dispatcher_wiring.py`, the dry run's reading and printing in `dispatch_dry_run.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import typer

from app.cli.common import JSON_OPTION, console, fail, print_json, run_db, settings_of
from app.cli.dispatch_dry_run import DryRunFindings, parse_at, print_dry_run, read_dry_run
from app.cli.dispatcher_wiring import build_dispatcher as build_dispatcher
from app.cli.dispatcher_wiring import dispatcher_options, run_over_smtp, unsubscribe_links
from app.cli.dispatcher_wiring import run_until_signalled as run_until_signalled
from app.cli.inbox_cmds import build_sync, print_reports, run_inbox_until
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions, DispatcherStats
from app.inbound.sync_values import AccountReport
from app.logging import configure_logging, get_logger
from app.metrics import gauges as metric_gauges
from app.metrics import registry as metrics
from app.metrics.server import DEFAULT_HOST as METRICS_HOST
from app.metrics.server import MetricsPortError, serving
from app.store import schema
from app.store.client import Database
from app.store.documents import get_doc, id_filter
from app.store.statuses import rebuild_statuses


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


def _dispatch(
    settings: Settings,
    options: DispatcherOptions,
    accounts: frozenset[str] | None,
    inbox: bool,
    gauges: bool = False,
) -> DispatcherStats:
    """Check the targets, then send until signalled, reading the mailboxes alongside (unless `inbox` is off).

    With --once the mailboxes are read once first, so that answers already there stop their leads before
    anything is sent; otherwise the inbox sync runs in the background until the dispatcher stops. With `gauges`
    (a metrics endpoint is served), the database-derived gauges are refreshed alongside.
    """

    async def work(db: Database) -> DispatcherStats:
        await _check_targets(db, options.campaign_id, accounts)
        if not inbox:
            return await run_over_smtp(db, settings, options, accounts)
        sync = build_sync(db, settings)
        if options.once:
            try:
                await sync.run_once()
            finally:
                sync.close()
            return await run_over_smtp(db, settings, options, accounts)
        stop = asyncio.Event()
        reading = asyncio.create_task(run_inbox_until(sync, stop), name="inbox-sync")
        try:
            return await run_over_smtp(db, settings, options, accounts)
        finally:
            stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reading, timeout=settings.shutdown_grace_seconds)

    async def observed(db: Database) -> DispatcherStats:
        async with metric_gauges.refreshed(db, metrics.current().gauges, gauges):
            return await work(db)

    return run_db(settings, observed)


@contextlib.contextmanager
def _metrics_endpoint(host: str, port: int | None) -> Iterator[None]:
    """Serve the process's metrics on host:port while the block runs (port None: not at all); a port in use
    stops the command before anything runs."""
    if port is None:
        yield
        return
    try:
        with serving(metrics.current().registry, host, port) as bound:
            get_logger().info("metrics.serving", host=host, port=bound)
            yield
    except MetricsPortError as exc:
        fail(str(exc))


def _dry_run_findings(
    settings: Settings,
    options: DispatcherOptions,
    accounts: frozenset[str] | None,
    limit: int,
    inbox: bool,
    at: datetime | None = None,
) -> tuple[DryRunFindings, list[AccountReport] | None]:
    """Check the targets, then read what a real run would do now or `at` (and what the new inbound messages would
    do)."""

    async def work(db: Database) -> tuple[DryRunFindings, list[AccountReport] | None]:
        await _check_targets(db, options.campaign_id, accounts)
        findings = await read_dry_run(db, options, accounts, limit, unsubscribe_links(settings), at)
        if not inbox:
            return findings, None
        sync = build_sync(db, settings, dry_run=True)
        try:
            return findings, await sync.run_once()
        finally:
            sync.close()

    # A dry run must leave the database as it found it, so the schema is checked rather than ensured.
    return run_db(settings, work, read_only=True)


def _moment(at: str | None, dry_run: bool) -> datetime | None:
    """`--at` read, or the message that says what to pass (only a dry run looks at another moment)."""
    if at is None:
        return None
    if not dry_run:
        fail("--at goes with --dry-run: a real run sends now (try run-dispatcher --dry-run --at ...)")
    try:
        return parse_at(at)
    except ValueError as exc:
        fail(str(exc))


def _print_stats(stats: DispatcherStats, as_json: bool) -> None:
    summary = {"claimed": stats.claimed, "outcomes": dict(stats.outcomes), "db_errors": stats.db_errors}
    if as_json:
        print_json(summary)
    else:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items())) or "nothing"
        console.print(f"Dispatcher stopped: {stats.claimed} leads processed ({outcomes}).")


async def _rebuild(db: Database, campaign_id: str | None) -> dict[str, int]:
    """Rebuild statuses of every lead, or of the campaign's (NotFound when it does not exist)."""
    flt: dict[str, Any] = {}
    if campaign_id is not None:
        campaign = await get_doc(db[schema.CAMPAIGNS], "campaign", campaign_id)
        flt = id_filter(str(campaign["_id"]), "campaign_id")
    return await rebuild_statuses(db, flt)


def _print_counts(counts: dict[str, int], as_json: bool) -> None:
    if as_json:
        print_json(counts)
    else:
        console.print(
            f"Examined {counts['examined']} leads: {counts['changed']} updated, "
            f"{counts['unchanged']} already right, {counts['leased']} skipped (held by a dispatcher), "
            f"{counts['invalid']} malformed."
        )


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
        at: str | None = typer.Option(
            None,
            "--at",
            help="With --dry-run: what would be sent at this moment instead of now, as an ISO time with Z or an "
            "offset (e.g. 2025-03-10T09:30:00-04:00).",
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
        no_inbox: bool = typer.Option(
            False, "--no-inbox", help="Do not read the accounts' mailboxes (replies, bounces, unsubscribes)."
        ),
        concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Leads processed at once."),
        poll_interval: float | None = typer.Option(
            None, "--poll-interval", min=0.01, help="Longest sleep between scans, seconds."
        ),
        metrics_port: int | None = typer.Option(
            None,
            "--metrics-port",
            min=1,
            max=65535,
            help="Serve Prometheus metrics on this port (GET /metrics); a port in use is refused.",
        ),
        metrics_host: str = typer.Option(
            METRICS_HOST, "--metrics-host", help="Address the metrics endpoint listens on (keep it loopback)."
        ),
        json_: bool = JSON_OPTION,
    ) -> None:
        """Start email processing: send every due step of every active campaign, until SIGTERM/SIGINT.

        The accounts' mailboxes (those with imap_host) are read every OUTBOUND_INBOX_POLL_SECONDS alongside, so
        replies, bounces and unsubscribes stop their leads (--no-inbox: not). --dry-run also classifies the new
        inbound messages and says what they would do, changing nothing.

        Example: outbound run-dispatcher --verbose --campaign-id 665f1c... --batch-size 50

        Example: outbound run-dispatcher --dry-run --at 2025-03-10T09:30:00-04:00

        Example: outbound run-dispatcher --metrics-port 9105
        """
        settings = settings_of(ctx)
        if verbose:
            configure_logging("DEBUG", "console")
        moment = _moment(at, dry_run)
        accounts = _split_ids(account_filter)
        options = dispatcher_options(
            settings,
            campaign_id=campaign_id,
            batch_size=batch_size,
            concurrency=concurrency,
            poll_interval=poll_interval,
            once=once,
        )
        if dry_run:
            findings, inbox = _dry_run_findings(settings, options, accounts, limit, not no_inbox, moment)
            print_dry_run(findings, json_)
            if inbox:
                print_reports(inbox, False, True, to_stderr=json_)  # stdout stays the preview alone with --json
            return
        with _metrics_endpoint(metrics_host, metrics_port):
            stats = _dispatch(settings, options, accounts, not no_inbox, gauges=metrics_port is not None)
        _print_stats(stats, json_)

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
            return await _rebuild(db, campaign_id)

        counts = run_db(settings, work)
        _print_counts(counts, json_)
        if counts["invalid"]:
            fail(f"{counts['invalid']} malformed leads were skipped; see the log for which and why")
