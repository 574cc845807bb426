"""What went wrong reading a mailbox: IMAPClient, ssl and socket failures as one ImapError with its stage.

Apart from app/transport/imap.py (the session itself): here is only the translation of a failure into what
failed, naming the server, and what the operator should change, so that `Mailbox` and `check` say the same.
"""

from __future__ import annotations

import imaplib
import socket
import ssl

from imapclient.exceptions import LoginError

from app.domain.accounts import ImapSettings

STAGES = ("connect", "tls", "login", "list", "select", "fetch")
_CONNECT_FIX = "check imap_host and imap_port, and that no firewall blocks outgoing connections to that port"
_TLS_FIX = "check imap_security (tls: usually imap_port 993; starttls: usually 143) and the server's certificate"
_LOGIN_FIX = "check imap_username and imap_password; Gmail and Microsoft 365 need an app password"
# What OpenSSL says when the other side answered a TLS handshake with plain text (an IMAP greeting).
_PLAIN_TEXT_REPLIES = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")
# OpenSSL's X509_V_ERR_* codes that have a fix of their own.
_CERT_EXPIRED, _CERT_SELF_SIGNED, _CERT_SELF_SIGNED_IN_CHAIN, _CERT_UNKNOWN_ISSUER = 10, 18, 19, 20
_CERT_WRONG_HOST, _CERT_WRONG_IP = 62, 64


class ImapError(Exception):
    """Reading a mailbox failed at `stage` (one of STAGES): `what` failed (naming the server), and the `fix`."""

    def __init__(self, stage: str, what: str, fix: str) -> None:
        super().__init__(f"{what}: {fix}")
        self.stage = stage
        self.what = what
        self.fix = fix


def _cert_problem(exc: ssl.SSLCertVerificationError, host: str) -> str:
    code = exc.verify_code
    if code in (_CERT_WRONG_HOST, _CERT_WRONG_IP):
        return f"it was issued for another host name: set imap_host to the name on {host}'s certificate"
    if code == _CERT_EXPIRED:
        return "it has expired (or is not valid yet): the server's certificate must be renewed"
    if code in (_CERT_SELF_SIGNED, _CERT_SELF_SIGNED_IN_CHAIN, _CERT_UNKNOWN_ISSUER):
        return (
            "it is self-signed or signed by an authority this machine does not trust: the server needs a "
            "certificate from a public authority (or this machine must trust its authority, e.g. SSL_CERT_FILE)"
        )
    return "the server's certificate must be trusted, issued for imap_host and not expired"


def _tls_error(exc: ssl.SSLError, settings: ImapSettings) -> ImapError:
    where = settings.address
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        return ImapError(
            "tls", f"the TLS certificate of {where} is not trusted ({reason})", _cert_problem(exc, settings.host)
        )
    if settings.security == "tls" and str(exc.reason).upper() in _PLAIN_TEXT_REPLIES:
        return ImapError(
            "tls",
            f"{where} answered in plain text, not TLS (probably a STARTTLS port)",
            "set imap_security starttls (usually imap_port 143), or the server's implicit TLS port (usually 993)",
        )
    return ImapError("tls", f"the TLS handshake with {where} failed ({exc})", _TLS_FIX)


def _os_error(exc: OSError, stage: str, settings: ImapSettings) -> ImapError:
    where = settings.address
    if isinstance(exc, TimeoutError):
        what = "did not answer" if stage == "connect" else f"stopped answering during {stage}"
        return ImapError(stage, f"{where} {what} within {settings.timeout:g} s", _CONNECT_FIX)
    if isinstance(exc, ConnectionRefusedError):
        return ImapError(stage, f"{where} refused the connection (nothing listens on that port)", _CONNECT_FIX)
    if isinstance(exc, socket.gaierror):
        return ImapError(stage, f"the host name {settings.host!r} was not found ({exc.strerror})", "check imap_host")
    return ImapError(stage, f"the connection to {where} failed during {stage} ({exc})", _CONNECT_FIX)


def translate_error(exc: Exception, stage: str, settings: ImapSettings) -> ImapError:
    """The ImapError for what IMAPClient, ssl or the socket raised during `stage`."""
    if isinstance(exc, ImapError):
        return exc
    if isinstance(exc, ssl.SSLError):
        return _tls_error(exc, settings)
    if isinstance(exc, OSError):
        return _os_error(exc, stage, settings)
    where = settings.address
    if isinstance(exc, LoginError):
        words = str(exc).removeprefix("b'").removesuffix("'")
        return ImapError("login", f"{where} refused the login of {settings.username} ({words})", _LOGIN_FIX)
    if isinstance(exc, imaplib.IMAP4.abort):
        return ImapError(stage, f"{where} closed the connection during {stage} ({exc})", "try again later")
    return ImapError(stage, f"{stage} failed on {where} ({exc})", "read the server's reply")
