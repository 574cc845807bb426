"""What went wrong in an SMTP exchange: aiosmtplib, OS, timeout and TLS failures as classified SendErrors.

A certificate that fails verification is an AccountConfigError saying what the operator has to change; any
other TLS failure is transient. Every reply written here has the account's password scrubbed out.
"""

from __future__ import annotations

import ssl

import aiosmtplib

from app.domain.accounts import EmailAccount
from app.transport.send_errors import (
    AccountAuthError,
    AccountConfigError,
    SendError,
    TransientSendError,
    classify_smtp_reply,
)


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
