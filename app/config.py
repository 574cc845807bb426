"""Settings: environment variables and `.env`, overridable from the CLI, read once at start-up.

Here are Settings, the table of variables and their loading; how each value's text is parsed (and refused) is in
app/config_parsers.py, whose public names are importable from here as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from app.config_parsers import CREDENTIALS_KEY_ACCEPTS as CREDENTIALS_KEY_ACCEPTS
from app.config_parsers import DNS_SERVERS_ACCEPTS as DNS_SERVERS_ACCEPTS
from app.config_parsers import HELO_NAME_ACCEPTS as HELO_NAME_ACCEPTS
from app.config_parsers import PUBLIC_URL_ACCEPTS as PUBLIC_URL_ACCEPTS
from app.config_parsers import REPORT_TO_ACCEPTS as REPORT_TO_ACCEPTS
from app.config_parsers import SECRET_KEY_MIN_LENGTH as SECRET_KEY_MIN_LENGTH
from app.config_parsers import SESSION_HOURS_MAX as SESSION_HOURS_MAX
from app.config_parsers import ConfigError as ConfigError
from app.config_parsers import (
    _addresses,
    _choice,
    _credentials_key,
    _db_name,
    _dns_servers,
    _fraction,
    _helo_name,
    _mongo_uri,
    _optional_positive_int,
    _optional_text,
    _parse_bool,
    _path,
    _positive_float,
    _positive_int,
    _public_url,
    _retention_days,
    _secret_key,
    _session_hours,
)
from app.config_parsers import has_space as has_space

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("auto", "console", "json")
ENVIRONMENTS = ("development", "production", "test")


@dataclass(frozen=True)
class Settings:
    """Everything Outbound reads from its environment, with documented defaults."""

    mongo_uri: str | None = None  # MONGO_URI; unset means the embedded local server
    db_name: str = "outbound"  # DB_NAME
    smtp_starttls: bool = True  # SMTP_STARTTLS: default for accounts that do not say
    log_level: str = "INFO"  # LOG_LEVEL
    env: str = "development"  # ENV
    home: Path = field(default_factory=lambda: Path("~/.outbound").expanduser())  # OUTBOUND_HOME
    log_format: str = "auto"  # OUTBOUND_LOG_FORMAT: console on a terminal, JSON otherwise
    smtp_timeout: float = 30.0  # OUTBOUND_SMTP_TIMEOUT, seconds
    # OUTBOUND_HELO_NAME: the EHLO/HELO name. None: this machine's name (socket.getfqdn()), looked up by the
    # sender when it first connects, so commands that send nothing never wait on a DNS lookup.
    helo_name: str | None = None
    lease_seconds: float = 120.0  # OUTBOUND_LEASE_SECONDS
    poll_interval: float = 5.0  # OUTBOUND_POLL_INTERVAL, seconds
    concurrency: int = 40  # OUTBOUND_CONCURRENCY, leads processed at once (two batches of 20)
    batch_size: int = 20  # OUTBOUND_BATCH_SIZE, leads fetched per query
    retry_base_seconds: float = 60.0  # OUTBOUND_RETRY_BASE_SECONDS
    retry_cap_seconds: float = 3600.0  # OUTBOUND_RETRY_CAP_SECONDS
    retry_max_attempts: int = 5  # OUTBOUND_RETRY_MAX_ATTEMPTS
    shutdown_grace_seconds: float = 30.0  # OUTBOUND_SHUTDOWN_GRACE_SECONDS
    pause_error_rate: float = 0.5  # OUTBOUND_PAUSE_ERROR_RATE: pause a campaign failing this often...
    pause_min_attempts: int = 20  # OUTBOUND_PAUSE_MIN_ATTEMPTS: ...over at least this many recent attempts
    db_timeout: float = 10.0  # OUTBOUND_DB_TIMEOUT: seconds to find a reachable database before giving up
    inbox_poll_seconds: float = 60.0  # OUTBOUND_INBOX_POLL_SECONDS: how often run-dispatcher reads each mailbox
    # OUTBOUND_PUBLIC_URL: where `outbound serve` is reachable from the internet (https, or http on loopback),
    # e.g. https://outreach.example.com; set, messages carry a one-click unsubscribe link under it.
    public_url: str | None = None
    secret_key: str | None = field(default=None, repr=False)  # OUTBOUND_SECRET_KEY: signs unsubscribe links
    session_hours: float = 12.0  # OUTBOUND_SESSION_HOURS: how long a dashboard sign-in lasts
    # OUTBOUND_CREDENTIALS_KEY: Fernet keys, comma-separated, the first encrypts stored passwords; None: the key
    # file under `home` (see app/credentials.py).
    credentials_key: str | None = field(default=None, repr=False)
    # OUTBOUND_DNS_SERVERS: resolvers for the address checks and MX grouping, as (address, port); empty: the
    # system's resolvers.
    dns_servers: tuple[tuple[str, int], ...] = ()
    # OUTBOUND_DEFAULT_DOMAIN_LIMIT: sends per hour to any one recipient domain without a `domain_limits` row;
    # None: no limit for those domains.
    default_domain_limit: int | None = None
    # OUTBOUND_REPORT_TO: who receives the daily report (normalised addresses); empty: no report is sent.
    report_to: tuple[str, ...] = ()
    # OUTBOUND_REPORT_ACCOUNT: the `email_accounts` _id that sends the report; None: the first active one by id.
    report_account: str | None = None
    report_at: time = time(7, 0)  # OUTBOUND_REPORT_AT: when the report goes out, local time in the zone below
    report_timezone: str = "UTC"  # OUTBOUND_REPORT_TIMEZONE: IANA zone whose calendar day the report covers
    # OUTBOUND_JOB_RETENTION_DAYS: a finished job execution's recipients (its campaign and leads) are deleted
    # this many days after it ended; its counts, the send ledger and the activities stay. 0: keep them all.
    job_retention_days: int = 30

    @property
    def uses_embedded(self) -> bool:
        """True when no MONGO_URI is configured and the local embedded server is used."""
        return not self.mongo_uri

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the non-None overrides applied (CLI options)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        return replace(self, **given)


def _clock_time(var: str, raw: str) -> time:
    if not raw.strip():
        return Settings.report_at
    hours, colon, minutes = raw.strip().partition(":")
    valid = colon and len(hours) in (1, 2) and len(minutes) == 2 and hours.isdigit() and minutes.isdigit()
    if not valid or int(hours) > 23 or int(minutes) > 59:
        raise ConfigError(var, raw, "a local time of day as HH:MM, 24-hour clock (e.g. 07:00 or 18:30)")
    return time(int(hours), int(minutes))


def _time_zone(var: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        return Settings.report_timezone
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(var, raw, "an IANA time zone name such as UTC, Europe/Berlin or America/New_York") from None
    return value


# variable name -> (settings field, parser)
VARIABLES: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "MONGO_URI": ("mongo_uri", _mongo_uri),
    "DB_NAME": ("db_name", _db_name),
    "SMTP_STARTTLS": ("smtp_starttls", _parse_bool),
    "LOG_LEVEL": ("log_level", _choice(LOG_LEVELS, upper=True)),
    "ENV": ("env", _choice(ENVIRONMENTS)),
    "OUTBOUND_HOME": ("home", _path),
    "OUTBOUND_LOG_FORMAT": ("log_format", _choice(LOG_FORMATS)),
    "OUTBOUND_SMTP_TIMEOUT": ("smtp_timeout", _positive_float),
    "OUTBOUND_HELO_NAME": ("helo_name", _helo_name),
    "OUTBOUND_LEASE_SECONDS": ("lease_seconds", _positive_float),
    "OUTBOUND_POLL_INTERVAL": ("poll_interval", _positive_float),
    "OUTBOUND_CONCURRENCY": ("concurrency", _positive_int),
    "OUTBOUND_BATCH_SIZE": ("batch_size", _positive_int),
    "OUTBOUND_RETRY_BASE_SECONDS": ("retry_base_seconds", _positive_float),
    "OUTBOUND_RETRY_CAP_SECONDS": ("retry_cap_seconds", _positive_float),
    "OUTBOUND_RETRY_MAX_ATTEMPTS": ("retry_max_attempts", _positive_int),
    "OUTBOUND_SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", _positive_float),
    "OUTBOUND_PAUSE_ERROR_RATE": ("pause_error_rate", _fraction),
    "OUTBOUND_PAUSE_MIN_ATTEMPTS": ("pause_min_attempts", _positive_int),
    "OUTBOUND_DB_TIMEOUT": ("db_timeout", _positive_float),
    "OUTBOUND_INBOX_POLL_SECONDS": ("inbox_poll_seconds", _positive_float),
    "OUTBOUND_PUBLIC_URL": ("public_url", _public_url),
    "OUTBOUND_SECRET_KEY": ("secret_key", _secret_key),
    "OUTBOUND_SESSION_HOURS": ("session_hours", _session_hours),
    "OUTBOUND_CREDENTIALS_KEY": ("credentials_key", _credentials_key),
    "OUTBOUND_DNS_SERVERS": ("dns_servers", _dns_servers),
    "OUTBOUND_DEFAULT_DOMAIN_LIMIT": ("default_domain_limit", _optional_positive_int),
    "OUTBOUND_REPORT_TO": ("report_to", _addresses),
    "OUTBOUND_REPORT_ACCOUNT": ("report_account", _optional_text),
    "OUTBOUND_REPORT_AT": ("report_at", _clock_time),
    "OUTBOUND_REPORT_TIMEZONE": ("report_timezone", _time_zone),
    "OUTBOUND_JOB_RETENTION_DAYS": ("job_retention_days", _retention_days),
}


def parse_variable(variable: str, raw: str) -> Any:
    """Parse one variable's raw text, raising ConfigError naming it when invalid."""
    _, parser = VARIABLES[variable]
    return parser(variable, raw)


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
) -> Settings:
    """Read settings from `env_file` (if it exists) overlaid by the process environment.

    The environment wins over `.env`, so a systemd EnvironmentFile or a shell export can override a
    checked-in file. Any invalid value raises ConfigError before anything else happens.
    """
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    parsed: dict[str, Any] = {}
    for variable, (name, parser) in VARIABLES.items():
        if variable in values:
            parsed[name] = parser(variable, values[variable])
    settings = Settings(**parsed)
    if settings.retry_cap_seconds < settings.retry_base_seconds:
        raise ConfigError(
            "OUTBOUND_RETRY_CAP_SECONDS",
            settings.retry_cap_seconds,
            f"a number >= OUTBOUND_RETRY_BASE_SECONDS ({settings.retry_base_seconds})",
        )
    if settings.public_url and not settings.secret_key:
        raise ConfigError(
            "OUTBOUND_SECRET_KEY",
            "",
            f"a random secret of at least {SECRET_KEY_MIN_LENGTH} characters; it is required when "
            "OUTBOUND_PUBLIC_URL is set, to sign the unsubscribe links "
            '(make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))")',
        )
    return settings
