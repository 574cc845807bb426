"""The demo's mailbox: a local IMAP server (pymap, in memory, on loopback) and prospects who answer.

`make demo` reads one demo account's inbox from this server. A few prospects answer the first message they
received from that account: one replies, one's address bounces (a Postfix-style delivery report), one asks
to be removed through the List-Unsubscribe mailto link, one is out of the office. The inbox sync then stops
exactly those who must not be mailed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from bson import ObjectId
from imapclient import IMAPClient

from app.domain.collections import EMAIL_ACCOUNTS, SENDS
from app.domain.inbound import refs_in_message_ids
from app.domain.unsubscribe import mailto_subject
from app.store.client import Database

PYMAP_LAUNCH = "import sys; from pymap.main import main; sys.exit(main())"
_START_SECONDS = 20.0
_STOP_SECONDS = 10.0


def pymap_command(port: int, user: str, password: str, tls: list[str] | None = None) -> list[str]:
    """The command line of a pymap server on 127.0.0.1:`port` with one user (`tls`: its --cert/--key options)."""
    args = [sys.executable, "-c", PYMAP_LAUNCH, "--host", "127.0.0.1", "--port", str(port), *(tls or ["--no-tls"])]
    return [*args, "dict", "--demo-user", user, "--demo-password", password]


def available() -> bool:
    """True when pymap is installed (it comes with the demo's and the tests' extras)."""
    try:
        import pymap  # noqa: F401
    except ImportError:
        return False
    return True


class LocalImapServer:
    """pymap on a free loopback port with one user; stopped (terminate, then kill) within a bound."""

    def __init__(self, user: str, password: str, log: Path) -> None:
        self.user = user
        self.password = password
        self.log = log
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalImapServer:
        """Start it and wait (bounded) until it greets."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                pymap_command(self.port, self.user, self.password),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline and self._process.poll() is None:
            if greets(self.port):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the local IMAP server did not start; see {self.log}")

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver a message into `folder`, as the mail server would."""
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        try:
            client.login(self.user, self.password)
            client.append(folder, raw)
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def stop(self) -> None:
        """Stop the process."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server process, then kill it, each within a bound."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_SECONDS)


def greets(port: int) -> bool:
    """True when an IMAP server on 127.0.0.1:`port` sends its greeting."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            return conn.recv(64).startswith(b"* OK")
    except OSError:
        return False


# --- the prospects' answers ------------------------------------------------------------------------------------


def _message(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "mail.example")
    msg.set_content(body)
    return msg


def reply(prospect: str, account: str, answered: str, subject: str) -> bytes:
    """A person's reply in the thread of our message `answered` (a Message-ID)."""
    msg = _message(prospect, account, f"Re: {subject}", "Thanks for reaching out, this is timely. Call me Thursday?\n")
    msg["In-Reply-To"] = answered
    msg["References"] = answered
    return msg.as_bytes()


def out_of_office(prospect: str, account: str, answered: str, subject: str) -> bytes:
    """An automatic reply (RFC 3834): never counted as a reply."""
    msg = _message(prospect, account, f"Automatic reply: {subject}", "I am out of the office until Monday.\n")
    msg["Auto-Submitted"] = "auto-replied"
    msg["In-Reply-To"] = answered
    return msg.as_bytes()


def unsubscribe(prospect: str, account: str, answered: str) -> bytes:
    """What a mail client sends for our List-Unsubscribe mailto link."""
    refs = refs_in_message_ids(answered)
    subject = mailto_subject(refs[0]) if refs else "unsubscribe"
    return _message(prospect, account, subject, "Please remove me from your list.\n").as_bytes()


def bounce(prospect: str, account: str, answered: str, subject: str) -> bytes:
    """A Postfix-style delivery status notification (RFC 3464): the prospect's address does not exist."""
    boundary = "demo-report-boundary"
    text = f"""\
From: MAILER-DAEMON@mx.outreach.example.net (Mail Delivery System)
To: {account}
Subject: Undelivered Mail Returned to Sender
Date: {format_datetime(datetime.now(UTC))}
Message-ID: {make_msgid(domain="mx.outreach.example.net")}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered to {prospect}.

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.outreach.example.net

Final-Recipient: rfc822; {prospect}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <{prospect}>: Recipient address rejected: User unknown

--{boundary}
Content-Type: text/rfc822-headers

From: {account}
To: {prospect}
Subject: {subject}
Message-ID: {answered}

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode("utf-8")


# --- the demo's play ------------------------------------------------------------------------------------------

ANSWERS = ("reply", "bounce", "unsubscribe", "out_of_office")
DEMO_INBOX_PASSWORD = "demo-inbox-password"


@dataclass
class Answered:
    """A prospect who answered: their address, how, and the send they answered."""

    email: str
    answer: str
    lead_id: str
    message_id: str


def answer(kind: str, prospect: str, account: str, message_id: str, subject: str) -> bytes:
    """The raw message a prospect sends for `kind` (one of ANSWERS)."""
    if kind == "reply":
        return reply(prospect, account, message_id, subject)
    if kind == "bounce":
        return bounce(prospect, account, message_id, subject)
    if kind == "unsubscribe":
        return unsubscribe(prospect, account, message_id)
    return out_of_office(prospect, account, message_id, subject)


async def read_inbox_of(db: Database, account_email: str, server: LocalImapServer) -> str | None:
    """Point the demo account `account_email` at the local IMAP server; its id (None: no such account)."""
    doc = await db[EMAIL_ACCOUNTS].find_one({"email": account_email})
    if doc is None:
        return None
    fields = {"imap_host": "127.0.0.1", "imap_port": server.port, "imap_security": "none"}
    fields |= {"imap_username": server.user, "imap_password": server.password}
    await db[EMAIL_ACCOUNTS].update_one({"_id": doc["_id"]}, {"$set": fields})
    return str(doc["_id"])


async def prospects_answer(
    db: Database,
    server: LocalImapServer,
    account_id: str,
    subjects: Callable[[str], str],
    stop: asyncio.Event,
    answered: list[Answered],
) -> None:
    """Once the account's first messages are out, one prospect each replies, bounces, unsubscribes, is away."""
    account = await db[EMAIL_ACCOUNTS].find_one({"_id": ObjectId(account_id)}) or {}
    for _ in range(600):  # at most a minute, in tenths of a second
        if stop.is_set() or len(answered) == len(ANSWERS):
            return
        flt = {"account_id": account_id, "state": "sent", "step_order": 1}
        async for send in db[SENDS].find(flt, sort=[("updated_at", 1)], limit=len(ANSWERS)):
            if len(answered) == len(ANSWERS) or any(a.lead_id == str(send["lead_id"]) for a in answered):
                continue
            kind = ANSWERS[len(answered)]
            raw = answer(
                kind, send["email"], str(account.get("email")), send["message_id"], subjects(send["message_id"])
            )
            await asyncio.to_thread(server.append, raw)
            answered.append(Answered(send["email"], kind, str(send["lead_id"]), send["message_id"]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.1)
