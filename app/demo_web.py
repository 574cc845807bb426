"""The demo's web service: `outbound serve`'s app on loopback beside the demo dispatcher, and a sign-in for it.

Each demo run replaces the demo user's password with a new random one, printed once, so a password from an
earlier run (or from a terminal's scrollback) stops working as soon as the next demo starts.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime

import uvicorn

from app.cli.serve_cmds import server_config
from app.config import Settings
from app.store import sessions, users
from app.store.client import Database
from app.web import create_app
from app.web.passwords import hash_password

DEMO_USER = "admin@outreach.example.net"
DEMO_WEB_PORT = 8025
START_SECONDS = 20.0


@dataclass(frozen=True)
class DemoLogin:
    """Who signs in to the demo's dashboard, with this run's password."""

    email: str
    password: str


def demo_settings(settings: Settings) -> Settings:
    """The settings the demo serves and sends with: a secret key for this run when none is configured."""
    if settings.secret_key:
        return settings
    return settings.with_overrides(secret_key=secrets.token_urlsafe(32))


async def demo_login(db: Database, now: datetime) -> DemoLogin:
    """(Re)create the demo's admin user with a new random password; its earlier sessions end."""
    existing = await users.find_by_email(db, DEMO_USER)
    if existing is not None:
        await sessions.delete_for_user(db, existing.id)
        await users.remove(db, existing.id)
    password = secrets.token_urlsafe(12)
    await users.add(db, DEMO_USER, "admin", hash_password(password), now)
    return DemoLogin(DEMO_USER, password)


def _socket() -> socket.socket:
    """127.0.0.1:8025 (outbound serve's default) when free, else any free loopback port."""
    try:
        return socket.create_server(("127.0.0.1", DEMO_WEB_PORT))
    except OSError:
        return socket.create_server(("127.0.0.1", 0))


class _DemoServer(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C belongs to the demo, which stops the service itself."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """Serve the web app on loopback for the block's duration; yields its base URL."""
    sock = _socket()
    port = sock.getsockname()[1]
    server = _DemoServer(server_config(create_app(settings), settings))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        while not server.started and not task.done() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if not server.started:
            raise RuntimeError("the demo's web service did not start (see web.start_failed above)")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=START_SECONDS)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        sock.close()
