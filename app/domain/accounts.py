"""Typed views of the sending accounts: SMTP and IMAP settings, sender identity and per-account limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.domain import collections as schema
from app.domain.addresses import InvalidAddress, has_line_break, normalize_email
from app.domain.document_reader import DocumentReader, id_str

ACCOUNT_STATUSES = ("active", "paused", "disabled", "auth_failed")
SMTP_SECURITY = ("starttls", "tls", "none")
IMAP_SECURITY = ("tls", "starttls", "none")
# The usual port of each way to secure IMAP: implicit TLS on 993, STARTTLS or plain text on 143.
IMAP_PORTS = {"tls": 993, "starttls": 143, "none": 143}
DEFAULT_IMAP_FOLDERS = ("INBOX",)
DEFAULT_IMAP_TIMEOUT = 30.0


@dataclass(frozen=True)
class ImapSettings:
    """How to read one account's mailbox: server, security, login, the folders to read and the socket timeout."""

    host: str
    port: int
    security: str  # tls (implicit TLS), starttls, none (plain text)
    username: str | None
    password: str | None = field(repr=False)
    folders: tuple[str, ...] = DEFAULT_IMAP_FOLDERS
    timeout: float = DEFAULT_IMAP_TIMEOUT  # seconds for the connection and for each command

    @property
    def address(self) -> str:
        """`host:port`, as messages name the server."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class EmailAccount:
    """An SMTP sending account (seed 001 `email_accounts`)."""

    id: str
    email: str
    smtp_host: str
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None = field(repr=False)
    status: str
    provider: str | None = None
    security: str | None = None  # starttls, tls (implicit), none; None: SMTP_STARTTLS decides
    sender_name: str | None = None
    # Reading the mailbox (replies, bounces, unsubscribes): only when imap_host is set. The login defaults to
    # the SMTP one; the port to the usual one of imap_security (993 for tls, 143 otherwise).
    imap_host: str | None = None
    imap_port: int = IMAP_PORTS["tls"]
    imap_security: str = "tls"
    imap_username: str | None = None
    imap_password: str | None = field(default=None, repr=False)
    imap_folders: tuple[str, ...] = DEFAULT_IMAP_FOLDERS
    # The IANA zone its days and hours are counted in: daily counters roll over at its local midnight.
    timezone: str = "UTC"
    # The first day of its warm-up ramp (email_campaign_settings.ramp), a date in its own time zone.
    ramp_started_on: date | None = None

    @property
    def reads_inbox(self) -> bool:
        """True when Outbound reads this account's mailbox (imap_host is set)."""
        return self.imap_host is not None

    def imap_settings(self, timeout: float = DEFAULT_IMAP_TIMEOUT) -> ImapSettings:
        """The account's IMAP settings; ValueError (saying what to set) when it has no imap_host."""
        if self.imap_host is None:
            raise ValueError(
                f"account {self.email} ({self.id}) has no imap_host: "
                "set imap_host (and imap_port, imap_security) on the account"
            )
        return ImapSettings(
            host=self.imap_host,
            port=self.imap_port,
            security=self.imap_security,
            username=self.imap_username,
            password=self.imap_password,
            folders=self.imap_folders,
            timeout=timeout,
        )

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> EmailAccount:
        r = DocumentReader(schema.EMAIL_ACCOUNTS, doc)
        try:
            email = normalize_email(r.get("email"))
        except InvalidAddress as exc:
            raise r.fail("email", str(exc)) from None
        security = r.get("smtp_security")
        if security is not None and security not in SMTP_SECURITY:
            raise r.fail("smtp_security", f"must be one of {', '.join(SMTP_SECURITY)}, got {security!r}")
        username = r.string("smtp_username", required=False)
        password = r.string("smtp_password", required=False)
        return cls(
            id=id_str(r.id),
            email=email,
            smtp_host=_host(r, "smtp_host", r.req_string("smtp_host")),
            smtp_port=_port(r, "smtp_port", 587),
            smtp_username=username,
            smtp_password=password,
            status=r.choice("status", ACCOUNT_STATUSES, default="active"),
            provider=r.string("provider", required=False),
            security=security,
            sender_name=r.string("sender_name", required=False) or r.string("name", required=False),
            **_imap_fields(r, username, password),
            timezone=_timezone(r),
            ramp_started_on=_iso_date(r, "ramp_started_on"),
        )


def _timezone(r: DocumentReader) -> str:
    """`timezone`: an IANA zone name such as "Europe/Berlin" (default UTC)."""
    name = r.get("timezone")
    if name is None:
        return "UTC"
    if not isinstance(name, str) or not name.strip():
        raise r.fail("timezone", f'must be an IANA time zone name such as "Europe/Berlin", got {name!r}')
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.fail("timezone", f'is not a known IANA time zone: {name!r} (e.g. "America/New_York", "UTC")') from None
    return name


