"""Reading an account's mailbox over IMAP (IMAPClient): connect, secure, log in, list, examine, fetch.

Read-only by construction: a folder is opened with EXAMINE and messages are fetched with `BODY.PEEK[]`, so no
flag changes (not even \\Seen) and nothing is moved, copied or deleted. Certificates are verified (host name
and dates) unless the caller passes its own TLS context. Every socket operation has the settings' timeout.

IMAPClient blocks; the asyncio loops run a `Mailbox` in `ImapPool`, a bounded thread pool
(app/transport/imap_pool.py). A failure is one `ImapError` whose `stage` says where it happened and whose
message says what to fix (app/transport/imap_errors.py); `check` (behind `outbound test-imap`) takes the same
steps and reports each one. Every name is importable from here.
"""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import imapclient

from app.domain.accounts import ImapSettings as ImapSettings
from app.logging import get_logger
from app.transport.imap_errors import STAGES as STAGES
from app.transport.imap_errors import ImapError as ImapError
from app.transport.imap_errors import translate_error as translate_error
from app.transport.imap_pool import ImapPool as ImapPool

# Folders that exist only as a level of the hierarchy and cannot be opened.
_UNSELECTABLE = {b"\\noselect", b"\\nonexistent"}

T = TypeVar("T")
StepCallback = Callable[[str, str], None]  # (step, what happened)


@dataclass(frozen=True)
class FolderState:
    """A folder as EXAMINE reports it: UIDVALIDITY (UIDs are only comparable while it is unchanged), the UID the
    next message will get (None if the server does not say) and how many messages it holds."""

    uidvalidity: int
    uidnext: int | None
    exists: int


def _text(name: str | bytes) -> str:
    # IMAPClient decodes modified UTF-7 names; a name that is not valid modified UTF-7 stays bytes.
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


class Mailbox:
    """One logged-in IMAP session, read-only: `with Mailbox(settings) as box: box.open("INBOX"); ...`.

    Entering connects, secures the connection as `settings.security` says (tls: implicit TLS; starttls: plain
    text, then STARTTLS, refused when the server does not offer it; none: plain text) and logs in. `on_step`
    sees each step as it is done (connect, secure, login), so a caller can show progress before a failure.
    """

    def __init__(
        self,
        settings: ImapSettings,
        *,
        tls_context: ssl.SSLContext | None = None,
        on_step: StepCallback | None = None,
    ) -> None:
        self.settings = settings
        self._tls_context = tls_context
        self._on_step = on_step or (lambda _step, _text: None)
        self._client: Any = None
        self._folder: str | None = None

    def __enter__(self) -> Mailbox:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _context(self) -> ssl.SSLContext:
        if self._tls_context is None:
            self._tls_context = ssl.create_default_context()
        return self._tls_context

    def connect(self) -> None:
        """Connect, secure and log in; raise ImapError (the connection is closed then)."""
        s = self.settings
        get_logger().debug("imap.connecting", host=s.host, port=s.port, security=s.security, username=s.username)
        stage = "connect"
        try:
            self._client = imapclient.IMAPClient(
                s.host,
                port=s.port,
                ssl=s.security == "tls",
                ssl_context=self._context() if s.security == "tls" else None,
                timeout=s.timeout,
            )
            self._on_step("connect", f"connected to {s.address}")
            stage = "tls"
            self._secure()
            stage = "login"
            self._login()
        except Exception as exc:
            self.close()
            raise translate_error(exc, stage, s) from None

    def _secure(self) -> None:
        s, client = self.settings, self._client
        if s.security == "starttls":
            if not client.has_capability("STARTTLS"):
                raise ImapError(
                    "tls",
                    f"{s.address} does not offer STARTTLS (the password would cross the network in plain text)",
                    "set imap_security tls (usually imap_port 993) if the server speaks TLS at once",
                )
            client.starttls(self._context())
        if s.security == "none":
            self._on_step("secure", "no TLS (imap_security none): the password and the mail are not encrypted")
            return
        kind = "implicit TLS" if s.security == "tls" else "STARTTLS"
        context = self._context()
        verified = context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        checked = "certificate verified" if verified else "certificate NOT verified (the TLS context given skips it)"
        self._on_step("secure", f"{kind}: {client.socket().version()}, {checked}")

    def _login(self) -> None:
        s = self.settings
        if not s.username:
            raise ImapError(
                "login", "no imap_username (nor smtp_username) is set", "set imap_username and imap_password"
            )
        self._client.login(s.username, s.password or "")
        self._on_step("login", f"logged in as {s.username}")

    def _call(self, stage: str, fn: Callable[[Any], T]) -> T:
        """`fn(client)`, with what it raises translated to the ImapError of `stage`."""
        if self._client is None:
            raise RuntimeError("the mailbox is not connected: use `with Mailbox(settings) as box`")
        try:
            return fn(self._client)
        except Exception as exc:
            raise translate_error(exc, stage, self.settings) from None

    def folders(self) -> list[str]:
        """The names of the folders that can be opened, as the server lists them."""
        listed = self._call("list", lambda c: c.list_folders())
        return [_text(name) for flags, _delimiter, name in listed if not _UNSELECTABLE & {f.lower() for f in flags}]

    def open(self, folder: str) -> FolderState:
        """Open `folder` read-only (EXAMINE) and return its state; later fetches read from it."""

        def examine(client: Any) -> dict[bytes, Any]:
            try:
                response: dict[bytes, Any] = client.select_folder(folder, readonly=True)
            except imapclient.IMAPClient.Error as exc:
                if isinstance(exc, imaplib.IMAP4.abort):
                    raise
                raise ImapError(
                    "select",
                    f"folder {folder!r} cannot be opened on {self.settings.address} ({exc})",
                    "check imap_folders against the folders the server has (outbound test-imap lists them)",
                ) from None
            return response

        self._folder = None
        response = self._call("select", examine)
        if b"UIDVALIDITY" not in response:
            what = f"{self.settings.address} did not report the UIDVALIDITY of {folder!r}"
            raise ImapError("select", what, "the server does not follow RFC 3501; its mail cannot be tracked")
        self._folder = folder
        return FolderState(
            uidvalidity=int(response[b"UIDVALIDITY"]),
            uidnext=int(response[b"UIDNEXT"]) if b"UIDNEXT" in response else None,
            exists=int(response.get(b"EXISTS", 0)),
        )

    def fetch_after(self, folder_uid: int, limit: int) -> list[tuple[int, bytes]]:
        """The open folder's messages with a UID above `folder_uid`, oldest first, at most `limit`: (UID, raw
        RFC 822 bytes). Fetched with BODY.PEEK[], so they stay unread; a message expunged meanwhile is left out."""
        if self._folder is None:
            raise RuntimeError("open(folder) first")
        if folder_uid < 0 or limit < 1:
            raise ValueError(f"folder_uid must be >= 0 and limit >= 1, got {folder_uid} and {limit}")

        def newer(client: Any) -> list[int]:
            # NOOP first: a server may leave messages that arrived since EXAMINE out of a search until it has told
            # the session about them. `UID n:*` also matches the last message when n is above every UID (RFC 3501
            # 6.4.8): keep only the newer ones.
            client.noop()
            return [int(uid) for uid in client.search(["UID", f"{folder_uid + 1}:*"]) if uid > folder_uid]

        wanted = sorted(self._call("fetch", newer))[:limit]
        if not wanted:
            return []
        fetched = self._call("fetch", lambda c: c.fetch(wanted, ["BODY.PEEK[]"]))
        return [(uid, bytes(fetched[uid][b"BODY[]"])) for uid in wanted if b"BODY[]" in fetched.get(uid, {})]

    def close(self) -> None:
        """Log out (or drop the connection if the server does not answer). Safe to call more than once."""
        client, self._client, self._folder = self._client, None, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            try:
                client.shutdown()
            except Exception:
                get_logger().debug("imap.close_failed", host=self.settings.host)


