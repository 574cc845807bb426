"""The classified send errors: every SMTP failure becomes one of these, so the worker decides from the class alone.

- TransientSendError: 4xx replies, dropped connections, timeouts, a TLS handshake cut short. Retry later, on
  another account where one is free. A drop while the DATA reply was awaited (`during == "data"`,
  `code is None`) means the server may have accepted the message: the caller must treat that send as
  uncertain, not retry it blindly.
- PermanentSendError: 5xx for this message or recipient. Fail the recipient (hard bounce).
- UnsupportedAddressError, a PermanentSendError: the recipient's address needs SMTPUTF8 (a non-ASCII local
  part, RFC 6531) and the account's server does not offer it. Nothing was sent and the connection stays
  usable for the next recipient. The recipient fails, but it is no bounce: the address may well be valid.
- AccountAuthError: the account itself cannot send (rejected credentials, auth required, refused at connect).
  Take the account out of rotation; the recipient is retried on another account.
- AccountConfigError, an AccountAuthError: the account's settings cannot work as they stand. Today that is a
  server certificate that fails verification (self-signed, issued for another host name, expired): retrying
  in a few seconds would fail the same way, so the account leaves rotation like any AccountAuthError, and the
  message names the host and port, what the verification found and what to change.
"""

from __future__ import annotations

STAGES = ("connect", "tls", "auth", "mail", "rcpt", "data")
AUTH_REPLY_CODES = frozenset({530, 534, 535})
# A 5xx before any mail was offered refuses the account, not a recipient.
ACCOUNT_STAGES = frozenset({"connect", "tls", "auth"})


class SendError(Exception):
    """An SMTP send failed; `code` is the server's reply code (None: no reply), `reply` its text."""

    def __init__(self, code: int | None, reply: str, *, during: str = "") -> None:
        super().__init__(code, reply)
        self.code = code
        self.reply = reply
        self.during = during

    def __str__(self) -> str:
        return f"{self.code} {self.reply}" if self.code is not None else self.reply

    @property
    def uncertain(self) -> bool:
        """True when the connection failed while the message body was in flight: it may have been accepted
        (RFC 1047), so it must not be retried automatically."""
        return self.during == "data" and self.code is None


class TransientSendError(SendError):
    """4xx, dropped connection, timeout: retry later, preferably on another account."""


class PermanentSendError(SendError):
    """5xx for this recipient or message: fail the recipient."""


class UnsupportedAddressError(PermanentSendError):
    """The server cannot take this recipient's address (no SMTPUTF8 for a non-ASCII local part): fail the
    recipient; the address was never refused by its own mail server, so it is not known to be bad."""


class AccountAuthError(SendError):
    """The account's credentials or identity were refused: take the account out of rotation."""


class AccountConfigError(AccountAuthError):
    """The account's configuration cannot work (its server's certificate fails verification): out of rotation
    until someone fixes it; the message says what to fix. Never a network problem, so never retried."""


def classify_smtp_reply(code: int | None, message: str, *, during: str) -> type[SendError]:
    """Map an SMTP failure to the error class the worker acts on.

    `code` is None when the server gave no reply (dropped connection, timeout, TLS failure). `message` is
    accepted so callers pass the whole reply; classification depends on the code and the stage only.
    """
    if during not in STAGES:
        raise ValueError(f"unknown SMTP stage {during!r}: expected one of {', '.join(STAGES)}")
    if code is None or 400 <= code < 500:
        return TransientSendError
    if code in AUTH_REPLY_CODES or (during in ACCOUNT_STAGES and code >= 500):
        return AccountAuthError
    if 500 <= code < 600:
        return PermanentSendError
    # A 2xx/3xx reported as a failure is protocol confusion: try again on a fresh connection.
    return TransientSendError
