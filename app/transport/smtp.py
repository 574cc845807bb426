"""The aiosmtplib sender: verified TLS, one reused connection per account, every failure classified.

Each account has at most one open connection, guarded by its own lock, reused while the account has work
and dropped after `max_idle_seconds`. Any failure leaves as a base.py SendError; a transient one also
discards the connection, because its state is unknown. A certificate that fails verification is an
AccountConfigError naming what to fix; any other TLS failure is transient. Every connection greets the
server (EHLO) with one name: the configured OUTBOUND_HELO_NAME, else this machine's `default_helo_name()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiosmtplib

from app.domain.models import EmailAccount
from app.logging import get_logger
from app.transport.base import (
    AccountAuthError,
    AccountConfigError,
    OutgoingMessage,
    PermanentSendError,
    SendError,
    SendResult,
    TransientSendError,
    ValidatedMessage,
    build_message,
    classify_smtp_reply,
    validated,
)

StepCallback = Callable[[str], None]


def default_helo_name() -> str:
    """The name this machine greets servers with when OUTBOUND_HELO_NAME is not set: its fully qualified name
    (`socket.getfqdn()`). Kept even without a dot or as "localhost" (servers that mind say so, and the setting
    fixes it), but never empty: the host name, else "localhost"."""
    return socket.getfqdn().strip() or socket.gethostname().strip() or "localhost"


def effective_security(account: EmailAccount, default_starttls: bool) -> str:
    """How to secure the connection: the account's `smtp_security`, else port 465 means implicit TLS,
    else SMTP_STARTTLS decides between STARTTLS and none."""
    if account.security is not None:
        return account.security
    if account.smtp_port == 465:
        return "tls"
    return "starttls" if default_starttls else "none"


def _fingerprint(account: EmailAccount, security: str) -> str:
    # A changed host, port, security or credential must not reuse the old session.
    parts = (account.smtp_host, str(account.smtp_port), security, account.smtp_username or "", account.smtp_password)
    return hashlib.sha256("\0".join(p or "" for p in parts).encode("utf-8")).hexdigest()


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    for _ in range(5):  # exception chains are short; bound the walk anyway
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


# OpenSSL X509_V_ERR_* codes, by what the operator has to change.
_EXPIRED, _NOT_YET_VALID = 10, 9
_WRONG_NAME = frozenset({62, 64})  # host name mismatch, IP address mismatch
_UNTRUSTED = frozenset({2, 18, 19, 20, 21})  # self-signed, or issued by a CA this machine does not trust


def _certificate_fix(code: int | None, host: str) -> str:
    if code == _EXPIRED:
        return f"renew the certificate on {host} (or, if it is valid, correct this machine's clock)"
    if code == _NOT_YET_VALID:
        return f"correct this machine's clock, or install a certificate on {host} that is already valid"
    if code in _UNTRUSTED:
        return (
            f"install a certificate from a trusted certificate authority on {host}, "
            "or point smtp_host at a server that has one"
        )
    if code in _WRONG_NAME:
        return f"install a certificate valid for {host}, or point smtp_host at the name on the certificate"
    return (
        f"install a certificate valid for {host} from a trusted certificate authority, "
        "or point smtp_host at the name on the certificate"
    )


def _certificate_problem(error: ssl.SSLCertVerificationError, account: EmailAccount) -> str:
    code = getattr(error, "verify_code", None)
    found = getattr(error, "verify_message", None) or str(error)
    return (
        f"TLS certificate of {account.smtp_host}:{account.smtp_port} failed verification "
        f"(CERTIFICATE_VERIFY_FAILED: {found.rstrip('.')}): {_certificate_fix(code, account.smtp_host)}"
    )


def _scrub(text: str, account: EmailAccount) -> str:
    if account.smtp_password:
        text = text.replace(account.smtp_password, "***")
    return text


def _code_and_reply(exc: Exception, account: EmailAccount, timeout: float) -> tuple[int | None, str]:
    where = f"{account.smtp_host}:{account.smtp_port}"
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return exc.recipients[0].code, exc.recipients[0].message
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code, exc.message
    if isinstance(exc, TimeoutError):
        return None, f"no reply from {where} within {timeout:g}s"
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return None, f"connection to {where} dropped: {exc}"
    if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
        return None, f"cannot connect to {where}: {exc}"
    return None, f"{type(exc).__name__}: {exc}"


def translate_error(exc: Exception, during: str, account: EmailAccount, timeout: float) -> SendError:
    """Convert any aiosmtplib, OS or timeout error into the classified SendError (password scrubbed)."""
    if isinstance(exc, SendError):
        return exc
    tls_error = _tls_cause(exc)
    if isinstance(tls_error, ssl.SSLCertVerificationError):
        # The certificate is the server's configuration for this account, not the network: retrying cannot help.
        return AccountConfigError(None, _scrub(_certificate_problem(tls_error, account), account), during="tls")
    if tls_error is not None:
        reply = f"TLS with {account.smtp_host}:{account.smtp_port} failed: {tls_error}"
        return TransientSendError(None, _scrub(reply, account), during="tls")
    code, reply = _code_and_reply(exc, account, timeout)
    reply = _scrub(reply, account)
    protocol_refusal = type(exc) in (aiosmtplib.SMTPException, aiosmtplib.SMTPNotSupported)
    if protocol_refusal and during in ("tls", "auth"):
        # The server cannot do what this account is configured for (no STARTTLS, no AUTH): an account problem.
        return AccountAuthError(None, reply, during=during)
    return classify_smtp_reply(code, reply, during=during)(code, reply, during=during)


async def _tls_step(client: aiosmtplib.SMTP, security: str, step: StepCallback) -> None:
    if security == "starttls":
        await client.starttls()
    if security != "none":
        ssl_object = client.get_transport_info("ssl_object")
        version = ssl_object.version() if ssl_object is not None else "?"
        step(f"{'STARTTLS' if security == 'starttls' else 'implicit TLS'}: {version}, certificate verified")
    else:
        step("no TLS (smtp_security=none): the connection is not encrypted")


async def open_connection(
    account: EmailAccount,
    *,
    timeout: float,
    default_starttls: bool,
    tls_context: ssl.SSLContext,
    local_hostname: str | None = None,
    step: StepCallback | None = None,
) -> aiosmtplib.SMTP:
    """Connect, EHLO, secure (STARTTLS or implicit TLS) and log in; raise the classified SendError.

    `local_hostname` is the EHLO name (None: aiosmtplib looks up this machine's name on each connection).
    """
    report = step or (lambda _: None)
    security = effective_security(account, default_starttls)
    client = aiosmtplib.SMTP(
        hostname=account.smtp_host,
        port=account.smtp_port,
        timeout=timeout,
        use_tls=security == "tls",
        start_tls=False,
        tls_context=tls_context,
        local_hostname=local_hostname,
    )
    during = "connect"
    try:
        greeting = await client.connect()
        report(f"connected to {account.smtp_host}:{account.smtp_port} ({greeting.code} {greeting.message})")
        ehlo = await client.ehlo()
        report(f"EHLO accepted ({ehlo.code})")
        during = "tls"
        await _tls_step(client, security, report)
        during = "auth"
        if account.smtp_username:
            reply = await client.login(account.smtp_username, account.smtp_password or "")
            report(f"authenticated as {account.smtp_username} ({reply.code} {reply.message})")
        else:
            report("no smtp_username: authentication skipped")
    except Exception as exc:
        client.close()
        raise translate_error(exc, during, account, timeout) from None
    except BaseException:
        client.close()
        raise
    return client


async def check_account(
    account: EmailAccount,
    *,
    timeout: float,
    default_starttls: bool,
    tls_context: ssl.SSLContext | None = None,
    local_hostname: str | None = None,
    on_step: StepCallback | None = None,
) -> list[str]:
    """Connect, EHLO, TLS and authenticate without sending; return the steps taken, or raise the SendError.

    The same steps, EHLO name (`local_hostname`, default `default_helo_name()`) and error classes as a real
    send, so a certificate problem is reported at the "tls" step as the same AccountConfigError.
    `on_step` sees each step as it happens, so a caller can show progress before a failure.
    """
    steps: list[str] = []

    def step(text: str) -> None:
        steps.append(text)
        if on_step is not None:
            on_step(text)

    context = tls_context or ssl.create_default_context()
    client = await open_connection(
        account,
        timeout=timeout,
        default_starttls=default_starttls,
        tls_context=context,
        local_hostname=local_hostname or await asyncio.to_thread(default_helo_name),
        step=step,
    )
    try:
        reply = await client.quit()
        step(f"QUIT ({reply.code})")
    except aiosmtplib.SMTPException:
        client.close()
        step("closed")
    return steps


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


def _envelope(message: OutgoingMessage | ValidatedMessage, now: datetime) -> _Envelope:
    checked = validated(message)
    payload = build_message(checked, now=now)
    return _Envelope(checked.message.message_id, checked.mail_from, checked.rcpt_to, payload)


class SmtpSender:
    """Sends through each account's SMTP server, reusing one connection per account.

    `local_hostname` is the EHLO/HELO name for every connection (OUTBOUND_HELO_NAME); None means
    `default_helo_name()`, looked up once, on the first connection.
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
    ) -> None:
        self.timeout = timeout
        self.default_starttls = default_starttls
        self.tls_context = tls_context or ssl.create_default_context()
        self.max_idle_seconds = max_idle_seconds
        self.local_hostname = local_hostname
        self.clock = clock
        self._connections: dict[str, _Connection] = {}

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

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _drop_idle(self) -> None:
        # Entries stay (one per account): removing one could orphan a task about to take its lock.
        now = self._now()
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
        if self.local_hostname is None:
            # Once per sender, off the event loop: the lookup may wait on DNS.
            self.local_hostname = await asyncio.to_thread(default_helo_name)
        log = get_logger(account_id=account.id)
        log.debug("smtp.connecting", host=account.smtp_host, port=account.smtp_port, security=security)
        conn.client = await open_connection(
            account,
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
        during = "mail"
        try:
            await client.mail(envelope.sender)
            during = "rcpt"
            await client.rcpt(envelope.recipient)
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
        if not isinstance(err, PermanentSendError) or conn.client is None or not conn.client.is_connected:
            conn.discard()
            return
        try:
            await conn.client.rset()  # a refused recipient leaves the session usable for the next one
            conn.last_used = self._now()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            conn.discard()
