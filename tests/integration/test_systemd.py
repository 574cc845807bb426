"""`Type=notify` for real: `outbound run-dispatcher` and `outbound serve` as their own processes, told by
NOTIFY_SOCKET about a real AF_UNIX datagram socket, say READY=1, ping the watchdog and say STOPPING=1 on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 30
WATCHDOG_USEC = "200000"  # a ping every 0.1 s


class NotifySocket:
    """systemd's side of the protocol: a datagram socket that collects what the service says."""

    def __init__(self) -> None:
        # A short directory: a socket path must fit in 108 bytes, and pytest's tmp_path may not.
        self.directory = tempfile.mkdtemp(prefix="sd-")
        self.path = os.path.join(self.directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, line: str, proc: subprocess.Popen[str], count: int = 1) -> list[str]:
        """Collect messages until `count` of them carry `line` (bounded by WAIT_SECONDS and the process)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if sum(line in m.splitlines() for m in self.messages) >= count:
                return self.messages
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                if proc.poll() is not None:
                    break
        raise AssertionError(f"no {count} x {line!r} in {self.messages} (exit code {proc.poll()})")

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def _start(cli_env: dict[str, str], notify: NotifySocket, cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTBOUND_", "MONGO_", "DB_NAME", "WATCHDOG_"))}
    env.update(cli_env)
    env.update(
        NOTIFY_SOCKET=notify.path,
        WATCHDOG_USEC=WATCHDOG_USEC,
        OUTBOUND_SECRET_KEY="s" * 40,
        OUTBOUND_LEASE_SECONDS="2",
        PYTHONPATH=str(ROOT),
    )
    command = [sys.executable, "-m", "app.cli.main", *args]
    return subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=WAIT_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=WAIT_SECONDS)


def test_run_dispatcher_is_ready_after_its_first_beat_pings_the_watchdog_and_says_stopping_on_sigterm(
    cli_env: dict[str, str], sync_db: Any, notify: NotifySocket, tmp_path: Path
) -> None:
    port = _free_port()
    args = ("run-dispatcher", "--no-inbox", "--poll-interval", "0.05", "--metrics-port", str(port))
    proc = _start(cli_env, notify, tmp_path, *args)
    try:
        messages = notify.wait_for("READY=1", proc)
        # Ready only once the schema is in place and the dispatcher's first heartbeat is written.
        assert sync_db["dispatchers"].count_documents({"pid": proc.pid, "stopped_at": {"$exists": False}}) == 1
        assert "campaign_leads" in sync_db.list_collection_names()
        [ready] = [m for m in messages if "READY=1" in m.splitlines()]
        assert "STATUS=dispatching as " in ready
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert scraped.status_code == 200
        names = {family.name for family in text_string_to_metric_families(scraped.text)}
        assert {"outbound_emails", "outbound_smtp_send_seconds", "outbound_due_backlog"} <= names
        notify.wait_for("WATCHDOG=1", proc, count=3)
    except BaseException:
        proc.kill()
        raise
    _, err = _stop(proc)
    assert proc.returncode == 0, err
    stopping = [m for m in notify.wait_for("STOPPING=1", proc) if "STOPPING=1" in m.splitlines()]
    assert stopping and "STATUS=stopping" in stopping[0]
    pings = [m for m in notify.messages if m.startswith("WATCHDOG=1")]
    assert all("STATUS=dispatching: " in m for m in pings)


def test_serve_is_ready_when_the_app_is_pings_the_watchdog_and_says_stopping_on_sigterm(
    cli_env: dict[str, str], sync_db: Any, notify: NotifySocket, tmp_path: Path
) -> None:
    port = _free_port()
    proc = _start(cli_env, notify, tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port))
    try:
        notify.wait_for("READY=1", proc)
        # Ready means answering: the first request after READY=1 is served.
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        notify.wait_for("WATCHDOG=1", proc, count=3)
    except BaseException:
        proc.kill()
        raise
    _, err = _stop(proc)
    assert proc.returncode == 0, err
    notify.wait_for("STOPPING=1", proc)
    [ready] = [m for m in notify.messages if "READY=1" in m.splitlines()]
    assert f"STATUS=serving on 127.0.0.1:{port}" in ready
    assert notify.messages.index(ready) < min(i for i, m in enumerate(notify.messages) if "STOPPING=1" in m)


def test_without_notify_socket_the_dispatcher_runs_and_stops_as_before(
    cli_env: dict[str, str], sync_db: Any, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(cli_env, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "app.cli.main", "run-dispatcher", "--no-inbox", "--once", "--json"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=WAIT_SECONDS)
    assert done.returncode == 0, done.stderr
    assert '"claimed": 0' in done.stdout
