"""What `account add` and `account edit` are given, read into documents and checked before anything is written.

The options become the stored fields of seed 001's three account documents; `validate` reads them through the
typed views the dispatcher uses, so a value it would refuse is refused here, naming the option typed. Passwords
come from a hidden prompt, lines of standard input or environment variables, never from an argument, and are
sealed (app/credentials.py) before they are stored.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.markup import escape

from app.cli.common import err_console, fail
from app.config import Settings
from app.credentials import Credentials, CredentialsError, sealing_credentials
from app.domain.addresses import has_line_break
from app.domain.models import AccountCampaignSettings, EmailAccount, GeneralSettings, InvalidDocument

DEFAULT_MAX_DAILY_SENDS = 50
# The option that sets each stored field, so a refusal names what the user typed.
OPTION_OF = {
    "email": "--email",
    "smtp_host": "--smtp-host",
    "smtp_port": "--smtp-port",
    "smtp_security": "--smtp-security",
    "smtp_username": "--smtp-username",
    "imap_host": "--imap-host",
    "imap_port": "--imap-port",
    "imap_security": "--imap-security",
    "imap_username": "--imap-username",
    "imap_folders": "--imap-folder",
    "provider": "--provider",
    "sender_name": "--sender-name",
    "signature": "--signature-file",
    "max_daily_sends": "--max-daily-sends",
    "daily_limit": "--daily-limit",
    "min_wait_time": "--min-wait",
}
ACCOUNT_FIELDS = ("email", "smtp_host", "smtp_port", "smtp_security", "smtp_username", "provider")
IMAP_FIELDS = ("imap_host", "imap_port", "imap_security", "imap_username", "imap_folders")
GENERAL_FIELDS = ("sender_name", "signature")
LIMIT_FIELDS = ("max_daily_sends", "daily_limit", "min_wait_time")
CONNECTION_FIELDS = frozenset(ACCOUNT_FIELDS + IMAP_FIELDS) - {"email", "provider"}


@dataclass(frozen=True)
class Given:
    """The stored fields the options set (None: not given)."""

    email: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    smtp_username: str | None = None
    provider: str | None = None
    imap_host: str | None = None
    imap_port: int | None = None
    imap_security: str | None = None
    imap_username: str | None = None
    imap_folders: list[str] | None = None
    sender_name: str | None = None
    signature: str | None = None
    max_daily_sends: int | None = None
    daily_limit: int | None = None
    min_wait_time: float | None = None

    def part(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The given fields among `names`."""
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def names(self) -> list[str]:
        """Every field given."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


@dataclass(frozen=True)
class PasswordSources:
    """Where the passwords come from: a prompt, lines of standard input (SMTP first), environment variables."""

    prompt: bool = False
    stdin: bool = False
    env: str | None = None
    imap_stdin: bool = False
    imap_env: str | None = None

    @property
    def smtp_given(self) -> bool:
        return self.prompt or self.stdin or self.env is not None

    @property
    def imap_given(self) -> bool:
        return self.imap_stdin or self.imap_env is not None


@dataclass(frozen=True)
class Documents:
    """An account's three documents, as they will be written (or the fields that change)."""

    account: dict[str, Any]
    general: dict[str, Any]
    limits: dict[str, Any]


# Options shared by add and edit (None: not given, so edit leaves the field as it is).
SMTP_PORT = typer.Option(None, "--smtp-port", help="SMTP port (add: 587).")
SMTP_SECURITY = typer.Option(
    None, "--smtp-security", help="starttls (add's default), tls (implicit, port 465) or none."
)
SMTP_USERNAME = typer.Option(None, "--smtp-username", help="SMTP login (add: the --email address).")
IMAP_HOST = typer.Option(None, "--imap-host", help="Read the account's mailbox (replies, bounces) on this server.")
IMAP_PORT = typer.Option(None, "--imap-port", help="IMAP port (default 993 for tls, 143 otherwise).")
IMAP_SECURITY = typer.Option(None, "--imap-security", help="tls (default), starttls or none.")
IMAP_USERNAME = typer.Option(None, "--imap-username", help="IMAP login (default: the SMTP one).")
IMAP_FOLDER = typer.Option(None, "--imap-folder", help="A folder to read (repeatable; default INBOX).")
SENDER_NAME = typer.Option(None, "--sender-name", help="The name messages come from ({{ sender_name }}).")
SIGNATURE_FILE = typer.Option(None, "--signature-file", help="A UTF-8 text file holding the signature.")
MAX_DAILY_SENDS = typer.Option(
    None, "--max-daily-sends", help=f"Sends per day across all campaigns (add: {DEFAULT_MAX_DAILY_SENDS})."
)
DAILY_LIMIT = typer.Option(None, "--daily-limit", help="Sends per campaign per day (the campaign's may be lower).")
MIN_WAIT = typer.Option(None, "--min-wait", help="Minutes between two sends of this account (fractions allowed).")
PROVIDER = typer.Option(None, "--provider", help="A label: gmail, outlook, ...")
PASSWORD_PROMPT = typer.Option(False, "--password-prompt", help="Ask for the password (hidden, typed twice).")
PASSWORD_STDIN = typer.Option(False, "--password-stdin", help="Read the password from the first line of stdin.")
PASSWORD_ENV = typer.Option(None, "--password-env", metavar="VAR", help="Read the password from this variable.")
IMAP_PASSWORD_STDIN = typer.Option(
    False,
    "--imap-password-stdin",
    help="Read a different IMAP password from stdin (the second line with --password-stdin).",
)
IMAP_PASSWORD_ENV = typer.Option(
    None, "--imap-password-env", metavar="VAR", help="Read a different IMAP password here."
)
NO_TEST = typer.Option(False, "--no-test", help="Do not run the SMTP and IMAP checks afterwards.")


