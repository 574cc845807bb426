"""A local SMTP server (aiosmtpd) that keeps every message as a .eml file: for the demo and the tests.

It listens on loopback only, can require or accept any credentials, speaks STARTTLS or implicit TLS when
given a certificate, offers SMTPUTF8 (RFC 6531) or not, records the name each client greets it with
(EHLO/HELO) and the MAIL FROM parameters of each message, and can inject faults (a reply
code or a dropped connection) at AUTH, MAIL, RCPT or DATA, so senders can be tested against real SMTP
behaviour.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Fault:
    """What the server does instead of accepting: reply `code text`, or (drop=True) close the connection."""

    code: int | None = None
    text: str = "injected failure"
    drop: bool = False

    def reply(self) -> str:
        """The SMTP reply line for this fault."""
        return f"{self.code} {self.text}"


# Called with (stage, value): stage is "auth" (value: username), "mail" (sender), "rcpt" (recipient) or
# "data" (the message's Message-ID). Return None to proceed normally.
FaultHook = Callable[[str, str], Fault | None]


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message: when, the envelope, its Message-ID, who logged in, the stored file, and the
    MAIL FROM parameters it came with (e.g. `SMTPUTF8`)."""

    received_at: datetime
    mail_from: str
    recipients: tuple[str, ...]
    message_id: str | None
    login: str | None
    path: Path
    mail_options: tuple[str, ...] = ()

    def parse(self) -> EmailMessage:
        """The stored message, parsed."""
        with self.path.open("rb") as handle:
            parsed = email.message_from_binary_file(handle, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def _safe_name(message_id: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", (message_id or "no-id").strip("<>"))[:120]


def _message_id(content: bytes) -> str | None:
    headers, _, _ = content.partition(b"\r\n\r\n")
    parsed = email.message_from_bytes(headers + b"\r\n\r\n", policy=email.policy.default)
    value = parsed.get("Message-ID")
    return str(value).strip() if value is not None else None


def _drop(smtp: SMTP) -> None:
    """Cut the TCP connection without a reply, as a crashing or overloaded server would."""
    transport = smtp.transport
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    elif transport is not None:
        transport.close()


class _Handler:
    """aiosmtpd hooks: greeting names, fault injection, then storing the message."""

    def __init__(self, server: MailboxServer) -> None:
        self.mailbox = server

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves this to a handler that has the hook
        self.mailbox.helo_names.append(hostname)
        return responses

    async def handle_HELO(self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        session.host_name = hostname
        self.mailbox.helo_names.append(hostname)
        return f"250 {smtp.hostname}"

    def _fault(self, smtp: SMTP, stage: str, value: str) -> str | None:
        fault = self.mailbox.fault(stage, value) if self.mailbox.fault else None
        if fault is None:
            return None
        if fault.drop:
            _drop(smtp)
            return "421 connection dropped"  # never reaches the client: the transport is gone
        return fault.reply()

    async def handle_MAIL(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refused = self._fault(smtp, "mail", address)
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refused = self._fault(smtp, "rcpt", address)
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        content = raw.encode("utf-8") if isinstance(raw, str) else raw
        message_id = _message_id(content)
        refused = self._fault(smtp, "data", message_id or "")
        if refused:
            return refused
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.mailbox.store(
            envelope.mail_from or "",
            tuple(envelope.rcpt_tos),
            message_id,
            login,
            content,
            mail_options=tuple(envelope.mail_options),
        )
        return f"250 OK queued as {message_id or 'message'}"


class MailboxServer:
    """A loopback SMTP server storing messages under `directory`; `messages` lists what it accepted."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        users: Mapping[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        auth_require_tls: bool = False,
        fault: FaultHook | None = None,
        smtputf8: bool = True,
    ) -> None:
        """`smtputf8=False` makes the server leave SMTPUTF8 out of its EHLO reply and refuse it in MAIL FROM."""
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the mailbox server listens on loopback only, not {host!r}")
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs a server tls_context (certificate and key)")
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self.users = dict(users) if users is not None else None
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.auth_require_tls = auth_require_tls
        self.fault = fault
        self.smtputf8 = smtputf8
        self.messages: list[ReceivedMessage] = []
        self.connections = 0  # TCP connections accepted since start
        self.logins: list[str] = []  # usernames that authenticated successfully
        self.helo_names: list[str] = []  # the name of every EHLO/HELO received (STARTTLS sessions greet twice)
        self._server: asyncio.Server | None = None
        self._open: list[SMTP] = []
        self._lock = threading.Lock()

    async def start(self) -> None:
        """Listen on `host`; with port 0 the chosen port is in `.port` afterwards."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # aiosmtpd logs a deprecation warning on every successful AUTH; it says nothing about our use.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: self._protocol(loop),
            host=self.host,
            port=self.port,
            ssl=self.tls_context if self.implicit_tls else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._server is None:
            return
        self._server.close()
        for protocol in self._open:  # asyncio.Server.close() leaves accepted connections open
            if protocol.transport is not None:
                protocol.transport.close()
        self._open.clear()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        self._server = None

    async def __aenter__(self) -> MailboxServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Wait (at most `timeout` seconds) until at least `count` messages arrived; return them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) < count and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return list(self.messages)

    def store(
        self,
        mail_from: str,
        recipients: tuple[str, ...],
        message_id: str | None,
        login: str | None,
        content: bytes,
        *,
        mail_options: tuple[str, ...] = (),
    ) -> ReceivedMessage:
        """Write one message to disk and record it."""
        with self._lock:
            path = self.directory / f"{len(self.messages) + 1:06d}-{_safe_name(message_id)}.eml"
            path.write_bytes(content)
            received = ReceivedMessage(datetime.now(UTC), mail_from, recipients, message_id, login, path, mail_options)
            self.messages.append(received)
        return received

    def _protocol(self, loop: asyncio.AbstractEventLoop) -> SMTP:
        self.connections += 1
        protocol = SMTP(
            _Handler(self),
            hostname="mailbox.local",
            tls_context=None if self.implicit_tls else self.tls_context,
            auth_require_tls=self.auth_require_tls,
            authenticator=self._authenticate,
            enable_SMTPUTF8=self.smtputf8,
            loop=loop,
        )
        self._open.append(protocol)
        return protocol

    def _authenticate(self, smtp: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        username = data.login.decode("utf-8", "replace")
        fault = self.fault("auth", username) if self.fault else None
        if fault is not None and fault.drop:
            _drop(smtp)
            return AuthResult(success=False, handled=True)
        if fault is not None:
            return AuthResult(success=False, handled=False, message=fault.reply())
        password = data.password.decode("utf-8", "replace")
        if self.users is not None and self.users.get(username) != password:
            return AuthResult(success=False, handled=False)
        self.logins.append(username)
        return AuthResult(success=True, auth_data=data)


@contextmanager
def background(server: MailboxServer, timeout: float = 10.0) -> Iterator[MailboxServer]:
    """Run `server` on its own event loop in a daemon thread (for synchronous callers such as CLI tests)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="mailbox", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout)
        yield server
    finally:
        try:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()
