"""`outbound serve`: the web service (one-click unsubscribe links, health, readiness) under uvicorn, until SIGTERM."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import typer
import uvicorn
from fastapi import FastAPI

from app.cli.common import console, err_console, fail, settings_of
from app.config import ConfigError, Settings
from app.logging import get_logger
from app.systemd import Notifier
from app.web import create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8025
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1): reachable from this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or exit with a message naming what is in the way."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host.strip("[]"), port), family=family)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@contextmanager
def _exit_zero_after_stop() -> Iterator[None]:
    """uvicorn re-raises the signal that stopped it once it has shut down; answer it here, so a stop exits 0."""

    def stopped(sig: int, frame: FrameType | None) -> None:
        pass

    previous = {sig: signal.signal(sig, stopped) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _warn_if_exposed(host: str) -> None:
    if not is_loopback_host(host):
        err_console.print(
            f"[yellow]warning:[/] listening on {host}, not loopback: anyone who can reach this machine can reach "
            "the service directly; bind 127.0.0.1 behind a TLS reverse proxy (see deploy/README.md)."
        )


def _announce(settings: Settings, host: str, port: int) -> None:
    """Say where the service answers, once its database is ready."""
    shown = f"[{host}]" if ":" in host else host
    console.print(f"Outbound web service listening on http://{shown}:{port}")
    if settings.public_url:
        console.print(f"Unsubscribe links in messages point to {settings.public_url}/u/...")
    else:
        console.print(
            "OUTBOUND_PUBLIC_URL is unset: messages carry only the mailto unsubscribe, no link to this service."
        )
    get_logger().info("web.started", host=host, port=port, public_url=settings.public_url)


class _NotifyingServer(uvicorn.Server):
    """uvicorn's server, telling systemd (`Type=notify`) when a signal starts its shutdown."""

    def __init__(self, config: uvicorn.Config, notifier: Notifier) -> None:
        super().__init__(config)
        self.notifier = notifier

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            self.notifier.stopping("stopping: finishing the requests in progress")
        super().handle_exit(sig, frame)


def _ready(settings: Settings, host: str, port: int, notifier: Notifier) -> None:
    """The database is ready: say where the service answers, tell systemd, start the watchdog pings (they come
    from uvicorn's event loop, so a loop that blocks stops them)."""
    _announce(settings, host, port)
    notifier.ready(f"serving on {host}:{port}")
    watchdog = asyncio.get_running_loop().create_task(notifier.keep_alive(), name="watchdog")
    _WATCHDOGS.add(watchdog)  # held until done: the loop keeps only a weak reference to its tasks
    watchdog.add_done_callback(_WATCHDOGS.discard)


_WATCHDOGS: set[asyncio.Task[None]] = set()


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How uvicorn runs the app (it is handed a bound socket, so host and port are not set here)."""
    return uvicorn.Config(
        app,
        log_config=None,  # logs are structlog's (app/logging.py)
        access_log=False,  # request paths carry tokens; the routes log what matters, without addresses
        lifespan="on",  # a database that cannot be reached stops the start instead of being ignored
        server_header=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
        proxy_headers=True,  # from the reverse proxy on loopback only (uvicorn's forwarded_allow_ips default)
    )


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the web service on host:port until SIGTERM or SIGINT, then exit 0."""
    notifier = Notifier()
    try:
        app = create_app(settings, on_ready=lambda: _ready(settings, host, port, notifier))
    except ConfigError as exc:
        fail(str(exc), code=2)
    _warn_if_exposed(host)
    sock = listen(host, port)
    server = _NotifyingServer(server_config(app, settings), notifier)
    try:
        with _exit_zero_after_stop():
            server.run(sockets=[sock])
    except SystemExit:
        fail("the web service did not start (see web.start_failed above)")
    finally:
        sock.close()
    get_logger().info("web.stopped")


def register(app: typer.Typer) -> None:
    """Add `serve`."""

    @app.command("serve")
    def serve_command(
        ctx: typer.Context,
        host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on (keep loopback behind a proxy)."),
        port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port to listen on."),
    ) -> None:
        """Serve the one-click unsubscribe links (RFC 8058), /health and /ready until SIGTERM.

        Needs OUTBOUND_SECRET_KEY (the key the dispatcher signs links with) and, for links to appear in
        messages, OUTBOUND_PUBLIC_URL pointing at a TLS reverse proxy in front of this service.

        Example: outbound serve --host 127.0.0.1 --port 8025
        """
        serve(settings_of(ctx), host, port)
