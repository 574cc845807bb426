"""`make demo`: Outbound sending the demo campaigns on the embedded database to a local mailbox.

Starts a loopback SMTP server that writes every message to a mailbox directory, and a loopback IMAP server
holding one demo account's inbox; seeds the demo data (its accounts point at those servers), shows what a dry
run would send, then runs the real dispatcher for a bounded time with a live progress view, the inbox sync in
the background, while a few prospects answer the first messages that account sent (a reply, a bounce, an
unsubscribe, an out-of-office). It ends with a summary: sent per campaign and per account, the limits as
measured at the SMTP server, who answered and what that did to their sequence, and where the messages are.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId
from rich.console import Console
from rich.live import Live
from rich.table import Table

from app import demo_inbox, demo_web
from app.cli.dispatch_cmds import build_dispatcher
from app.cli.inbox_cmds import inbox_owner
from app.config import Settings, load_settings
from app.dispatch.dispatcher import Dispatcher, DispatcherOptions
from app.domain.inbound import refs_in_message_ids
from app.domain.settlement import Outcome
from app.domain.templating import Renderer
from app.inbound.imap_reader import read_mailbox
from app.inbound.sync import InboxSync
from app.inbound.sync_values import SyncOptions
from app.logging import configure_logging
from app.send.preview import preview
from app.store import schema
from app.store.catalog import Catalog
from app.store.client import Database, connect
from app.store.schema import ensure_schema
from app.transport.dryrun import DryRunSender
from app.transport.mailbox import MailboxServer, ReceivedMessage
from app.transport.smtp import SmtpSender

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
DEMO_INBOX_ACCOUNT = "alex.carter@outreach.example.net"  # the demo account whose inbox is read
ANSWER_TYPES = ("replied", "auto_reply", "bounced", "soft_bounce", "unsubscribed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of the demo."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=45.0, help="longest time to let the dispatcher run")
    parser.add_argument("--db-name", default="outbound_demo", help="database for the demo data")
    parser.add_argument("--mailbox", type=Path, default=Path("demo-mail"), help="where messages are written")
    parser.add_argument(
        "--linger",
        type=float,
        default=600.0 if sys.stdin.isatty() else 0.0,
        help="seconds the dashboard stays up after the run (until Enter; default 600 in a terminal, else 0)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.linger <= 3600:
        parser.error("--linger must be between 0 and 3600")
    if not 1 <= args.seconds <= 3600:
        parser.error("--seconds must be between 1 and 3600")
    return args


def seed(settings: Settings, port: int) -> None:
    """Seed the demo data through the CLI, its accounts pointing at our SMTP server."""
    command = [sys.executable, "-m", "app.cli.main", "--db-name", settings.db_name, "--home", str(settings.home)]
    if settings.mongo_uri:
        command += ["--mongo-uri", settings.mongo_uri]
    subprocess.run([*command, "demo", "seed", "--reset", "--smtp-port", str(port)], check=True)


class Progress:
    """Counts outcomes as the dispatcher reports them, for the live view."""

    def __init__(self, names: dict[str, str], accounts: dict[str, str]) -> None:
        self.names = names
        self.accounts = accounts
        self.by_campaign: collections.Counter[str] = collections.Counter()
        self.by_account: collections.Counter[str] = collections.Counter()
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.started = time.monotonic()

    def __call__(self, outcome: Outcome) -> None:
        self.outcomes[outcome.kind] += 1
        if outcome.kind == "sent":
            self.by_campaign[self.names.get(outcome.campaign_id or "", "?")] += 1
            self.by_account[self.accounts.get(outcome.account_id or "", "?")] += 1

    def table(self, waiting: int, mailbox: MailboxServer, answers: int = 0) -> Table:
        elapsed = time.monotonic() - self.started
        table = Table(title=f"Outbound demo: {elapsed:5.1f}s, {len(mailbox.messages)} messages in the mailbox")
        table.add_column("campaign / account")
        table.add_column("sent", justify="right")
        for name, count in sorted(self.by_campaign.items()):
            table.add_row(f"[bold]{name}[/]", str(count))
        for name, count in sorted(self.by_account.items()):
            table.add_row(f"  from {name}", str(count))
        other = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()) if k != "sent") or "-"
        table.add_row("[dim]other outcomes[/]", other)
        table.add_row("[dim]leads not finished[/]", str(waiting))
        table.add_row("[dim]answers read from the inbox[/]", str(answers))
        return table


async def names_of(db: Database) -> tuple[dict[str, str], dict[str, str]]:
    """Campaign and account display names by id."""
    campaigns = {str(c["_id"]): str(c.get("name")) async for c in db[schema.CAMPAIGNS].find()}
    accounts = {str(a["_id"]): str(a.get("email")) async for a in db[schema.EMAIL_ACCOUNTS].find()}
    return campaigns, accounts


async def unfinished(db: Database) -> int:
    """Leads of active campaigns still to be sent."""
    active = [str(c["_id"]) async for c in db[schema.CAMPAIGNS].find({"status": "active"})]
    return await db[schema.CAMPAIGN_LEADS].count_documents(
        {"campaign_id": {"$in": active}, "progress.next_due_at": {"$ne": None}}
    )


async def show_dry_run(db: Database) -> None:
    """What would go out right now, without sending or changing anything."""
    rows = await preview(db, Catalog(db), Renderer(), DryRunSender(), now=datetime.now(UTC), limit=5)
    table = Table(title=f"Dry run (run-dispatcher --dry-run): {len(rows)} emails due now; first 8 shown")
    for column in ("campaign", "to", "from", "subject"):
        table.add_column(column)
    for row in rows[:8]:
        table.add_row(row.campaign, row.email or "-", row.account or "-", row.subject or row.problem or "-")
    console.print(table)


async def run_live(
    dispatcher: Dispatcher, db: Database, progress: Progress, mailbox: MailboxServer, seconds: float
) -> None:
    """Run the dispatcher with a live view until everything is sent or `seconds` pass."""
    task = asyncio.create_task(dispatcher.run())
    deadline = time.monotonic() + seconds
    waiting = await unfinished(db)
    with Live(progress.table(waiting, mailbox), console=console, refresh_per_second=4, transient=False) as live:
        while not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            waiting = await unfinished(db)
            answers = await db[schema.ACTIVITIES].count_documents({"type": {"$in": list(ANSWER_TYPES)}})
            live.update(progress.table(waiting, mailbox, answers))
            if waiting == 0:
                break
    dispatcher.stop()
    await task


def min_gap(times: list[datetime]) -> float | None:
    """Smallest time between consecutive sends, in seconds."""
    ordered = sorted(times)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ordered)]
    return min(gaps) if gaps else None


async def limits_table(db: Database, messages: list[ReceivedMessage]) -> Table:
    """Per account: sent today vs max_daily_sends, smallest gap between sends vs min_wait_time (SMTP side)."""
    by_sender: dict[str, list[datetime]] = collections.defaultdict(list)
    for message in messages:
        by_sender[message.mail_from].append(message.received_at)
    table = Table(title="Limits, measured at the SMTP server")
    for column in ("account", "sent", "max/day", "smallest gap", "min wait", "respected"):
        table.add_column(column)
    async for account in db[schema.EMAIL_ACCOUNTS].find(sort=[("email", 1)]):
        limits = await db[schema.EMAIL_CAMPAIGN_SETTINGS].find_one({"email_id": str(account["_id"])}) or {}
        sent = len(by_sender.get(account["email"], []))
        cap = limits.get("max_daily_sends")
        wait = float(limits.get("min_wait_time") or 0) * 60
        gap = min_gap(by_sender.get(account["email"], []))
        ok = (cap is None or sent <= cap) and (gap is None or gap >= wait - 0.05)
        table.add_row(
            account["email"],
            str(sent),
            str(cap if cap is not None else "-"),
            "-" if gap is None else f"{gap:.2f}s",
            f"{wait:.2f}s",
            "[green]yes[/]" if ok else "[red]NO[/]",
        )
    return table


def subject_finder(mailbox: MailboxServer) -> Callable[[str], str]:
    """The subject of one of our messages at the SMTP server, by Message-ID (what a prospect answers)."""

    def subject(message_id: str) -> str:
        for message in mailbox.messages:
            if message.message_id == message_id:
                return str(message.parse()["Subject"])
        return "our message"

    return subject


def step_of(message_id: str | None) -> int:
    """The step of one of our Message-IDs (`<outbound.<lead>.<step>.<recipient>@...>`), 0 when not ours."""
    refs = refs_in_message_ids(message_id)
    return refs[0].step_order if refs else 0


async def answers_table(db: Database, answered: list[demo_inbox.Answered], messages: list[ReceivedMessage]) -> Table:
    """Who answered, how, and what it did: the recipient's status, the lead, the suppression, later mail."""
    table = Table(title=f"Answers read from {DEMO_INBOX_ACCOUNT}'s inbox (IMAP), and what they did")
    for column in ("prospect", "answered with", "recipient now", "lead", "suppressed", "mailed since"):
        table.add_column(column)
    for a in answered:
        lead = await db[schema.CAMPAIGN_LEADS].find_one({"_id": ObjectId(a.lead_id)}) or {}
        recipient: dict[str, Any] = next((r for r in lead.get("lead_data", []) if r.get("email") == a.email), {})
        progress = lead.get("progress") or {}
        stopped = f"stopped: {progress.get('stopped_reason')}" if progress.get("stopped") else "goes on"
        suppressed = await db[schema.SUPPRESSIONS].find_one({"value": a.email})
        later = sum(1 for m in messages if a.email in m.recipients and step_of(m.message_id) > 1)
        table.add_row(
            a.email,
            a.answer.replace("_", " "),
            str(recipient.get("status", "-")),
            stopped,
            str(suppressed["reason"]) if suppressed else "no",
            f"{later} follow-up(s)" + (" (replies and bounces stop; an auto-reply does not)" if later else ""),
        )
    return table


