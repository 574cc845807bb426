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
SERVER_SELECTION_SECONDS = 10.0  # how long a command waits for a reachable server before it gives up

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


def make_client(uri: str, **kwargs: Any) -> AsyncMongoClient[dict[str, Any]]:
    """An AsyncMongoClient with timeouts that fail fast enough for an operator to notice."""
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": int(SERVER_SELECTION_SECONDS * 1000),
        "connectTimeoutMS": 10_000,
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
    client = make_client(await resolve_uri(settings), **kwargs)
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
