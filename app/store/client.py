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


async def resolve_uri(settings: Settings) -> str:
    """MONGO_URI when set; otherwise the embedded server's address, starting it if needed."""
    if settings.mongo_uri:
        return settings.mongo_uri
    info = await asyncio.to_thread(embedded.ensure_running, settings.home)
    return info.uri


def make_client(uri: str, **kwargs: Any) -> AsyncMongoClient[dict[str, Any]]:
    """An AsyncMongoClient with timeouts that fail fast enough for an operator to notice."""
    options: dict[str, Any] = {
        "serverSelectionTimeoutMS": 10_000,
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
