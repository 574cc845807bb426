"""The real web app under uvicorn, as `outbound serve` runs it, on a loopback socket, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from app.cli.serve_cmds import server_config
from app.config import Settings
from app.web import create_app

START_SECONDS = 20


@contextmanager
def running_web(settings: Settings) -> Iterator[httpx.Client]:
    """Serve the app for `settings` until the block ends; a client for it."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(create_app(settings), settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert server.started, "the web service did not start"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, follow_redirects=False) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=START_SECONDS)
        sock.close()