async def print_windowed(db: Database) -> None:
    """For each campaign with a sending window: how many of its leads wait for it, and when the next opens."""
    now = datetime.now(UTC)
    async for campaign in db[schema.CAMPAIGNS].find({"settings.schedule": {"$exists": True}, "status": "active"}):
        flt = {"campaign_id": str(campaign["_id"]), "progress.next_due_at": {"$gt": now}}
        waiting = await db[schema.CAMPAIGN_LEADS].count_documents(flt)
        first = await db[schema.CAMPAIGN_LEADS].find_one(flt, sort=[("progress.next_due_at", 1)])
        if first is None:
            continue
        opens = first["progress"]["next_due_at"].astimezone(UTC).strftime("%H:%M UTC")
        console.print(
            f"{campaign['name']} (sending window in each recipient's time zone): {waiting} leads waiting, the next "
            f"due at {opens}; `show-due-leads` and `show-lead-details` say when each one's window opens"
        )


async def start_inbox(
    db: Database, server: demo_inbox.LocalImapServer | None, mailbox: MailboxServer, stop: asyncio.Event
) -> tuple[list[asyncio.Task[None]], list[demo_inbox.Answered], InboxSync | None]:
    """The inbox sync (every second) and the prospects who answer, as background tasks."""
    answered: list[demo_inbox.Answered] = []
    account_id = await demo_inbox.read_inbox_of(db, DEMO_INBOX_ACCOUNT, server) if server else None
    if server is None or account_id is None:
        return [], answered, None
    options = SyncOptions(poll_seconds=1.0, due_only=False)
    sync = InboxSync(db, read_mailbox(10.0), owner=inbox_owner(), options=options)
    tasks = [
        asyncio.create_task(sync.run(stop, tick=0.5)),
        asyncio.create_task(
            demo_inbox.prospects_answer(db, server, account_id, subject_finder(mailbox), stop, answered)
        ),
    ]
    return tasks, answered, sync