@dataclass(frozen=True)
class CheckStep:
    """One step of `check`: connect, secure, login, folders or folder; what happened, and what to fix if it failed."""

    name: str
    ok: bool
    detail: str
    hint: str | None = None


# check's step for each stage an ImapError can come from.
_CHECK_STEP = {"connect": "connect", "tls": "secure", "login": "login", "list": "folders", "select": "folder"}


def _folder_steps(box: Mailbox) -> list[CheckStep]:
    """The folders step (which configured folders exist), then one step per configured folder, examined."""
    have = box.folders()
    missing = [f for f in box.settings.folders if f not in have]
    listed = ", ".join(have) or "none"
    if missing:
        hint = f"set imap_folders to folders the server has (it has: {listed})"
        return [CheckStep("folders", False, f"{', '.join(missing)} not found on the server", hint)]
    steps = [CheckStep("folders", True, f"{len(have)} folders: {listed}")]
    for name in box.settings.folders:
        state = box.open(name)
        detail = f"{name}: {state.exists} messages, UIDVALIDITY {state.uidvalidity}, next UID {state.uidnext}"
        steps.append(CheckStep("folder", True, detail + " (opened read-only)"))
    return steps


def check(
    settings: ImapSettings,
    tls_context: ssl.SSLContext | None = None,
    on_step: Callable[[CheckStep], None] | None = None,
) -> list[CheckStep]:
    """Connect, secure, log in, list the folders and examine each configured one, without changing anything.

    Returns every step taken; the last one has `ok=False` (with the error and a hint) if a step failed, and
    nothing after it is tried. `on_step` sees each step as it happens.
    """
    steps: list[CheckStep] = []

    def add(step: CheckStep) -> None:
        steps.append(step)
        if on_step is not None:
            on_step(step)

    box = Mailbox(settings, tls_context=tls_context, on_step=lambda name, text: add(CheckStep(name, True, text)))
    try:
        with box:
            for step in _folder_steps(box):
                add(step)
    except ImapError as err:
        name = _CHECK_STEP.get(err.stage, err.stage)
        if name == "secure" and not any(s.name == "connect" for s in steps):
            # With implicit TLS the handshake is part of connecting: reaching it means the TCP connection opened.
            add(CheckStep("connect", True, f"connected to {settings.address}"))
        add(CheckStep(name, False, err.what, err.fix))
    return steps
