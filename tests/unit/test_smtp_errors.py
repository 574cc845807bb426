"""How the SMTP sender names its failures and itself: certificate problems, other TLS failures, the EHLO name."""

from __future__ import annotations

import socket
import ssl

import aiosmtplib
import pytest

from app.domain.models import EmailAccount
from app.transport.base import AccountAuthError, AccountConfigError, TransientSendError
from app.transport.smtp import default_helo_name, translate_error

ACCOUNT = EmailAccount.from_doc(
    {
        "_id": "a1",
        "email": "bob@sender.example",
        "smtp_host": "smtp.sender.example",
        "smtp_port": 587,
        "smtp_password": "pw-secret",
    }
)


def verification_failure(code: int, found: str) -> Exception:
    """What aiosmtplib raises when OpenSSL refuses the server's certificate (the SSL error as the cause)."""
    cause = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {found}")
    cause.verify_code = code
    cause.verify_message = found
    error = aiosmtplib.SMTPConnectError("Error connecting to smtp.sender.example on port 587")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("code", "found", "fix"),
    [
        (18, "self-signed certificate", "install a certificate from a trusted certificate authority on "),
        (19, "self-signed certificate in certificate chain", "trusted certificate authority"),
        (20, "unable to get local issuer certificate", "trusted certificate authority"),
        (
            62,
            "Hostname mismatch, certificate is not valid for 'smtp.sender.example'.",
            "install a certificate valid for smtp.sender.example, or point smtp_host at the name on the certificate",
        ),
        (64, "IP address mismatch, certificate is not valid for '192.0.2.1'.", "point smtp_host at the name"),
        (10, "certificate has expired", "renew the certificate on smtp.sender.example"),
        (9, "certificate is not yet valid", "correct this machine's clock"),
        (26, "unsupported certificate purpose", "install a certificate valid for smtp.sender.example"),
    ],
)
@pytest.mark.parametrize("during", ["connect", "tls"])
def test_certificate_that_fails_verification_is_the_accounts_configuration(
    code: int, found: str, fix: str, during: str
) -> None:
    error = translate_error(verification_failure(code, found), during, ACCOUNT, timeout=30)

    assert isinstance(error, AccountConfigError)
    assert isinstance(error, AccountAuthError), "the pipeline takes the account out of rotation"
    assert (error.code, error.during) == (None, "tls")
    assert "smtp.sender.example:587" in error.reply
    assert found.rstrip(".") in error.reply
    assert fix in error.reply


@pytest.mark.parametrize(
    "cause",
    [
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed"),
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_other_tls_failures_stay_transient(cause: Exception) -> None:
    error = aiosmtplib.SMTPServerDisconnected("Connection lost")
    error.__context__ = cause

    translated = translate_error(error, "tls", ACCOUNT, timeout=30)

    assert type(translated) is TransientSendError
    assert translated.during == "tls"


def test_certificate_diagnosis_never_shows_the_password() -> None:
    failure = verification_failure(62, "Hostname mismatch, certificate is not valid for 'pw-secret'.")

    assert "pw-secret" not in str(translate_error(failure, "tls", ACCOUNT, timeout=30))


@pytest.mark.parametrize(
    ("fqdn", "hostname", "expected"),
    [
        ("outbound1.sender.example", "outbound1", "outbound1.sender.example"),
        ("vm", "vm", "vm"),
        ("localhost", "vm", "localhost"),
        ("", "vm", "vm"),
        ("  ", "", "localhost"),
    ],
)
def test_default_helo_name_is_this_machines_name_and_never_empty(
    monkeypatch: pytest.MonkeyPatch, fqdn: str, hostname: str, expected: str
) -> None:
    monkeypatch.setattr(socket, "getfqdn", lambda name="": fqdn)
    monkeypatch.setattr(socket, "gethostname", lambda: hostname)

    assert default_helo_name() == expected
