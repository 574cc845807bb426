"""The aiosmtplib sender: verified TLS, one reused connection per account, every failure classified.

Each account has at most one open connection, guarded by its own lock, reused while the account has work
and dropped after `max_idle_seconds`. Any failure leaves as a base.py SendError (classified in smtp_errors.py);
a transient one also discards the connection, because its state is unknown. Connections are opened by
smtp_handshake.py, which also holds `check_account` and the EHLO name; what callers import from here is re-exported.
An account's password is revealed (app/credentials.py) only as a connection is opened; one that cannot be (no
key, a wrong key) fails the account like a refused login.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiosmtplib

from app.credentials import Credentials, CredentialsError
from app.domain.accounts import EmailAccount
from app.logging import get_logger
from app.transport.base import (
    AccountConfigError,
    OutgoingMessage,
    PermanentSendError,
    SendError,
    SendResult,
    TransientSendError,
    ValidatedMessage,
    build_message,
    validated,
)
from app.transport.send_errors import UnsupportedAddressError
from app.transport.smtp_errors import translate_error as translate_error
from app.transport.smtp_handshake import StepCallback as StepCallback
from app.transport.smtp_handshake import check_account as check_account
from app.transport.smtp_handshake import default_helo_name as default_helo_name
from app.transport.smtp_handshake import effective_security as effective_security
from app.transport.smtp_handshake import open_connection as open_connection


def _fingerprint(account: EmailAccount, security: str) -> str:
    # A changed host, port, security or credential must not reuse the old session.
    parts = (account.smtp_host, str(account.smtp_port), security, account.smtp_username or "", account.smtp_password)
    return hashlib.sha256("\0".join(p or "" for p in parts).encode("utf-8")).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Connection:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    client: aiosmtplib.SMTP | None = None
    fingerprint: str = ""
    last_used: float = 0.0

    def discard(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None


@dataclass(frozen=True)
class _Envelope:
    message_id: str
    sender: str
    recipient: str
    payload: bytes
    smtputf8: bool = False


def _envelope(message: OutgoingMessage | ValidatedMessage, now: datetime) -> _Envelope:
    checked = validated(message)
    payload = build_message(checked, now=now)
    return _Envelope(checked.message.message_id, checked.mail_from, checked.rcpt_to, payload, checked.smtputf8)


def _mail_options(client: aiosmtplib.SMTP, account: EmailAccount, envelope: _Envelope) -> list[str]:
    """MAIL FROM parameters: SMTPUTF8 (and 8BITMIME) for a non-ASCII address; raise when the server lacks it.

    Checked before MAIL FROM, so a refused recipient leaves nothing to undo on the connection.
    """
    if not envelope.smtputf8:
        return []
    if not client.supports_extension("smtputf8"):
        if not envelope.sender.isascii():
            raise AccountConfigError(
                None,
                f"the account's address {envelope.sender} has a non-ASCII local part and {account.smtp_host} "
                "does not offer SMTPUTF8 (RFC 6531): give the account an ASCII address or a server that offers it",
                during="mail",
            )
        raise UnsupportedAddressError(
            None,
            f"the recipient's address has a non-ASCII local part and {account.smtp_host} does not offer "
            "SMTPUTF8 (RFC 6531)",
            during="rcpt",
        )
    # The headers carry raw UTF-8 (RFC 6532): say so where the server knows 8BITMIME, as RFC 6531 suggests.
    return ["SMTPUTF8", "BODY=8BITMIME"] if client.supports_extension("8bitmime") else ["SMTPUTF8"]


class SmtpSender:
    """Sends through each account's SMTP server, reusing one connection per account.

    `local_hostname` is the EHLO/HELO name for every connection (OUTBOUND_HELO_NAME); None means
    `default_helo_name()`, looked up once, on the first connection. `credentials` reveal the stored passwords
    (default: no key, so only plain-text passwords work).
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        default_starttls: bool = True,
        tls_context: ssl.SSLContext | None = None,
        max_idle_seconds: float = 60.0,
        local_hostname: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        credentials: Credentials | None = None,
    ) -> None:
        self.timeout = timeout
        self.default_starttls = default_starttls
        self.tls_context = tls_context or ssl.create_default_context()
        self.max_idle_seconds = max_idle_seconds
        self.local_hostname = local_hostname
        self.clock = clock
        self.credentials = credentials or Credentials()
        self._connections: dict[str, _Connection] = {}
        self._swept_at = float("-inf")

    async def send(self, account: EmailAccount, message: OutgoingMessage | ValidatedMessage) -> SendResult:
        """Send one message (checked first unless already validated); raise TransientSendError,
        PermanentSendError, AccountAuthError (AccountConfigError for a certificate) or InvalidHeader."""
        envelope = _envelope(message, self.clock())  # InvalidHeader before any I/O
        conn = self._connections.setdefault(account.id, _Connection())
        async with conn.lock:
            self._drop_idle()
            for attempt in (1, 2):
                fresh = await self._ensure_open(conn, account)
                try:
                    return await self._transact(conn, account, envelope)
                except SendError as err:
                    await self._after_error(conn, err)
                    # The server may close a reused connection while it sat idle; nothing was accepted yet.
                    stale = (
                        isinstance(err, TransientSendError)
                        and not fresh
                        and err.during == "mail"
                        and err.code in (None, 421)
                    )
                    if not (stale and attempt == 1):
                        raise
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def close(self) -> None:
        """QUIT every open connection (abruptly closing any that does not answer in time)."""
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            if conn.client is None:
                continue
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await asyncio.wait_for(conn.client.quit(), timeout=min(self.timeout, 5.0))
            conn.discard()

    def open_connections(self) -> int:
        """How many SMTP connections this sender holds open (at most one per account)."""
        return sum(1 for conn in self._connections.values() if conn.client is not None)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _drop_idle(self) -> None:
        # Entries stay (one per account): removing one could orphan a task about to take its lock. A sender holds
        # a connection per account, thousands of them, so they are looked over at most once a second, not at
        # every send (a connection about to be used checks its own idleness in `_ensure_open`).
        now = self._now()
        if now - self._swept_at < min(1.0, self.max_idle_seconds):
            return
        self._swept_at = now
        for conn in self._connections.values():
            if conn.client is not None and not conn.lock.locked() and now - conn.last_used > self.max_idle_seconds:
                conn.discard()

    async def _ensure_open(self, conn: _Connection, account: EmailAccount) -> bool:
        """Reuse the account's live connection, or open a new one; True when newly opened."""
        security = effective_security(account, self.default_starttls)
        fingerprint = _fingerprint(account, security)
        idle = self._now() - conn.last_used > self.max_idle_seconds
        if conn.client is not None and conn.client.is_connected and conn.fingerprint == fingerprint and not idle:
            return False
        conn.discard()
        try:
            login = self.credentials.for_smtp(account)
        except CredentialsError as exc:
            raise AccountConfigError(None, str(exc), during="auth") from None
        if self.local_hostname is None:
            # Once per sender, off the event loop: the lookup may wait on DNS.
            self.local_hostname = await asyncio.to_thread(default_helo_name)
        log = get_logger(account_id=account.id)
        log.debug("smtp.connecting", host=account.smtp_host, port=account.smtp_port, security=security)
        conn.client = await open_connection(
            login,
            timeout=self.timeout,
            default_starttls=self.default_starttls,
            tls_context=self.tls_context,
            local_hostname=self.local_hostname,
        )
        conn.fingerprint = fingerprint
        conn.last_used = self._now()
        return True

    async def _transact(self, conn: _Connection, account: EmailAccount, envelope: _Envelope) -> SendResult:
        client = conn.client
        assert client is not None
        options = _mail_options(client, account, envelope)
        encoding = "utf-8" if options else "ascii"
        during = "mail"
        try:
            await client.mail(envelope.sender, options=options, encoding=encoding)
            during = "rcpt"
            await client.rcpt(envelope.recipient, encoding=encoding)
            during = "data"
            response = await client.data(envelope.payload)
        except Exception as exc:
            raise translate_error(exc, during, account, self.timeout) from None
        except BaseException:
            conn.discard()  # cancelled mid-transaction: the session state is unknown
            raise
        conn.last_used = self._now()
        return SendResult(envelope.message_id, response.code, response.message, self.clock())

    async def _after_error(self, conn: _Connection, err: SendError) -> None:
        if isinstance(err, UnsupportedAddressError):
            return  # refused before MAIL FROM: the session is as it was
        if not isinstance(err, PermanentSendError) or conn.client is None or not conn.client.is_connected:
            conn.discard()
            return
        try:
            await conn.client.rset()  # a refused recipient leaves the session usable for the next one
            conn.last_used = self._now()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            conn.discard()
