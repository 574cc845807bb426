"""The inbox sync: read every new message of every configured folder of every account with IMAP settings,
classify it, match it to our sends and apply its answers.

Reading never changes the mailbox (read-only SELECT, BODY.PEEK). Progress is kept per (account, folder) as
the UIDVALIDITY and the last UID read under it, saved after each message is recorded, so a restart reads
nothing twice and a UIDVALIDITY change re-reads the folder safely (each message is recorded once, keyed by
account and Message-ID). One account's mailbox is read by one process at a time (a lease); a mailbox that
fails is retried with backoff and never stops the others. IMAP is blocking: mailboxes are read in a bounded
thread pool while everything else stays on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from app.domain import inbound as kinds
from app.domain.collections import EMAIL_ACCOUNTS, INBOUND, INBOUND_SYNC
from app.domain.inbound_classify import classify, parse
from app.domain.models import EmailAccount, InvalidDocument
from app.inbound import effects, matching
from app.inbound.effects import Answer
from app.inbound.sync_values import (
    AccountReport,
    FolderRead,
    ReadMailbox,
    SyncOptions,
    answer_of,
    decision_of,
    record_of,
)
from app.metrics import registry as metrics
from app.store import inbound as store
from app.store.client import Database
from app.store.documents import id_filter
from app.store.inbound import FolderProgress, SyncLease
from app.transport.imap import ImapPool

log = structlog.get_logger()  # lazy: takes the configuration in force when it first logs

MAX_BACKOFF_SECONDS = 3600.0


class InboxSync:
    """Reads mailboxes and applies what they hold; one instance per process."""

    def __init__(
        self,
        db: Database,
        reader: ReadMailbox,
        *,
        owner: str,
        options: SyncOptions = SyncOptions(),
        workers: int = 4,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.reader = reader
        self.owner = owner
        self.options = options
        self.clock = clock
        self._slots = asyncio.Semaphore(workers)
        self._pool = ImapPool(workers)
        self._records = db[INBOUND]
        self._state = db[INBOUND_SYNC]

    async def accounts(self, account_id: str | None = None) -> list[EmailAccount]:
        """Accounts whose mailbox is read (with `imap_host`), valid ones only; a malformed one is logged."""
        found = []
        flt: dict[str, Any] = {"imap_host": {"$exists": True, "$nin": [None, ""]}}
        if account_id is not None:
            flt.update(id_filter(account_id))
        async for doc in self.db[EMAIL_ACCOUNTS].find(flt):
            try:
                account = EmailAccount.from_doc(doc)
            except InvalidDocument as exc:
                log.warning("inbox.account_invalid", account_id=str(doc.get("_id")), error=str(exc))
                continue
            if account.status != "disabled":
                found.append(account)
        return found

    async def run_once(self, account_id: str | None = None) -> list[AccountReport]:
        """One pass: answers that waited, then every account (concurrently, bounded by the pool)."""
        if not self.options.dry_run:
            await self.retry_deferred()
        accounts = await self.accounts(account_id)
        return list(await asyncio.gather(*(self._guarded(account) for account in accounts)))

    async def run(self, stop: asyncio.Event, tick: float | None = None) -> None:
        """Pass after pass until `stop` is set; each account is read when its next sync is due."""
        interval = tick if tick is not None else min(5.0, self.options.poll_seconds)
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception as exc:  # one bad pass (the database away) must not end the loop
                log.error("inbox.pass_failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def retry_deferred(self) -> int:
        """Apply again the answers that waited for a dispatcher to release their lead; how many landed."""
        now = self.clock()
        landed = 0
        for doc in await store.deferred_due(self._records, now):
            stored = [effects.answer_from_doc(a) for a in doc.get("answers") or []]
            pending = [a for a in stored if a is not None]
            still = [a for a in pending if (await effects.apply(self.db, a, now)).deferred]
            if still:
                await store.defer(self._records, str(doc["_id"]), [effects.answer_doc(a) for a in still], now)
            else:
                await store.settle(self._records, str(doc["_id"]), store.APPLIED, now)
                landed += 1
        return landed

    async def _guarded(self, account: EmailAccount) -> AccountReport:
        report = AccountReport(account.id, account.email)
        try:
            async with self._slots:
                if self.options.dry_run:
                    await self._dry_run(account, report)
                else:
                    await self._sync(account, report)
        except Exception as exc:  # one account's trouble never stops the others
            report.error = f"{type(exc).__name__}: {exc}"
            log.error("inbox.account_failed", account_id=account.id, error=report.error)
        return report

    async def _sync(self, account: EmailAccount, report: AccountReport) -> None:
        now = self.clock()
        lease = await store.take(
            self._state, account.id, self.owner, now, self.options.lease_seconds, due_only=self.options.due_only
        )
        if lease is None:
            report.skipped = "not due, or another process is reading it"
            return
        state = await store.account_state(self._state, account.id)
        try:
            reads = await self._read(account)
        except Exception as exc:
            await self._failed(lease, report, int(state.get("failures") or 0) + 1, exc)
            return
        error = None
        for folder_read in reads:
            if folder_read.error is not None:
                error = report.error = folder_read.error
                log.warning("inbox.folder_failed", account_id=account.id, folder=folder_read.folder, error=error)
                continue
            renewed = await store.renew(self._state, lease, self.clock(), self.options.lease_seconds)
            if renewed is None or not await self._process_folder(account, renewed, folder_read, report):
                error = "the sync lease was lost: another process took this mailbox over"
                break
            lease = renewed
        await store.finish(self._state, lease, self.clock(), self._next_sync(), error)
        (log.info if report.read or error else log.debug)(
            "inbox.synced",
            account_id=account.id,
            read=report.read,
            classes=dict(report.classes),
            applied=dict(report.applied),
            deferred=report.deferred,
        )

    async def _read(self, account: EmailAccount) -> list[FolderRead]:
        progress = {
            folder: await store.folder_progress(self._state, account.id, folder) for folder in account.imap_folders
        }
        return await self._pool.run(self.reader, account, progress, self.options.batch)

    def close(self) -> None:
        """Stop the reading threads (a read in progress ends at its socket timeout)."""
        self._pool.close(wait=False)

    async def _failed(self, lease: SyncLease, report: AccountReport, failures: int, exc: Exception) -> None:
        now = self.clock()
        delay = min(self.options.poll_seconds * 2 ** min(failures, 16), MAX_BACKOFF_SECONDS)
        report.error = str(exc) or type(exc).__name__
        report.retry_at = now + timedelta(seconds=delay)
        await store.finish(self._state, lease, now, report.retry_at, report.error)
        log.warning(
            "inbox.failed", account_id=lease.account_id, error=report.error, failures=failures, retry_at=report.retry_at
        )

    def _next_sync(self) -> datetime:
        return self.clock() + timedelta(seconds=self.options.poll_seconds)

    async def _process_folder(
        self, account: EmailAccount, lease: SyncLease, folder_read: FolderRead, report: AccountReport
    ) -> bool:
        if folder_read.restarted:
            log.warning("inbox.uidvalidity_changed", account_id=account.id, folder=folder_read.folder)
        for uid, raw in folder_read.messages:
            await self._process_message(account, folder_read, uid, raw, report)
            progress = FolderProgress(folder_read.uidvalidity, uid)
            if not await store.save_progress(self._state, lease, folder_read.folder, progress, self.clock()):
                return False
        if not folder_read.messages:
            current = await store.folder_progress(self._state, account.id, folder_read.folder)
            if current.uidvalidity != folder_read.uidvalidity:
                progress = FolderProgress(folder_read.uidvalidity, 0)
                return await store.save_progress(self._state, lease, folder_read.folder, progress, self.clock())
        return True

    async def _process_message(
        self, account: EmailAccount, folder_read: FolderRead, uid: int, raw: bytes, report: AccountReport
    ) -> None:
        now = self.clock()
        classified = classify(parse(raw))
        key = store.message_key(account.id, classified.message_id, folder_read.folder, folder_read.uidvalidity, uid)
        report.read += 1
        found = await matching.answers(self.db, classified, account.id)
        kind = classified.kind if found or classified.kind != kinds.REPLY else kinds.UNRELATED
        report.classes[kind] += 1
        answers = [answer_of(classified, m, key, i, account.id, folder_read.folder) for i, m in enumerate(found)]
        existing = await store.record(
            self._records, record_of(classified, kind, key, account, folder_read, uid, found, now)
        )
        if existing is None:  # read for the first time: a restart's second reading is not counted again
            metrics.current().inbound(kind, account.id)
        if existing is not None and existing.get("state") in (store.APPLIED, store.IGNORED):
            return  # read and settled before (a restart, a UIDVALIDITY change): nothing more to do
        await self._apply(key, answers, report, now)

    async def _apply(self, key: str, answers: Sequence[Answer], report: AccountReport, now: datetime) -> None:
        if not answers:
            report.unmatched += 1
            await store.settle(self._records, key, store.IGNORED, now)
            return
        waiting = []
        for answer in answers:
            applied = await effects.apply(self.db, answer, now)
            if applied.deferred:
                waiting.append(answer)
            else:
                report.applied[answer.answer] += 1
        if waiting:
            report.deferred += len(waiting)
            await store.defer(self._records, key, [effects.answer_doc(a) for a in waiting], now)
        else:
            await store.settle(self._records, key, store.APPLIED, now)

    async def _dry_run(self, account: EmailAccount, report: AccountReport) -> None:
        """Read, classify and match, and say what would be done; write nothing (not even the progress)."""
        try:
            reads = await self._read(account)
        except Exception as exc:
            report.error = str(exc) or type(exc).__name__
            return
        for folder_read in reads:
            for uid, raw in folder_read.messages:
                classified = classify(parse(raw))
                found = await matching.answers(self.db, classified, account.id)
                kind = classified.kind if found or classified.kind != kinds.REPLY else kinds.UNRELATED
                report.read += 1
                report.classes[kind] += 1
                report.unmatched += 0 if found else 1
                report.decisions.append(decision_of(folder_read.folder, uid, classified, kind, found))
