"""Connect to MongoDB: the configured MONGO_URI, or the embedded local server when it is unset."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from app.config import Settings
from app.store import embedded

Database = AsyncDatabase[dict[str, Any]]

_REASONS = (
    (("Errno 111", "Connection refused", "ECONNREFUSED"), "connection refused (nothing listens on that port)"),
    (("Name or service not known", "nodename nor servname", "getaddrinfo", "No address associated"), "host not found"),
    (("timed out", "Timeout"), "no answer (timed out)"),
    (("SSL", "certificate", "TLS"), "the TLS handshake failed"),
)


async def resolve_uri(settings: Settings) -> str:
    """MONGO_URI when set; otherwise the embedded server's address, starting it if needed."""
    if settings.mongo_uri:
        return settings.mongo_uri
    info = await asyncio.to_thread(embedded.ensure_running, settings.home)
    return info.uri


def make_client(uri: str, timeout: float = 10.0, **kwargs: Any) -> AsyncMongoClient[dict[str, Any]]:
    """An AsyncMongoClient that gives up finding a server after `timeout` seconds (OUTBOUND_DB_TIMEOUT)."""
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": int(timeout * 1000),
        "connectTimeoutMS": int(timeout * 1000),
        "tz_aware": True,
        "retryWrites": True,
        "retryReads": True,
        "appname": "outbound",
    }
    options.update(kwargs)
    return AsyncMongoClient(uri, **options)


@asynccontextmanager
async def connect(settings: Settings, **kwargs: Any) -> AsyncIterator[Database]:
    """Yield the configured database, closing the client afterwards."""
    client = make_client(await resolve_uri(settings), settings.db_timeout, **kwargs)
    try:
        yield client[settings.db_name]
    finally:
        await client.close()


def hosts_of(uri: str) -> str:
    """The host list of a MongoDB URI, without its credentials, options or database (no DNS lookup)."""
    rest = uri.partition("://")[2]
    rest = rest.rpartition("@")[2]  # drop user:password@
    return rest.split("/", 1)[0].split("?", 1)[0] or "?"


def unreachable_reason(error: str) -> str:
    """The driver's server-selection error in a few words."""
    first = error.split(", Timeout:", 1)[0].split(" (configured timeouts", 1)[0]
    for needles, words in _REASONS:
        if any(needle in first for needle in needles):
            return words
    return first[:160]
