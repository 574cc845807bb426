"""structlog set-up: readable console output for people, JSON lines for services."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

SECRET_KEYS = ("password", "smtp_password", "secret", "token_secret", "passwd", "credentials_key", "secret_key")


@functools.lru_cache(maxsize=1024)
def _names_secret(key: str) -> bool:
    # Events use a few dozen keys over and over: decide each once.
    lowered = key.lower()
    return any(s in lowered for s in SECRET_KEYS)


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the value of any key that names a secret, at any depth, so passwords never reach logs."""
    for key, value in list(event_dict.items()):
        if _names_secret(str(key)):
            event_dict[key] = "***"
        elif isinstance(value, dict):
            event_dict[key] = redact_secrets(None, "", dict(value))
    return event_dict


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the moment of writing (it may be swapped after start-up)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


_FORMAT = {"json": False}


def renders_json() -> bool:
    """True when log lines are JSON (so a command's last error should be one too)."""
    return _FORMAT["json"]


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once at start-up. `fmt` is auto (console on a TTY), console or json."""
    out: Any = stream if stream is not None else _CurrentStderr()
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    _FORMAT["json"] = not use_console
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    """A bound logger carrying `context` (campaign_id, lead_id, account_id, ...)."""
    return structlog.get_logger().bind(**context)
