"""`sync-inbox`: read the accounts' mailboxes so replies, bounces and unsubscribes stop the sequences.

`run-dispatcher` runs the same sync in the background (see `dispatch_cmds`); this command runs it alone, once
or until signalled, and `--dry-run` shows what each message is and what it would do without changing anything.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Any

import typer

from app.cli.common import JSON_OPTION, console, err_console, fail, print_json, print_table, run_db, settings_of
from app.config import Settings
from app.credentials import credentials_for
from app.inbound.imap_reader import read_mailbox
from app.inbound.sync import InboxSync
from app.inbound.sync_values import AccountReport, SyncOptions
from app.store import schema
from app.store.client import Database
from app.store.documents import get_doc


def inbox_owner() -> str:
    """This process's name in sync leases."""
    return f"{socket.gethostname()}:{os.getpid()}:inbox"


def build_sync(db: Database, settings: Settings, *, dry_run: bool = False, due_only: bool = True) -> InboxSync:
    """The inbox sync as `run-dispatcher` and `sync-inbox` run it: IMAP in a bounded pool of threads."""
    options = SyncOptions(
        poll_seconds=settings.inbox_poll_seconds,
        # A pass holds its mailbox this long at most; a process killed mid-pass frees it when the lease runs out.
        lease_seconds=max(120.0, 4 * settings.smtp_timeout),
        dry_run=dry_run,
        due_only=due_only,
    )
    reader = read_mailbox(settings.smtp_timeout, credentials=credentials_for(settings))
    return InboxSync(db, reader, owner=inbox_owner(), options=options)


async def run_inbox_until(sync: InboxSync, stop: asyncio.Event) -> None:
    """Sync until `stop` is set; the reading threads are released afterwards."""
    try:
        await sync.run(stop)
    finally:
        sync.close()


def report_rows(reports: list[AccountReport]) -> list[dict[str, Any]]:
    """One plain row per account report (the JSON output and the table)."""
    return [
        {
            "account_id": r.account_id,
            "email": r.email,
            "read": r.read,
            "classes": dict(r.classes),
            "applied": dict(r.applied),
            "deferred": r.deferred,
            "unmatched": r.unmatched,
            "error": r.error,
            "retry_at": r.retry_at,
            "skipped": r.skipped,
            **({"decisions": r.decisions} if r.decisions else {}),
        }
        for r in reports
    ]


def print_reports(reports: list[AccountReport], as_json: bool, dry_run: bool, *, to_stderr: bool = False) -> None:
    """The sync's summary: per account what was read and done (and, dry, what would be)."""
    rows = report_rows(reports)
    if as_json:
        print_json({"dry_run": dry_run, "accounts": rows})
        return
    out = err_console if to_stderr else console
    if not rows:
        out.print("No account has IMAP settings: set imap_host (and imap_port, imap_security) to read its inbox.")
        return
    table = []
    for r in rows:
        classes = ", ".join(f"{k} {v}" for k, v in sorted(r["classes"].items())) or "-"
        applied = ", ".join(f"{k} {v}" for k, v in sorted(r["applied"].items())) or "-"
        state = f"failed: {r['error']}" if r["error"] else r["skipped"] or "ok"
        table.append([r["account_id"], r["email"], str(r["read"]), classes, applied, str(r["deferred"]), state])
    title = "Inbox sync (dry run: nothing changed)" if dry_run else "Inbox sync"
    print_table(title, ["account", "email", "read", "classes", "applied", "deferred", "state"], table, console=out)
    for r in rows:
        for d in r.get("decisions", []):
            would = "; ".join(f"{a['answer']} {a['send']} ({a['by']})" for a in d["answers"]) or "nothing"
            out.print(f"  {r['account_id']} {d['folder']} uid {d['uid']}: {d['kind']} ({d['reason']}) -> {would}")


def sync_inbox(
    ctx: typer.Context,
    account_id: str | None = typer.Option(None, "--account-id", help="Only this account's mailbox."),
    once: bool = typer.Option(False, "--once", help="Read every mailbox once, then exit."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Classify and show what each new message would do; change nothing (implies --once)."
    ),
    json_: bool = JSON_OPTION,
) -> None:
    """Read new messages of every account with IMAP settings: replies, bounces and unsubscribes stop sequences.

    Mailboxes are never changed (nothing is marked read, moved or deleted). Without --once it keeps reading
    every OUTBOUND_INBOX_POLL_SECONDS until SIGTERM/SIGINT.

    Example: outbound sync-inbox --once --account-id 665f0e...
    """
    settings = settings_of(ctx)

    async def work(db: Database) -> list[AccountReport]:
        if account_id is not None:
            doc = await get_doc(db[schema.EMAIL_ACCOUNTS], "account", account_id)
            if not doc.get("imap_host"):
                fail(f"account {account_id} has no imap_host: set imap_host (and imap_port, imap_security) first")
        sync = build_sync(db, settings, dry_run=dry_run, due_only=False)
        if once or dry_run:
            try:
                return await sync.run_once(account_id)
            finally:
                sync.close()
        await _until_signalled(sync)
        return []

    reports = run_db(settings, work, read_only=dry_run)
    if once or dry_run:
        print_reports(reports, json_, dry_run)
        if any(r.error for r in reports):
            err_console.print("Some mailboxes could not be read: `outbound test-imap <account_id>` says what to fix.")
            raise typer.Exit(1)


async def _until_signalled(sync: InboxSync) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_inbox_until(sync, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def register(app: typer.Typer) -> None:
    """Add `sync-inbox`."""
    app.command("sync-inbox")(sync_inbox)
