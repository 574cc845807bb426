"""Mailing the daily report: the account it goes from, one message per recipient, the SMTP hand-over.

The report goes through the report account's own SMTP transport, never the campaign ledger: it is not a
campaign send, has its own Message-ID and says `Auto-Submitted: auto-generated` (RFC 3834), so vacation
responders leave it alone. Each message is bounded in time, so a hung server cannot outlast the claim's lease.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from app.config import Settings
from app.domain.daily_report import DailyReport, build_report, day_bounds, render_html, render_text, subject
from app.domain.models import EmailAccount, InvalidDocument
from app.store import daily_report as store
from app.store.client import Database
from app.transport.base import InvalidHeader, OutgoingMessage, Sender, SendError
from app.transport.outgoing_message import idna_ascii

REPORT_HEADERS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}
SENDER_NAME = "Outbound"

# recipient, Message-ID -> False when the claim was lost and sending must stop
OnDelivered = Callable[[str, str], Awaitable[bool]]


class ReportError(Exception):
    """The report cannot be sent as configured; the message says what to change."""


def choose_account(docs: Sequence[Mapping[str, Any]], wanted: str | None) -> EmailAccount:
    """The account to send from: `wanted` (OUTBOUND_REPORT_ACCOUNT) when set, else the first valid active one
    of `docs` (sorted by id); ReportError saying what to fix when there is none that may send."""
    if wanted is not None and not docs:
        raise ReportError(
            f"OUTBOUND_REPORT_ACCOUNT={wanted}: no email account has that _id; set it to one that "
            "`outbound list-accounts` shows, or unset it to send from the first active account"
        )
    for doc in docs:
        try:
            account = EmailAccount.from_doc(doc)
        except InvalidDocument as exc:
            if wanted is not None:
                raise ReportError(f"OUTBOUND_REPORT_ACCOUNT={wanted}: the account is malformed: {exc}") from None
            continue
        if account.status == "active":
            return account
        reason = doc.get("disabled_reason")
        raise ReportError(
            f"OUTBOUND_REPORT_ACCOUNT={wanted}: account {account.email} is {account.status}"
            + (f" ({reason})" if reason else "")
            + ": make it active again (see `outbound reset-account-limits`) or name another account"
        )
    raise ReportError(
        "no active email account to send the report from: add one (`outbound account add`) "
        "or set OUTBOUND_REPORT_ACCOUNT to an account's _id"
    )


async def report_account(db: Database, settings: Settings) -> EmailAccount:
    """The account the report goes from, as configured; ReportError when it cannot send."""
    return choose_account(await store.sender_candidates(db, settings.report_account), settings.report_account)


async def build(db: Database, day: date, tz: str, now: datetime) -> DailyReport:
    """The report of `day` (a local calendar day in `tz`) as the store has it at `now`."""
    start, end = day_bounds(day, tz)
    return build_report(await store.gather(db, day, start, end), day, tz, now)


def _message_id(report: DailyReport, index: int, token: str, account: EmailAccount) -> str:
    domain = account.email.rpartition("@")[2]
    try:
        domain = idna_ascii(domain)
    except UnicodeError:
        domain = "outbound.invalid"
    return f"<outbound.report.{report.day}.{index}.{token[:16]}@{domain}>"


def compose(report: DailyReport, account: EmailAccount, recipient: str, index: int, token: str) -> OutgoingMessage:
    """The report's message to one recipient, from the report account, with its own Message-ID."""
    return OutgoingMessage(
        message_id=_message_id(report, index, token, account),
        from_email=account.email,
        from_name=SENDER_NAME,
        to_email=recipient,
        to_name=None,
        subject=subject(report),
        text=render_text(report),
        html=render_html(report),
        headers=REPORT_HEADERS,
    )


@dataclass(frozen=True)
class Delivery:
    """One attempt at mailing the report: who got it, with which Message-IDs, and what failed."""

    account_id: str
    delivered: tuple[str, ...]
    message_ids: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def error(self) -> str | None:
        """Every failure of the attempt in one line (None: none)."""
        return "; ".join(self.errors) or None


async def _no_fence(recipient: str, message_id: str) -> bool:
    return True


async def deliver(
    sender: Sender,
    account: EmailAccount,
    report: DailyReport,
    recipients: Sequence[str],
    *,
    timeout: float,
    skip: Sequence[str] = (),
    on_delivered: OnDelivered = _no_fence,
) -> Delivery:
    """Hand the report to SMTP for each recipient not in `skip`; a refusal is kept (with the server's words)
    and the others are still tried. Stops when `on_delivered` says the claim was lost."""
    token = uuid.uuid4().hex
    delivered: list[str] = []
    message_ids: list[str] = []
    errors: list[str] = []
    for index, recipient in enumerate(recipients):
        if recipient in skip:
            continue
        message = compose(report, account, recipient, index, token)
        try:
            await asyncio.wait_for(sender.send(account, message), timeout=timeout)
        except (SendError, InvalidHeader, OSError, TimeoutError) as exc:
            words = str(exc) or type(exc).__name__
            errors.append(f"{account.smtp_host}:{account.smtp_port} did not take the report to {recipient}: {words}")
            continue
        delivered.append(recipient)
        message_ids.append(message.message_id)
        if not await on_delivered(recipient, message.message_id):
            errors.append("another dispatcher took the report over (this one's claim expired)")
            break
    return Delivery(account.id, tuple(delivered), tuple(message_ids), tuple(errors))


def send_timeout(settings: Settings) -> float:
    """The most one message may take: a connect and the four SMTP exchanges, each within OUTBOUND_SMTP_TIMEOUT."""
    return 5 * settings.smtp_timeout
