"""The daily report's background task beside the dispatcher: a check at most once a minute, a send once a day.

Every dispatcher runs the task; the `report_runs` claim (app/store/daily_report.py) lets exactly one of them
send each day's report. Once this process knows a day is done it stops asking the database until the next day.
Errors are logged and never end the dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from typing import Any

from pymongo.errors import PyMongoError

from app.config import Settings
from app.domain.daily_report import report_day, report_due
from app.logging import get_logger
from app.report.sending import ReportError, build, deliver, report_account, send_timeout
from app.store import daily_report as store
from app.store.client import Database
from app.transport.base import Sender

CHECK_SECONDS = 60.0
LEASE_MARGIN_SECONDS = 60.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def report_owner() -> str:
    """Who holds a claim, as `report_runs.owner` shows it: host, process and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class ReportLoop:
    """Sends the daily report when it is due and nobody else has; see `check`."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        sender: Sender,
        *,
        owner: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self.db = db
        self.settings = settings
        self.sender = sender
        self.owner = owner or report_owner()
        self.clock = clock
        self.check_seconds = check_seconds
        self._done_day: date | None = None  # the last day this process knows to be sent or failed

    @property
    def lease_seconds(self) -> float:
        """Longer than a whole attempt can take, so a live holder is never taken over."""
        return send_timeout(self.settings) * max(1, len(self.settings.report_to)) + LEASE_MARGIN_SECONDS

    async def check(self) -> str | None:
        """Claim and send the report when due: the state this attempt left (`sent`, `failed`, or `sending` to
        be retried at a later check), or None when nothing was due or another dispatcher has it."""
        now = self.clock()
        tz = self.settings.report_timezone
        if not self.settings.report_to or not report_due(now, self.settings.report_at, tz, self._done_day):
            return None
        day = report_day(now, tz)
        held = await store.claim(self.db, day.isoformat(), self.owner, now, self.lease_seconds)
        if held is None:
            run = await store.run_of(self.db, day.isoformat())
            if run is not None and run.get("state") in (store.SENT, store.FAILED):
                self._done_day = day
            return None
        state = await self._send(held, day, now)
        if state in (store.SENT, store.FAILED):
            self._done_day = day
        return state

    async def _send(self, held: store.Claim, day: date, now: datetime) -> str | None:
        log = get_logger(day=held.day, attempt=held.attempt, owner=self.owner)
        try:
            account = await report_account(self.db, self.settings)
        except ReportError as exc:
            return await self._finish(held, None, str(exc), log)
        report = await build(self.db, day, self.settings.report_timezone, now)

        async def fence(recipient: str, message_id: str) -> bool:
            return await store.mark_delivered(self.db, held, recipient, message_id)

        delivery = await deliver(
            self.sender,
            account,
            report,
            self.settings.report_to,
            timeout=send_timeout(self.settings),
            skip=held.delivered,
            on_delivered=fence,
        )
        if delivery.delivered:
            log.info("report.delivered", account_id=account.id, recipients=len(delivery.delivered))
        return await self._finish(held, account.id, delivery.error, log)

    async def _finish(self, held: store.Claim, account_id: str | None, error: str | None, log: Any) -> str | None:
        state = await store.finish(self.db, held, self.clock(), account_id=account_id, error=error)
        if state is None:
            log.warning("report.lease_lost", reason="the claim expired and another dispatcher took the report")
        elif state == store.SENT:
            log.info("report.sent", account_id=account_id)
        elif state == store.FAILED:
            log.error("report.failed", account_id=account_id, error=error, attempts=held.attempt)
        else:
            log.warning(
                "report.retry", account_id=account_id, error=error, attempts_left=store.MAX_ATTEMPTS - held.attempt
            )
        return state

    async def run(self, stop: asyncio.Event) -> None:
        """Check, then wait `check_seconds` (or until `stop`), until `stop` is set. The first check runs even when
        `stop` is already set, so a short `run-dispatcher --once` sends a due report too."""
        while True:
            try:
                await self.check()
            except PyMongoError as exc:
                get_logger().warning("report.db_error", error=str(exc))
            except Exception:
                # The report is a side task: whatever breaks it must not stop the sending.
                get_logger().exception("report.crashed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.check_seconds)
            if stop.is_set():
                return


@contextlib.asynccontextmanager
async def daily_reports(db: Database, settings: Settings, sender: Sender) -> AsyncIterator[ReportLoop | None]:
    """Run the report loop in the background for the life of the block (nothing when OUTBOUND_REPORT_TO is
    unset); on the way out it is stopped, waiting for a send in progress up to the shutdown grace period."""
    if not settings.report_to:
        yield None
        return
    loop = ReportLoop(db, settings, sender)
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop), name="daily-report")
    try:
        yield loop
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=settings.shutdown_grace_seconds)
        except TimeoutError:
            # Cancelled mid-send: the claim stays `sending` and another dispatcher takes it after its lease.
            get_logger().warning("report.stopped", reason="still sending at the end of the shutdown grace period")
