"""The sd_notify protocol over a real AF_UNIX datagram socket: what is sent, to where, and when nothing is."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.systemd import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in a temp dir, as systemd's notify socket is; its path."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield sock, path
    finally:
        sock.close()


def test_ready_sends_one_datagram_with_the_status_on_one_line(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})

    assert notifier.ready("dispatching\nas host:1")

    assert sock.recv(4096).decode() == "READY=1\nSTATUS=dispatching as host:1"


def test_an_abstract_socket_name_is_reached_through_its_at_sign() -> None:
    name = f"outbound-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).stopping("stopping")
        assert sock.recv(4096).decode() == "STOPPING=1\nSTATUS=stopping"


def test_without_notify_socket_nothing_is_sent_and_no_watchdog_runs() -> None:
    notifier = Notifier({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert not notifier.ready("up")
    asyncio.run(asyncio.wait_for(notifier.keep_alive(), timeout=1))  # returns at once


def test_a_socket_that_is_gone_is_logged_not_raised(tmp_path: Path) -> None:
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")}).status("up")


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("2000000", None, 1.0),
        ("2000000", "self", 1.0),
        ("2000000", "1", None),  # another process's watchdog
        ("0", None, None),
        ("soon", None, None),
        (None, None, None),
    ],
)
def test_the_watchdog_pings_at_half_its_interval_only_for_this_process(
    usec: str | None, pid: str | None, expected: float | None
) -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify"}
    if usec is not None:
        env["WATCHDOG_USEC"] = usec
    if pid is not None:
        env["WATCHDOG_PID"] = str(os.getpid()) if pid == "self" else pid
    assert Notifier(env).watchdog_seconds == expected


def test_keep_alive_pings_the_watchdog_with_a_fresh_status_until_cancelled(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})  # a ping every 50 ms
    calls = iter(range(1000))

    async def main() -> None:
        task = asyncio.create_task(notifier.keep_alive(lambda: f"pass {next(calls)}"))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    sock.settimeout(0.5)
    messages = []
    for _ in range(50):
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    assert 3 <= len(messages) <= 10
    assert messages[:2] == ["WATCHDOG=1\nSTATUS=pass 0", "WATCHDOG=1\nSTATUS=pass 1"]
