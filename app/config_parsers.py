"""Parsers for the settings' variables: the text each variable accepts, and ConfigError when it is refused.

Apart from app/config.py, which holds Settings, the variable table and loading: here is only how one value's
text becomes a value. Each parser takes (variable, raw text) and, refusing it, names the variable and what it
accepts. The parsers keep their leading underscore because only that table uses them; the two whose empty
value means a Settings default (the report's time and zone) stay next to Settings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

from app.domain.addresses import InvalidAddress, normalize_email

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


def _retention_days(var: str, raw: str) -> int:
    """Whole days, 0 to keep everything."""
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(var, raw, "a whole number of days (0: keep every finished execution)") from None
    if value < 0:
        raise ConfigError(var, raw, "a whole number of days (0: keep every finished execution)")
    return value


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


def _path(var: str, raw: str) -> Path:
    value = raw.strip()
    if not value:
        raise ConfigError(var, raw, "a directory path")
    return Path(value).expanduser()