def refuse(message: str) -> NoReturn:
    """Exit 2 with `message`, saying that nothing was written."""
    fail(escape(f"{message}; nothing was written"), code=2)


def read_signature(path: Path | None) -> str | None:
    """The signature in `path` (trailing line breaks dropped); refused when it cannot be read."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\n")
    except FileNotFoundError:
        refuse(f"--signature-file: {path}: no such file")
    except (OSError, UnicodeError) as exc:
        refuse(f"--signature-file: {path} cannot be read as UTF-8 text ({exc})")


def check_given(given: Given) -> None:
    """What the typed views do not check: a sender name (a header value) is one line."""
    if given.sender_name is not None and has_line_break(given.sender_name):
        refuse("--sender-name must be one line")


def validate(docs: Documents) -> EmailAccount:
    """Read the documents through the dispatcher's typed views; refuse (exit 2, naming the option) if one fails."""
    account = docs.account
    if not account.get("imap_host"):
        orphans = [OPTION_OF[name] for name in IMAP_FIELDS if account.get(name) is not None]
        if orphans:
            refuse(f"{', '.join(orphans)} need --imap-host (the server the mailbox is read on)")
    try:
        checked = EmailAccount.from_doc(account)
        GeneralSettings.from_doc(docs.general)
        AccountCampaignSettings.from_doc(docs.limits)
    except InvalidDocument as exc:
        option = OPTION_OF.get(exc.field, f"the stored field {exc.field}")
        refuse(f"{option}: {exc.reason}")
    return checked


def _stdin_lines(sources: PasswordSources) -> list[str]:
    if not (sources.stdin or sources.imap_stdin):
        return []
    return sys.stdin.read().splitlines()


def _from_env(variable: str, option: str) -> str:
    value = os.environ.get(variable)
    if not value:
        refuse(f"{option} {variable}: that environment variable is not set or empty")
    return value


def _from_stdin(lines: list[str], index: int, what: str) -> str:
    if len(lines) <= index or not lines[index]:
        refuse(f"standard input has no {what} password (line {index + 1})")
    return lines[index]


def _prompt(label: str) -> str:
    if not sys.stdin.isatty():
        refuse(
            f"the {label} is needed: pass --password-stdin (and pipe it in) or --password-env VAR, or run on a "
            "terminal to be asked; it is never taken as an argument"
        )
    value: str = typer.prompt(label, hide_input=True, confirmation_prompt=True)
    if not value:
        refuse(f"the {label} is empty")
    return value


def read_passwords(sources: PasswordSources, email: str, *, smtp_required: bool) -> tuple[str | None, str | None]:
    """The SMTP and IMAP passwords the sources give (None: not given), before anything is written."""
    if sources.stdin and sources.env is not None:
        refuse("--password-stdin and --password-env name two sources for one password: give one")
    if sources.imap_stdin and sources.imap_env is not None:
        refuse("--imap-password-stdin and --imap-password-env name two sources for one password: give one")
    lines = _stdin_lines(sources)
    smtp: str | None = None
    if sources.stdin:
        smtp = _from_stdin(lines, 0, "SMTP")
    elif sources.env is not None:
        smtp = _from_env(sources.env, "--password-env")
    elif sources.prompt or smtp_required:
        smtp = _prompt(f"SMTP password for {email}")
    imap: str | None = None
    if sources.imap_stdin:
        imap = _from_stdin(lines, 1 if sources.stdin else 0, "IMAP")
    elif sources.imap_env is not None:
        imap = _from_env(sources.imap_env, "--imap-password-env")
    return smtp, imap


def sealing(settings: Settings) -> Credentials:
    """The keys to seal with; creates the key file on first use, and says so (it must be backed up and shared)."""
    try:
        credentials, created = sealing_credentials(settings)
    except CredentialsError as exc:
        refuse(str(exc))
    if created:
        err_console.print(
            f"Created the credentials key file {credentials.origin} (mode 0600). Back it up: without it the "
            "stored passwords cannot be read. Every machine running Outbound needs the same key (copy the "
            "file into its OUTBOUND_HOME, or set OUTBOUND_CREDENTIALS_KEY).",
            markup=False,
        )
    return credentials


def seal_passwords(settings: Settings, smtp: str | None, imap: str | None) -> dict[str, str]:
    """The password fields to store, encrypted."""
    if smtp is None and imap is None:
        return {}
    credentials = sealing(settings)
    sealed: dict[str, str] = {}
    if smtp is not None:
        sealed["smtp_password"] = credentials.seal(smtp)
    if imap is not None:
        sealed["imap_password"] = credentials.seal(imap)
    return sealed
