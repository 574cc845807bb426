"""The SMTP sender against a real aiosmtpd server on 127.0.0.1: delivery, reuse, auth, faults, TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions
from app.domain.models import EmailAccount
from app.store import schema
from app.store.client import Database
from app.transport.base import (
    AccountAuthError,
    AccountConfigError,
    OutgoingMessage,
    PermanentSendError,
    TransientSendError,
)
from app.transport.mailbox import Fault, MailboxServer
from app.transport.send_errors import UnsupportedAddressError
from app.transport.smtp import SmtpSender, check_account, default_helo_name
from tests.certificates import TestAuthority, self_signed, server_context
from tests.factories import add_account, add_campaign, add_lead

PASSWORD = "s3cret-app-password"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own issuer)."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> TestAuthority:
    """A private certificate authority the tests can make a client trust."""
    return TestAuthority.create(tmp_path_factory.mktemp("ca"))


def trusting_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def account(port: int, **changes: Any) -> EmailAccount:
    fields: dict[str, Any] = {
        "id": "acct1",
        "email": "bob@sender.example",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_username": "bob",
        "smtp_password": PASSWORD,
        "status": "active",
        "security": "none",
        **changes,
    }
    return EmailAccount(**fields)


def outgoing(n: int = 0, to: str = "ann@example.com", html: str | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=f"<outbound.lead{n}.1.0@sender.example>",
        from_email="bob@sender.example",
        from_name="Bob Smith",
        to_email=to,
        to_name="Ann Lee",
        subject=f"Hello {n}",
        text=f"Hi Ann,\nmessage {n}",
        html=html,
    )


def parse(path: Path) -> EmailMessage:
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(part: EmailMessage) -> str:
    return str(part.get_content()).replace("\r\n", "\n").rstrip("\n")


class Faults:
    """A fault hook from a list of (stage, fault) to apply once each, in order."""

    def __init__(self, *planned: tuple[str, Fault]) -> None:
        self.planned = list(planned)
        self.seen: list[tuple[str, str]] = []

    def __call__(self, stage: str, value: str) -> Fault | None:
        self.seen.append((stage, value))
        if self.planned and self.planned[0][0] == stage:
            return self.planned.pop(0)[1]
        return None


@pytest.fixture
async def mailbox(tmp_path: Path) -> AsyncIterator[MailboxServer]:
    server = MailboxServer(tmp_path / "mail", users={"bob": PASSWORD})
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def sender() -> AsyncIterator[SmtpSender]:
    smtp = SmtpSender(timeout=10, local_hostname="client.test")
    try:
        yield smtp
    finally:
        await smtp.close()


async def test_message_arrives_with_exact_headers_and_bodies(mailbox: MailboxServer, sender: SmtpSender) -> None:
    result = await sender.send(account(mailbox.port), outgoing(1, html="<p>Hi Ann</p>"))

    assert result.code == 250
    assert result.message_id == "<outbound.lead1.1.0@sender.example>"
    assert result.accepted_at.tzinfo is not None
    [received] = mailbox.messages
    assert received.mail_from == "bob@sender.example"
    assert received.recipients == ("ann@example.com",)
    assert received.message_id == "<outbound.lead1.1.0@sender.example>"
    assert received.login == "bob"
    msg = parse(received.path)
    assert msg["From"] == "Bob Smith <bob@sender.example>"
    assert msg["To"] == "Ann Lee <ann@example.com>"
    assert msg["Subject"] == "Hello 1"
    assert msg["Message-ID"] == "<outbound.lead1.1.0@sender.example>"
    assert [(p.get_content_type(), body(p)) for p in msg.iter_parts()] == [
        ("text/plain", "Hi Ann,\nmessage 1"),
        ("text/html", "<p>Hi Ann</p>"),
    ]


async def test_several_sends_of_one_account_share_one_connection(mailbox: MailboxServer, sender: SmtpSender) -> None:
    for n in range(4):
        await sender.send(account(mailbox.port), outgoing(n))

    assert mailbox.connections == 1
    assert [m.message_id for m in mailbox.messages] == [f"<outbound.lead{n}.1.0@sender.example>" for n in range(4)]


async def test_concurrent_sends_of_one_account_are_serialised_on_one_connection(
    mailbox: MailboxServer, sender: SmtpSender
) -> None:
    await asyncio.wait_for(asyncio.gather(*(sender.send(account(mailbox.port), outgoing(n)) for n in range(5))), 30)

    assert mailbox.connections == 1
    assert len(mailbox.messages) == 5


async def test_each_account_gets_its_own_connection(mailbox: MailboxServer, sender: SmtpSender) -> None:
    await sender.send(account(mailbox.port, id="a1"), outgoing(1))
    await sender.send(account(mailbox.port, id="a2"), outgoing(2))

    assert mailbox.connections == 2


async def test_idle_connection_is_dropped_and_reopened(mailbox: MailboxServer) -> None:
    sender = SmtpSender(timeout=10, max_idle_seconds=0, local_hostname="client.test")
    try:
        await sender.send(account(mailbox.port), outgoing(1))
        await sender.send(account(mailbox.port), outgoing(2))
    finally:
        await sender.close()

    assert mailbox.connections == 2
    assert len(mailbox.messages) == 2


async def test_connections_left_idle_by_other_accounts_are_closed_by_a_later_send(mailbox: MailboxServer) -> None:
    sender = SmtpSender(timeout=10, max_idle_seconds=0.2, local_hostname="client.test")
    try:
        await sender.send(account(mailbox.port, id="a1"), outgoing(1))
        await sender.send(account(mailbox.port, id="a2"), outgoing(2))
        assert sender.open_connections() == 2
        await asyncio.sleep(0.5)  # both idle past max_idle_seconds
        await sender.send(account(mailbox.port, id="a2"), outgoing(3))

        assert sender.open_connections() == 1  # a1's was closed; a2's was reopened for its send
    finally:
        await sender.close()
    assert len(mailbox.messages) == 3


async def test_changed_credentials_are_not_sent_over_the_old_session(
    mailbox: MailboxServer, sender: SmtpSender
) -> None:
    await sender.send(account(mailbox.port), outgoing(1))
    with pytest.raises(AccountAuthError):
        await sender.send(account(mailbox.port, smtp_password="changed"), outgoing(2))

    assert mailbox.connections == 2
    assert len(mailbox.messages) == 1


async def test_wrong_password_is_an_account_auth_error_without_the_password(
    mailbox: MailboxServer, sender: SmtpSender
) -> None:
    with pytest.raises(AccountAuthError) as caught:
        await sender.send(account(mailbox.port, smtp_password="wrong-password"), outgoing())

    assert caught.value.code == 535
    assert caught.value.during == "auth"
    assert "wrong-password" not in str(caught.value)
    assert mailbox.messages == []


async def test_server_without_auth_over_plain_text_is_an_account_auth_error(tmp_path: Path, sender: SmtpSender) -> None:
    async with MailboxServer(tmp_path / "mail", auth_require_tls=True) as server:
        with pytest.raises(AccountAuthError) as caught:
            await sender.send(account(server.port), outgoing())

    assert caught.value.during == "auth"
    assert "AUTH" in caught.value.reply


async def test_account_without_username_sends_without_login(mailbox: MailboxServer, sender: SmtpSender) -> None:
    await sender.send(account(mailbox.port, smtp_username=None, smtp_password=None), outgoing())

    assert mailbox.messages[0].login is None


async def test_550_on_rcpt_is_permanent_and_keeps_the_connection(tmp_path: Path, sender: SmtpSender) -> None:
    faults = Faults(("rcpt", Fault(550, "5.1.1 <ann@example.com>: no such user")))
    async with MailboxServer(tmp_path / "mail", fault=faults) as server:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(account(server.port), outgoing(1))
        await sender.send(account(server.port), outgoing(2))

    assert caught.value.code == 550
    assert caught.value.reply == "5.1.1 <ann@example.com>: no such user"
    assert caught.value.during == "rcpt"
    assert [m.message_id for m in server.messages] == ["<outbound.lead2.1.0@sender.example>"]
    assert server.connections == 1


async def test_554_on_data_is_permanent(tmp_path: Path, sender: SmtpSender) -> None:
    async with MailboxServer(tmp_path / "mail", fault=Faults(("data", Fault(554, "5.7.1 spam")))) as server:
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(account(server.port), outgoing())

    assert (caught.value.code, caught.value.during) == (554, "data")
    assert server.messages == []


@pytest.mark.parametrize("stage", ["rcpt", "data"])
async def test_451_is_transient_and_the_next_send_reconnects(tmp_path: Path, sender: SmtpSender, stage: str) -> None:
    async with MailboxServer(tmp_path / "mail", fault=Faults((stage, Fault(451, "4.3.0 try again later")))) as server:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(account(server.port), outgoing(1))
        await sender.send(account(server.port), outgoing(2))

    assert (caught.value.code, caught.value.reply, caught.value.during) == (451, "4.3.0 try again later", stage)
    assert not caught.value.uncertain
    assert server.connections == 2
    assert len(server.messages) == 1


async def test_dropped_connection_is_transient_and_the_next_send_reconnects(tmp_path: Path, sender: SmtpSender) -> None:
    async with MailboxServer(tmp_path / "mail", fault=Faults(("rcpt", Fault(drop=True)))) as server:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(account(server.port), outgoing(1))
        await sender.send(account(server.port), outgoing(2))

    assert caught.value.code is None
    assert caught.value.during == "rcpt"
    assert not caught.value.uncertain
    assert server.connections == 2
    assert [m.message_id for m in server.messages] == ["<outbound.lead2.1.0@sender.example>"]


async def test_drop_while_the_message_was_in_flight_is_uncertain(tmp_path: Path, sender: SmtpSender) -> None:
    async with MailboxServer(tmp_path / "mail", fault=Faults(("data", Fault(drop=True)))) as server:
        with pytest.raises(TransientSendError) as caught:
            await sender.send(account(server.port), outgoing())

    assert caught.value.during == "data"
    assert caught.value.uncertain


async def test_reused_connection_closed_by_the_server_is_reopened_before_anything_is_sent(
    tmp_path: Path, sender: SmtpSender
) -> None:
    faults = Faults()
    async with MailboxServer(tmp_path / "mail", fault=faults) as server:
        await sender.send(account(server.port), outgoing(1))
        faults.planned.append(("mail", Fault(drop=True)))  # the server hangs up on the idle session
        result = await sender.send(account(server.port), outgoing(2))

    assert result.code == 250
    assert server.connections == 2
    assert len(server.messages) == 2


async def test_auth_fault_535_is_an_account_auth_error(tmp_path: Path, sender: SmtpSender) -> None:
    refuse = Fault(535, "5.7.8 Username and Password not accepted")
    # Every AUTH attempt is refused: the client tries each mechanism the server offers.
    async with MailboxServer(tmp_path / "mail", fault=lambda stage, _: refuse if stage == "auth" else None) as server:
        with pytest.raises(AccountAuthError) as caught:
            await sender.send(account(server.port), outgoing())

    assert caught.value.code == 535
    assert "not accepted" in caught.value.reply


async def test_connection_refused_is_transient_during_connect(sender: SmtpSender) -> None:
    port = await closed_port()
    with pytest.raises(TransientSendError) as caught:
        await sender.send(account(port), outgoing())

    assert caught.value.during == "connect"
    assert caught.value.code is None


async def test_server_that_never_greets_times_out_as_transient() -> None:
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    sender = SmtpSender(timeout=0.5, local_hostname="client.test")
    try:
        with pytest.raises(TransientSendError) as caught:
            await asyncio.wait_for(sender.send(account(port), outgoing()), 10)
    finally:
        await sender.close()
        silent.close()

    assert caught.value.during == "connect"
    assert "no reply" in caught.value.reply or "Timed out" in caught.value.reply


async def closed_port() -> int:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    return port


TlsSetup = Callable[[Path, tuple[Path, Path]], MailboxServer]


def implicit_tls(directory: Path, certificate: tuple[Path, Path]) -> MailboxServer:
    return MailboxServer(directory, users={"bob": PASSWORD}, tls_context=server_context(certificate), implicit_tls=True)


def starttls(directory: Path, certificate: tuple[Path, Path]) -> MailboxServer:
    return MailboxServer(
        directory, users={"bob": PASSWORD}, tls_context=server_context(certificate), auth_require_tls=True
    )


BOTH_TLS_MODES = pytest.mark.parametrize(("make_server", "security"), [(implicit_tls, "tls"), (starttls, "starttls")])


async def certificate_refusal(
    server: MailboxServer, security: str, tls_context: ssl.SSLContext | None = None
) -> AccountAuthError:
    """Send once through `server` and return the account error the sender raised."""
    sender = SmtpSender(timeout=10, tls_context=tls_context, local_hostname="client.test")
    try:
        with pytest.raises(AccountAuthError) as caught:
            await sender.send(account(server.port, security=security), outgoing())
    finally:
        await sender.close()
    return caught.value


@BOTH_TLS_MODES
async def test_self_signed_certificate_takes_the_account_out_of_rotation(
    tmp_path: Path, certificate: tuple[Path, Path], make_server: TlsSetup, security: str
) -> None:
    async with make_server(tmp_path / "mail", certificate) as server:
        error = await certificate_refusal(server, security)

    assert isinstance(error, AccountConfigError)
    assert error.during == "tls"
    assert error.code is None
    assert f"127.0.0.1:{server.port}" in error.reply
    assert "CERTIFICATE_VERIFY_FAILED" in error.reply
    assert "self-signed certificate" in error.reply
    assert "install a certificate from a trusted certificate authority on 127.0.0.1" in error.reply
    assert server.messages == []


@BOTH_TLS_MODES
async def test_certificate_for_another_host_names_both_ways_to_fix_it(
    tmp_path: Path, authority: TestAuthority, make_server: TlsSetup, security: str
) -> None:
    elsewhere = authority.issue("elsewhere", ["mail.elsewhere.example"])
    async with make_server(tmp_path / "mail", elsewhere) as server:
        error = await certificate_refusal(server, security, authority.client_context())

    assert isinstance(error, AccountConfigError)
    assert error.during == "tls"
    assert f"127.0.0.1:{server.port}" in error.reply
    assert "certificate is not valid for '127.0.0.1'" in error.reply
    assert "install a certificate valid for 127.0.0.1, or point smtp_host at the name on the certificate" in error.reply
    assert server.messages == []


@BOTH_TLS_MODES
async def test_expired_certificate_says_to_renew_it(
    tmp_path: Path, authority: TestAuthority, make_server: TlsSetup, security: str
) -> None:
    expired = authority.issue(
        "expired",
        ["127.0.0.1"],
        not_before=datetime(2020, 1, 1, tzinfo=UTC),
        not_after=datetime(2020, 1, 2, tzinfo=UTC),
    )
    async with make_server(tmp_path / "mail", expired) as server:
        error = await certificate_refusal(server, security, authority.client_context())

    assert isinstance(error, AccountConfigError)
    assert f"127.0.0.1:{server.port}" in error.reply
    assert "certificate has expired" in error.reply
    assert "renew the certificate on 127.0.0.1" in error.reply


async def hang_up_on_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, starttls: bool) -> None:
    """A server that takes the TLS ClientHello and resets the connection, as a failing middlebox would."""
    if starttls:
        writer.write(b"220 flaky.test ESMTP\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250-flaky.test\r\n250 STARTTLS\r\n")
        await reader.readline()  # STARTTLS
        writer.write(b"220 go ahead\r\n")
    await reader.read(1)  # the first byte of the ClientHello
    writer.transport.abort()


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_connection_reset_during_the_tls_handshake_stays_transient(security: str) -> None:
    server = await asyncio.start_server(
        lambda r, w: hang_up_on_tls(r, w, starttls=security == "starttls"), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    sender = SmtpSender(timeout=5, local_hostname="client.test")
    try:
        with pytest.raises(TransientSendError) as caught:
            await asyncio.wait_for(sender.send(account(port, security=security), outgoing()), 20)
    finally:
        await sender.close()
        server.close()
        await server.wait_closed()

    assert not isinstance(caught.value, AccountAuthError)
    assert caught.value.code is None


@BOTH_TLS_MODES
async def test_certificate_from_a_trusted_ca_is_accepted(
    tmp_path: Path, certificate: tuple[Path, Path], make_server: TlsSetup, security: str
) -> None:
    sender = SmtpSender(timeout=10, tls_context=trusting_context(certificate), local_hostname="client.test")
    async with make_server(tmp_path / "mail", certificate) as server:
        try:
            await sender.send(account(server.port, security=security), outgoing(1))
            await sender.send(account(server.port, security=security), outgoing(2))
        finally:
            await sender.close()

    assert [m.login for m in server.messages] == ["bob", "bob"]
    assert server.connections == 1


async def test_required_starttls_on_a_server_without_it_is_an_account_error(
    mailbox: MailboxServer, sender: SmtpSender
) -> None:
    with pytest.raises(AccountAuthError) as caught:
        await sender.send(account(mailbox.port, security="starttls"), outgoing())

    assert caught.value.during == "tls"
    assert "STARTTLS" in caught.value.reply
    assert mailbox.messages == []


async def test_unset_security_follows_the_starttls_default(mailbox: MailboxServer) -> None:
    plain = SmtpSender(timeout=10, default_starttls=False, local_hostname="client.test")
    strict = SmtpSender(timeout=10, default_starttls=True, local_hostname="client.test")
    try:
        await plain.send(account(mailbox.port, security=None), outgoing(1))
        with pytest.raises(AccountAuthError):
            await strict.send(account(mailbox.port, security=None), outgoing(2))
    finally:
        await plain.close()
        await strict.close()

    assert len(mailbox.messages) == 1


async def test_check_account_reports_each_step(
    tmp_path: Path, certificate: tuple[Path, Path], mailbox: MailboxServer
) -> None:
    async with starttls(tmp_path / "tls-mail", certificate) as server:
        steps = await check_account(
            account(server.port, security="starttls"),
            timeout=10,
            default_starttls=True,
            tls_context=trusting_context(certificate),
        )

    assert steps[0].startswith(f"connected to 127.0.0.1:{server.port}")
    assert any(s.startswith("STARTTLS: TLS") for s in steps)
    assert any("authenticated as bob" in s for s in steps)
    assert not any(PASSWORD in s for s in steps)
    assert server.messages == []


async def test_check_account_raises_the_classified_error(mailbox: MailboxServer) -> None:
    seen: list[str] = []
    with pytest.raises(AccountAuthError):
        await check_account(
            account(mailbox.port, smtp_password="nope"), timeout=10, default_starttls=True, on_step=seen.append
        )

    assert seen[0].startswith("connected to")


async def test_internationalised_recipient_domain_is_delivered_in_ascii(
    mailbox: MailboxServer, sender: SmtpSender
) -> None:
    await sender.send(account(mailbox.port), outgoing(to="ann@exämple.com"))

    assert mailbox.messages[0].recipients == ("ann@xn--exmple-cua.com",)


async def test_check_account_reports_the_certificate_problem_at_the_tls_step(
    tmp_path: Path, authority: TestAuthority
) -> None:
    seen: list[str] = []
    async with starttls(tmp_path / "mail", authority.issue("elsewhere", ["mail.elsewhere.example"])) as server:
        with pytest.raises(AccountConfigError) as caught:
            await check_account(
                account(server.port, security="starttls"),
                timeout=10,
                default_starttls=True,
                tls_context=authority.client_context(),
                on_step=seen.append,
            )
        sent = await certificate_refusal(server, "starttls", authority.client_context())

    assert caught.value.during == "tls"
    assert str(caught.value) == str(sent), "test-smtp and the dispatcher give the same diagnosis"
    assert [step.split(" ")[0] for step in seen] == ["connected", "EHLO"]


async def test_sender_greets_the_server_with_its_configured_name(mailbox: MailboxServer) -> None:
    sender = SmtpSender(timeout=10, local_hostname="mx1.sender.example")
    try:
        await sender.send(account(mailbox.port), outgoing(1))
        await sender.send(account(mailbox.port), outgoing(2))
    finally:
        await sender.close()

    assert mailbox.helo_names == ["mx1.sender.example"], "one EHLO for the one reused connection"


async def test_sender_greets_again_with_the_same_name_after_starttls(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    sender = SmtpSender(timeout=10, tls_context=trusting_context(certificate), local_hostname="[192.0.2.1]")
    async with starttls(tmp_path / "mail", certificate) as server:
        try:
            await sender.send(account(server.port, security="starttls"), outgoing())
        finally:
            await sender.close()

    assert server.helo_names == ["[192.0.2.1]", "[192.0.2.1]"]


async def test_check_account_greets_with_the_configured_name(mailbox: MailboxServer) -> None:
    await check_account(account(mailbox.port), timeout=10, default_starttls=False, local_hostname="mx1.sender.example")

    assert mailbox.helo_names == ["mx1.sender.example"]


async def test_without_a_configured_name_the_sender_greets_with_this_machines_name(mailbox: MailboxServer) -> None:
    sender = SmtpSender(timeout=10)
    try:
        await sender.send(account(mailbox.port), outgoing())
    finally:
        await sender.close()

    assert mailbox.helo_names == [default_helo_name()]
    assert mailbox.helo_names[0]


async def test_mailbox_records_a_plain_helo_too(mailbox: MailboxServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", mailbox.port)
    try:
        await reader.readline()  # greeting
        writer.write(b"HELO old-client.example\r\n")
        reply = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()

    assert reply.startswith(b"250 ")
    assert mailbox.helo_names == ["old-client.example"]


# Internationalised addresses (RFC 6531 SMTPUTF8)


async def test_a_non_ascii_local_part_is_sent_with_smtputf8_when_the_server_offers_it(
    mailbox: MailboxServer, sender: SmtpSender
) -> None:
    await sender.send(account(mailbox.port), outgoing(1, to="zoë@müller.example"))

    [received] = mailbox.messages
    assert received.recipients == ("zoë@xn--mller-kva.example",)
    assert "SMTPUTF8" in received.mail_options
    msg = message_from_bytes(received.path.read_bytes(), policy=policy.SMTPUTF8)
    assert str(msg["To"]) == "Ann Lee <zoë@müller.example>"
    assert b"<zo\xc3\xab@m\xc3\xbcller.example>" in received.path.read_bytes()


async def test_an_ascii_message_never_asks_for_smtputf8(mailbox: MailboxServer, sender: SmtpSender) -> None:
    await sender.send(account(mailbox.port), outgoing(1, to="ann@exämple.com"))

    [received] = mailbox.messages
    assert (received.recipients, received.mail_options) == (("ann@xn--exmple-cua.com",), ())


async def test_without_smtputf8_only_the_non_ascii_recipient_fails_and_the_connection_goes_on(
    tmp_path: Path, sender: SmtpSender
) -> None:
    async with MailboxServer(tmp_path / "mail", smtputf8=False) as server:
        await sender.send(account(server.port), outgoing(1))
        with pytest.raises(PermanentSendError) as caught:
            await sender.send(account(server.port), outgoing(2, to="zoë@müller.example"))
        await sender.send(account(server.port), outgoing(3, to="carl@example.com"))

    assert isinstance(caught.value, UnsupportedAddressError)
    assert caught.value.reply == (
        "the recipient's address has a non-ASCII local part and 127.0.0.1 does not offer SMTPUTF8 (RFC 6531)"
    )
    assert (caught.value.code, caught.value.during, caught.value.uncertain) == (None, "rcpt", False)
    assert [m.recipients for m in server.messages] == [("ann@example.com",), ("carl@example.com",)]
    assert server.connections == 1


async def test_a_non_ascii_account_address_without_smtputf8_is_the_accounts_configuration(
    tmp_path: Path, sender: SmtpSender
) -> None:
    async with MailboxServer(tmp_path / "mail", smtputf8=False) as server:
        message = replace(outgoing(1), from_email="björn@sender.example")
        with pytest.raises(AccountConfigError) as caught:
            await sender.send(account(server.port, email="björn@sender.example"), message)

    assert "the account's address björn@sender.example has a non-ASCII local part" in caught.value.reply
    assert server.messages == []


async def test_a_dispatcher_pass_fails_only_the_non_ascii_recipient_of_a_lead_when_the_server_lacks_smtputf8(
    db: Database, tmp_path: Path
) -> None:
    async with MailboxServer(tmp_path / "mail", smtputf8=False) as server:
        campaign = await add_campaign(db)
        await add_account(db, server.port, email="s@example.com")
        people = [{"email": "ann@x.example"}, {"email": "zoë@müller.example"}, {"email": "cy@x.example"}]
        lead = await add_lead(db, campaign, people)
        sender = SmtpSender(timeout=10)
        try:
            options = DispatcherOptions(once=True, poll_interval=0.05, concurrency=4)
            stats = await build_dispatcher(db, Settings(), sender, options).run()
        finally:
            await sender.close()
        delivered = [m.recipients for m in server.messages]

    assert (stats.outcomes["sent"], stats.outcomes["failed"]) == (2, 1)
    assert delivered == [("ann@x.example",), ("cy@x.example",)]
    doc = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead})
    assert doc is not None
    failed = doc["progress"]["processed_recipients"]["step_1_recipient_1"]
    assert failed["status"] == "failed"
    assert failed["error"] == (
        "the recipient's address has a non-ASCII local part and 127.0.0.1 does not offer SMTPUTF8 (RFC 6531)"
    )
    assert await db[schema.CAMPAIGNS].count_documents({"status": "active"}) == 1  # not paused
    # The address is not known to be bad (another server may take it): failed, not bounced, not suppressed.
    assert [r["status"] for r in doc["lead_data"]] == ["contacted", "failed", "contacted"]
    assert await db[schema.SUPPRESSIONS].count_documents({}) == 0
