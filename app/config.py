"""Settings: environment variables and `.env`, overridable from the CLI, read once at start-up."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.fernet import Fernet
from dotenv import dotenv_values

from app.domain.addresses import InvalidAddress, normalize_email

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("auto", "console", "json")
ENVIRONMENTS = ("development", "production", "test")
HELO_NAME_ACCEPTS = (
    "a host name of letters, digits, hyphens and dots (e.g. mail.example.com), "
    "or an address literal such as [192.0.2.1] or [IPv6:2001:db8::1] (empty: this machine's name)"
)
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class ConfigError(ValueError):
    """A configuration value was refused; the message names the variable and what it accepts."""

    def __init__(self, variable: str, value: object, accepts: str) -> None:
        super().__init__(f"{variable}={value!r} is invalid: {variable} accepts {accepts}")
        self.variable = variable
        self.value = value
        self.accepts = accepts


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


def _parse_bool(var: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(var, raw, "true/false (also 1/0, yes/no, on/off)")


def _choice(choices: tuple[str, ...], upper: bool = False) -> Callable[[str, str], str]:
    def parse(var: str, raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in choices:
            raise ConfigError(var, raw, "one of " + ", ".join(choices))
        return value

    return parse


def _positive_float(var: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(var, raw, "a positive number") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(var, raw, "a positive number")
    return value


def _positive_int(var: str, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(var, raw, "a positive whole number") from None
    if value < 1:
        raise ConfigError(var, raw, "a positive whole number")
    return value


def _fraction(var: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(var, raw, "a number greater than 0 and at most 1 (e.g. 0.5)") from None
    if not 0 < value <= 1:
        raise ConfigError(var, raw, "a number greater than 0 and at most 1 (e.g. 0.5)")
    return value


def _mongo_uri(var: str, raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not value.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(var, raw, "a URI starting with mongodb:// or mongodb+srv:// (or empty for embedded)")
    return value


def _db_name(var: str, raw: str) -> str:
    value = raw.strip()
    bad = set('/\\. "$*<>:|?') & set(value)
    if not value or bad or len(value) > 63:
        raise ConfigError(var, raw, 'a MongoDB database name: 1-63 characters, none of / \\ . " $ * < > : | ?')
    return value


def _helo_name(var: str, raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if value.startswith("[") and value.endswith("]"):
        literal = value[1:-1]
        try:
            if literal[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(literal[5:])
            else:
                ipaddress.IPv4Address(literal)
        except ValueError:
            raise ConfigError(var, raw, HELO_NAME_ACCEPTS) from None
        return value
    labels = value.split(".")
    if len(value) > 253 or not all(_HOST_LABEL.match(label) for label in labels) or _is_ip_address(value):
        raise ConfigError(var, raw, HELO_NAME_ACCEPTS)  # a bare address must be written as a literal
    return value


def _is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


SECRET_KEY_MIN_LENGTH = 32
PUBLIC_URL_ACCEPTS = (
    "an https URL such as https://outreach.example.com (http only on a loopback host such as "
    "http://127.0.0.1:8025), without query or fragment; empty: no one-click unsubscribe link"
)


def _public_url(var: str, raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    parts = urlsplit(value)
    host = parts.hostname or ""
    loopback = host == "localhost" or (_is_ip_address(host) and ipaddress.ip_address(host).is_loopback)
    scheme_ok = parts.scheme == "https" or (parts.scheme == "http" and loopback)
    if not scheme_ok or not host or parts.query or parts.fragment or has_space(value):
        raise ConfigError(var, raw, PUBLIC_URL_ACCEPTS)
    return value.rstrip("/")


def has_space(value: str) -> bool:
    """True when `value` holds whitespace or a control character (never valid in a URL)."""
    return any(c.isspace() or ord(c) < 32 for c in value)


def _secret_key(var: str, raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if len(value) < SECRET_KEY_MIN_LENGTH:
        raise ConfigError(
            var,
            "<hidden>",
            f"a random secret of at least {SECRET_KEY_MIN_LENGTH} characters "
            '(make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))")',
        )
    return value


SESSION_HOURS_MAX = 24 * 30


def _session_hours(var: str, raw: str) -> float:
    # A month at most: a forgotten browser must not stay signed in for ever.
    accepts = f"a number of hours greater than 0 and at most {SESSION_HOURS_MAX} (e.g. 12 or 0.5)"
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(var, raw, accepts) from None
    if not 0 < value <= SESSION_HOURS_MAX:
        raise ConfigError(var, raw, accepts)
    return value


CREDENTIALS_KEY_ACCEPTS = (
    "one or more Fernet keys separated by commas, the first encrypting (make one with Outbound's Python: "
    '.venv/bin/python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"); '
    "empty: the key file credentials.key under OUTBOUND_HOME"
)


def _credentials_key(var: str, raw: str) -> str | None:
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    if not keys:
        return None
    for key in keys:
        try:
            Fernet(key)
        except ValueError:  # also binascii.Error: not base64, or not 32 bytes
            raise ConfigError(var, "<hidden>", CREDENTIALS_KEY_ACCEPTS) from None
    return ",".join(keys)


DNS_SERVERS_ACCEPTS = (
    "IP addresses separated by commas, each with an optional port: 192.0.2.53, 192.0.2.53:5353, 2001:db8::53 or "
    "[2001:db8::53]:5353 (empty: the system's resolvers)"
)


def _dns_servers(var: str, raw: str) -> tuple[tuple[str, int], ...]:
    servers = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        server = _dns_server(part)
        if server is None:
            raise ConfigError(var, raw, DNS_SERVERS_ACCEPTS)
        servers.append(server)
    return tuple(servers)


def _dns_server(text: str) -> tuple[str, int] | None:
    """(address, port) from `192.0.2.1`, `192.0.2.1:53`, `2001:db8::1` or `[2001:db8::1]:53`; None when invalid."""
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not _is_ip_address(host) or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return str(ipaddress.ip_address(host)), int(port)


def _optional_positive_int(var: str, raw: str) -> int | None:
    return _positive_int(var, raw) if raw.strip() else None


REPORT_TO_ACCEPTS = "email addresses separated by commas, e.g. ops@example.com, founder@example.com (empty: no report)"


def _addresses(var: str, raw: str) -> tuple[str, ...]:
    found: list[str] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            address = normalize_email(part)
        except InvalidAddress as exc:
            raise ConfigError(var, raw, f"{REPORT_TO_ACCEPTS}; {exc}") from None
        if address not in found:
            found.append(address)
    return tuple(found)


def _optional_text(var: str, raw: str) -> str | None:
    value = raw.strip()
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ConfigError(var, raw, "an account _id without spaces (see `outbound list-accounts`), or empty")
    return value or None


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


def _path(var: str, raw: str) -> Path:
    value = raw.strip()
    if not value:
        raise ConfigError(var, raw, "a directory path")
    return Path(value).expanduser()


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
