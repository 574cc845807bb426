"""The run wiring of `run-dispatcher`: options from settings, a dispatcher with its pipeline, SMTP, and signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

from app.config import Settings
from app.credentials import credentials_for
from app.dispatch.dispatcher import Dispatcher, DispatcherOptions, DispatcherStats, default_owner
from app.domain.health import HealthPolicy
from app.domain.outcomes import RetryPolicy
from app.domain.settlement import Outcome
from app.domain.templating import Renderer
from app.jobs.loop import job_runs
from app.report.loop import daily_reports
from app.send.compose import UnsubscribeLinks
from app.send.pipeline import Pipeline, PipelineConfig
from app.store.arbiter import Arbiter
from app.store.catalog import Catalog
from app.store.client import Database
from app.store.recent_counts import RECENT_SECONDS
from app.systemd import Notifier
from app.transport.base import Sender
from app.transport.smtp import SmtpSender


def dispatcher_options(
    settings: Settings,
    *,
    campaign_id: str | None,
    batch_size: int | None,
    concurrency: int | None,
    poll_interval: float | None,
    once: bool,
) -> DispatcherOptions:
    """The loop's options: the command's, where given, else the settings'."""
    return DispatcherOptions(
        campaign_id=campaign_id,
        batch_size=batch_size or settings.batch_size,
        concurrency=concurrency or settings.concurrency,
        poll_interval=poll_interval or settings.poll_interval,
        lease_seconds=settings.lease_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        once=once,
    )


def unsubscribe_links(settings: Settings) -> UnsubscribeLinks:
    """Where List-Unsubscribe points besides the sending account: OUTBOUND_PUBLIC_URL, signed with
    OUTBOUND_SECRET_KEY (the dry run's messages carry the same)."""
    return UnsubscribeLinks(public_url=settings.public_url, secret_key=settings.secret_key)


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
        arbiter=Arbiter(
            db,
            owner=owner,
            hold_seconds=4 * settings.smtp_timeout,
            marks_in_flight=True,
            plan_seconds=RECENT_SECONDS,
        ),
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
            unsubscribe=unsubscribe_links(settings),
            default_domain_limit=settings.default_domain_limit,
            dns_servers=settings.dns_servers,
        ),
    )
    return Dispatcher(db, pipeline, catalog, options, owner=owner, on_outcome=on_outcome)


async def run_until_signalled(dispatcher: Dispatcher) -> DispatcherStats:
    """Run the loop; SIGTERM or SIGINT stops claiming and drains in-flight work.

    Under systemd (`Type=notify`) it says READY=1 after the first heartbeat, pings the watchdog with a status
    line from the event loop, and says STOPPING=1 when the signal comes.
    """
    loop = asyncio.get_running_loop()
    notifier = Notifier()

    def started() -> None:
        notifier.ready(f"dispatching as {dispatcher.owner}")

    def stop() -> None:
        grace = dispatcher.options.shutdown_grace_seconds
        notifier.stopping(f"stopping: finishing in-flight leads (up to {grace:g} s)")
        dispatcher.stop()

    dispatcher.on_started = started
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    watchdog = asyncio.create_task(notifier.keep_alive(lambda: _status(dispatcher)), name="watchdog")
    try:
        return await dispatcher.run()
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _status(dispatcher: Dispatcher) -> str:
    """The line `systemctl status` shows for a running dispatcher."""
    stats = dispatcher.stats
    return (
        f"dispatching: {stats.claimed} leads processed, {stats.outcomes['sent']} sent, "
        f"{stats.db_errors} database errors"
    )


async def run_over_smtp(
    db: Database, settings: Settings, options: DispatcherOptions, accounts: frozenset[str] | None
) -> DispatcherStats:
    """Send over SMTP until signalled (or, with --once, until nothing is due); the connections are closed after.

    The daily report (OUTBOUND_REPORT_TO) is checked beside the loop, through the same SMTP connections, and
    due jobs are run (with --once: before the drain, so their recipients are sent by it).
    """
    smtp = SmtpSender(
        timeout=settings.smtp_timeout,
        default_starttls=settings.smtp_starttls,
        local_hostname=settings.helo_name,
        credentials=credentials_for(settings),
    )
    try:
        dispatcher = build_dispatcher(db, settings, smtp, options, account_filter=accounts)
        # Jobs run beside the sequences, unless the run is narrowed to one campaign.
        jobs = job_runs(
            db,
            owner=dispatcher.owner,
            once=options.once,
            enabled=options.campaign_id is None,
            poll_interval=options.poll_interval,
            lease_seconds=options.lease_seconds,
            on_leads=dispatcher.wake,
            retention_days=settings.job_retention_days,
        )
        async with daily_reports(db, settings, smtp), jobs:
            return await run_until_signalled(dispatcher)
    finally:
        await smtp.close()