async def linger(web_url: str, seconds: float) -> None:
    """Keep the dashboard up after the run, until Enter or Ctrl-C, for at most `seconds`."""
    if seconds <= 0:
        return
    console.print(f"The dashboard stays up at {web_url}/dashboard for {seconds:.0f}s: press Enter to end the demo.")
    loop = asyncio.get_running_loop()
    entered: asyncio.Future[None] = loop.create_future()

    def on_input() -> None:
        if not entered.done():
            entered.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_input)
    try:
        await asyncio.wait_for(entered, timeout=seconds)
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(sys.stdin.fileno())
    if entered.done():
        sys.stdin.readline()


async def main(args: argparse.Namespace) -> int:
    """The demo; returns the exit code."""
    settings = demo_web.demo_settings(load_settings().with_overrides(db_name=args.db_name))
    configure_logging("WARNING", "console")
    for old in args.mailbox.glob("*.eml"):  # a fresh mailbox for each run
        old.unlink()
    mailbox = MailboxServer(args.mailbox.resolve())
    await mailbox.start()
    inbox = None
    if demo_inbox.available():
        settings.home.mkdir(parents=True, exist_ok=True)
        log = settings.home / "demo-imap.log"
        inbox = demo_inbox.LocalImapServer(DEMO_INBOX_ACCOUNT, demo_inbox.DEMO_INBOX_PASSWORD, log)
        await asyncio.to_thread(inbox.start)
    try:
        where = "MONGO_URI" if settings.mongo_uri else f"the embedded database under {settings.home}"
        console.print(f"[bold]Outbound demo[/] on {where}, database {settings.db_name}")
        console.print(f"Local SMTP server on 127.0.0.1:{mailbox.port}, writing messages to {mailbox.directory}")
        if inbox is not None:
            console.print(f"Local IMAP server on 127.0.0.1:{inbox.port} holding {DEMO_INBOX_ACCOUNT}'s inbox")
        else:
            console.print("pymap is not installed: the inbox part of the demo is left out (`make install` adds it)")
        await asyncio.to_thread(seed, settings, mailbox.port)
        async with connect(settings) as db, demo_web.serving(settings) as web_url:
            await ensure_schema(db)
            login = await demo_web.demo_login(db, datetime.now(UTC))
            # Unsubscribe links in the demo's messages point at its own web service.
            settings = settings.with_overrides(public_url=web_url)
            console.print(f"[bold]Dashboard[/] at {web_url}/dashboard (the HTTP API and its routes: README)")
            console.print(f"Sign in as {login.email} with the one-time password [bold]{login.password}[/]")
            await show_dry_run(db)
            campaigns, accounts = await names_of(db)
            progress = Progress(campaigns, accounts)
            sender = SmtpSender(timeout=10)
            options = DispatcherOptions(concurrency=8, poll_interval=0.2, lease_seconds=30, shutdown_grace_seconds=5)
            stop = asyncio.Event()
            tasks, answered, sync = await start_inbox(db, inbox, mailbox, stop)
            try:
                dispatcher = build_dispatcher(db, settings, sender, options, on_outcome=progress)
                await run_live(dispatcher, db, progress, mailbox, args.seconds)
            finally:
                stop.set()
                for failure in await asyncio.gather(*tasks, return_exceptions=True):
                    if isinstance(failure, BaseException):
                        console.print(f"[red]inbox task failed:[/] {failure!r}")
                if sync is not None:
                    # A last read once the dispatcher has let go of every lead: late answers, and those that
                    # waited because a lead was held when they arrived.
                    await sync.run_once()
                    sync.close()
                await sender.close()
            console.print(await limits_table(db, list(mailbox.messages)))
            if answered:
                console.print(await answers_table(db, answered, list(mailbox.messages)))
                console.print(
                    f"Why a lead stopped: `outbound --db-name {settings.db_name} show-lead-details "
                    f"{answered[0].lead_id}` (its answers, with the message's subject and snippet)"
                )
            await print_windowed(db)
            await linger(web_url, args.linger)
            waiting = await unfinished(db)
            soonest = await db[schema.CAMPAIGN_LEADS].find_one(
                {"progress.next_due_at": {"$ne": None}}, sort=[("progress.next_due_at", 1)]
            )
        console.print(f"[bold]{len(mailbox.messages)} messages[/] written to {mailbox.directory}/ (one .eml each)")
        if waiting and soonest is not None:
            due: datetime = soonest["progress"]["next_due_at"]
            later = max(timedelta(0), due - datetime.now(UTC))
            console.print(
                f"{waiting} leads are waiting for their next step, an account's wait window or tomorrow's limit "
                f"(next due in {later.total_seconds():.0f}s). Run `outbound --db-name {settings.db_name} "
                "show-due-leads` or `show-account-stats` to see why."
            )
        console.print("Stop the embedded database with `outbound db stop` (the data stays under OUTBOUND_HOME).")
        return 0
    finally:
        await mailbox.stop()
        if inbox is not None:
            inbox.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
