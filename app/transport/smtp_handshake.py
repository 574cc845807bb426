"""Opening an SMTP session for an account: connect, EHLO, TLS (verified) and AUTH, each step reported.

`open_connection` is what the sender uses; `check_account` (behind `outbound test-smtp`) takes the same steps
with the same EHLO name and error classes, then quits without sending. Every connection greets the server
(EHLO) with one name: the configured OUTBOUND_HELO_NAME, else this machine's `default_helo_name()`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

import aiosmtplib

from app.domain.accounts import EmailAccount
from app.transport.smtp_errors import translate_error

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