def _iso_date(r: DocumentReader, name: str) -> date | None:
    """An ISO date field ("YYYY-MM-DD"), or None when absent."""
    value = r.get(name)
    if value is None:
        return None
    try:
        if isinstance(value, str) and len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise r.fail(name, f"must be a date written YYYY-MM-DD, e.g. 2025-03-01, got {value!r}")


def _host(r: DocumentReader, name: str, host: str) -> str:
    if has_line_break(host) or " " in host:
        raise r.fail(name, f"is not a host name: {host!r}")
    return host


def _port(r: DocumentReader, name: str, default: int) -> int:
    port = r.integer(name, default=default, minimum=1) or default
    if port > 65535:
        raise r.fail(name, f"must be a TCP port (1-65535), got {port}")
    return port


def _folders(r: DocumentReader) -> tuple[str, ...]:
    """`imap_folders`: a non-empty list of folder names, each read once, in the order given."""
    value = r.get("imap_folders")
    if value is None:
        return DEFAULT_IMAP_FOLDERS
    if not isinstance(value, list) or not value:
        raise r.fail("imap_folders", f'must be a non-empty list of folder names such as ["INBOX"], got {value!r}')
    for name in value:
        # A line break would end the IMAP command early: never a folder name.
        if not isinstance(name, str) or not name.strip() or any(ord(c) < 32 for c in name):
            raise r.fail("imap_folders", f"must hold folder names (non-empty strings, one line each), got {name!r}")
    return tuple(dict.fromkeys(value))


class _ImapFields(TypedDict):
    imap_host: str | None
    imap_port: int
    imap_security: str
    imap_username: str | None
    imap_password: str | None
    imap_folders: tuple[str, ...]


def _imap_fields(r: DocumentReader, smtp_username: str | None, smtp_password: str | None) -> _ImapFields:
    """The account's IMAP fields, validated (also when imap_host is absent: a malformed field is an error)."""
    security = r.choice("imap_security", IMAP_SECURITY, default="tls")
    host = r.string("imap_host", required=False)
    return {
        "imap_host": None if host is None else _host(r, "imap_host", host),
        "imap_port": _port(r, "imap_port", IMAP_PORTS[security]),
        "imap_security": security,
        "imap_username": r.string("imap_username", required=False) or smtp_username,
        "imap_password": r.string("imap_password", required=False) or smtp_password,
        "imap_folders": _folders(r),
    }


@dataclass(frozen=True)
class GeneralSettings:
    """`email_general_settings`: an account's signature and sender identity."""

    email_id: str
    signature: str | None = None
    sender_name: str | None = None
    sender_first_name: str | None = None
    sender_last_name: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> GeneralSettings:
        r = DocumentReader(schema.EMAIL_GENERAL_SETTINGS, doc)
        return cls(
            email_id=r.req_string("email_id"),
            signature=r.string("signature", required=False),
            sender_name=r.string("sender_name", required=False),
            sender_first_name=r.string("sender_first_name", required=False),
            sender_last_name=r.string("sender_last_name", required=False),
        )


@dataclass(frozen=True)
class AccountCampaignSettings:
    """`email_campaign_settings`: an account's limits (per campaign and across all campaigns)."""

    email_id: str
    daily_limit: int | None = None  # per campaign per day, unless the campaign sets a lower one
    min_wait_time: float = 0.0  # minutes between two sends of this account
    max_daily_sends: int | None = None  # per day across all campaigns
    max_hourly_sends: int | None = None  # per clock hour (the account's) across all campaigns
    ramp: Ramp | None = None  # warm-up: the daily limit grows from `start` by `increase` per day

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AccountCampaignSettings:
        r = DocumentReader(schema.EMAIL_CAMPAIGN_SETTINGS, doc)
        return cls(
            email_id=r.req_string("email_id"),
            daily_limit=r.integer("daily_limit", minimum=0),
            min_wait_time=r.number("min_wait_time", default=0.0) or 0.0,
            max_daily_sends=r.integer("max_daily_sends", minimum=0),
            max_hourly_sends=r.integer("max_hourly_sends", minimum=0),
            ramp=_ramp(r),
        )


@dataclass(frozen=True)
class Ramp:
    """A warm-up ramp: `start` sends on its first day, `increase` more on each day after."""

    start: int
    increase: int


def _ramp(r: DocumentReader) -> Ramp | None:
    """`ramp`: {start, increase}, whole numbers (start >= 1, increase >= 0)."""
    if r.get("ramp") is None:
        return None
    r.mapping("ramp")
    start = r.integer("ramp.start", minimum=1)
    increase = r.integer("ramp.increase", minimum=0)
    if start is None or increase is None:
        raise r.fail("ramp", f"needs start and increase, e.g. {{start: 5, increase: 2}}, got {r.get('ramp')!r}")
    return Ramp(start, increase)
