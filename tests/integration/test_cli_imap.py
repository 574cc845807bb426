"""`test-imap` through the CLI, against the test database and a real IMAP server process (pymap) on loopback."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from tests.certificates import TestAuthority
from tests.imap_server import IMAP_PASSWORD, IMAP_USER, ImapServer, StartImapServer, free_port, silent_port

ACCOUNT = ObjectId("66a000000000000000000005")


def add_account(sync_db: Any, **fields: Any) -> None:
    """An account whose IMAP login is its SMTP one (imap_username and imap_password are not set)."""
    sync_db.email_accounts.insert_one(
        {
            "_id": ACCOUNT,
            "email": "alice@mail.example",
            "smtp_host": "127.0.0.1",
            "smtp_port": 2525,
            "smtp_username": IMAP_USER,
            "smtp_password": IMAP_PASSWORD,
            "status": "active",
            **fields,
        }
    )


@pytest.fixture
def tls_server(start_imap_server: StartImapServer, imap_authority: TestAuthority) -> ImapServer:
    certificate = imap_authority.issue("imap-cli", ["127.0.0.1", "localhost"])
    return start_imap_server(certificate=certificate, implicit_tls=True)


def test_imap_check_passes_and_reports_each_step(
    cli: Any, sync_db: Any, tls_server: ImapServer, imap_authority: TestAuthority
) -> None:
    add_account(sync_db, imap_host="127.0.0.1", imap_port=tls_server.tls_port)
    uid = tls_server.append("INBOX", b"Subject: hello\r\n\r\nhi\r\n")

    # SSL_CERT_FILE: this machine trusts the test authority, as it would trust a public one.
    result = cli("test-imap", str(ACCOUNT), "--timeout", "10", env={"SSL_CERT_FILE": str(imap_authority.ca)})

    assert result.exit_code == 0, result.output
    assert f"via IMAP 127.0.0.1:{tls_server.tls_port}, security tls, folders INBOX" in result.stdout
    assert f"✓ connect: connected to 127.0.0.1:{tls_server.tls_port}" in result.stdout
    assert "✓ secure: implicit TLS: TLSv1" in result.stdout
    assert f"✓ login: logged in as {IMAP_USER}" in result.stdout
    assert "✓ folders: 1 folders: INBOX" in result.stdout
    assert "✓ folder: INBOX: 1 messages" in result.stdout
    assert "IMAP check passed" in result.stdout
    assert IMAP_PASSWORD not in result.output
    assert tls_server.flags_of("INBOX", uid) == ()  # examined, not read


def test_imap_check_over_starttls(
    cli: Any, sync_db: Any, tls_server: ImapServer, imap_authority: TestAuthority
) -> None:
    add_account(sync_db, imap_host="127.0.0.1", imap_port=tls_server.port, imap_security="starttls")

    result = cli("test-imap", str(ACCOUNT), "--timeout", "10", env={"SSL_CERT_FILE": str(imap_authority.ca)})

    assert result.exit_code == 0, result.output
    assert "✓ secure: STARTTLS: TLSv1" in result.stdout


def test_imap_check_wrong_password_shows_the_failed_step_and_the_fix(
    cli: Any, sync_db: Any, imap_server: ImapServer
) -> None:
    fields = {"imap_security": "none", "imap_password": "not-the-password"}
    add_account(sync_db, imap_host="127.0.0.1", imap_port=imap_server.port, **fields)

    result = cli("test-imap", str(ACCOUNT), "--timeout", "10")

    assert result.exit_code == 1
    assert "✗ login: " in result.stdout
    assert "IMAP check failed at login" in result.stderr and "AUTHENTICATIONFAILED" in result.stderr
    assert "app password" in result.stderr.split("hint:")[1]
    assert "not-the-password" not in result.output and IMAP_PASSWORD not in result.output


def test_imap_check_untrusted_certificate_names_the_host(cli: Any, sync_db: Any, tls_server: ImapServer) -> None:
    add_account(sync_db, imap_host="127.0.0.1", imap_port=tls_server.tls_port)

    result = cli("test-imap", str(ACCOUNT), "--timeout", "10")  # the test authority is not trusted here

    assert result.exit_code == 1
    assert "✓ connect" in result.stdout and "✗ secure" in result.stdout
    assert f"certificate of 127.0.0.1:{tls_server.tls_port} is not trusted" in result.stderr


def test_imap_check_unreachable_server_hints_at_host_and_port(cli: Any, sync_db: Any) -> None:
    add_account(sync_db, imap_host="127.0.0.1", imap_port=free_port())

    result = cli("test-imap", str(ACCOUNT), "--timeout", "5")

    assert result.exit_code == 1
    assert "IMAP check failed at connect" in result.stderr
    assert "imap_host and imap_port" in result.stderr


def test_imap_check_gives_up_after_the_timeout(cli: Any, sync_db: Any) -> None:
    with silent_port() as port:
        add_account(sync_db, imap_host="127.0.0.1", imap_port=port)
        result = cli("test-imap", str(ACCOUNT), "--timeout", "0.5")

    assert result.exit_code == 1
    assert "did not answer within 0.5 s" in result.stderr


def test_imap_check_of_an_account_without_imap_host_says_what_to_set(cli: Any, sync_db: Any) -> None:
    add_account(sync_db)

    result = cli("test-imap", str(ACCOUNT))

    assert result.exit_code == 1
    assert "set imap_host (and imap_port, imap_security) on the account" in result.stderr


def test_imap_check_unknown_account_is_refused(cli: Any, sync_db: Any) -> None:
    result = cli("test-imap", str(ObjectId()))

    assert result.exit_code == 1
    assert "not found" in result.stderr
