"""systemd's notify protocol (`Type=notify`, `WatchdogSec=`): READY, WATCHDOG, STOPPING and STATUS messages.

A message is one datagram of `KEY=value` lines to the socket named by `$NOTIFY_SOCKET` (a path, or `@name` for
an abstract socket); see sd_notify(3). Without `NOTIFY_SOCKET` (not run by systemd, or `Type=simple`) nothing is
sent. The watchdog is pinged at half of `WATCHDOG_USEC`, and only when `WATCHDOG_PID` (when set) is this process:
a child that inherited the variables must not keep its parent's watchdog happy. A message that cannot be sent is
logged and dropped; it never stops the service.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

from app.logging import get_logger


class Notifier:
    """Talks to the service manager named by `environ` (the process's environment by default)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_seconds = _watchdog_interval(env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID"))

    @property
    def enabled(self) -> bool:
        """True when a service manager listens (`NOTIFY_SOCKET` is set)."""
        return self.address is not None

    def send(self, *lines: str) -> bool:
        """Send one message of `KEY=value` lines; False when there is no socket or it could not be sent."""
        if self.address is None or not lines:
            return False
        payload = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload, self.address)
        except OSError as exc:
            get_logger().warning("systemd.notify_failed", error=str(exc), message=lines[0].partition("=")[0])
            return False
        return True

    def ready(self, status: str) -> bool:
        """The service is up: systemd finishes `systemctl start` and starts the units that wait for it."""
        return self.send("READY=1", f"STATUS={_one_line(status)}")

    def stopping(self, status: str) -> bool:
        """The service is shutting down (a SIGTERM arrived)."""
        return self.send("STOPPING=1", f"STATUS={_one_line(status)}")

    def status(self, status: str) -> bool:
        """A line `systemctl status` shows."""
        return self.send(f"STATUS={_one_line(status)}")

    async def keep_alive(self, status: Callable[[], str] | None = None) -> None:
        """Ping the watchdog (with a fresh status line, when given) until cancelled; returns at once when systemd
        set no watchdog for this process. The pings come from the event loop, so a blocked loop stops them."""
        if self.watchdog_seconds is None or self.address is None:
            return
        while True:
            lines = ["WATCHDOG=1"]
            if status is not None:
                lines.append(f"STATUS={_one_line(status())}")
            self.send(*lines)
            await asyncio.sleep(self.watchdog_seconds)


def _address(value: str) -> str | None:
    """The socket address `NOTIFY_SOCKET` names: a path, or an abstract name (`@` becomes a NUL byte)."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    return value if value.startswith("/") else None


def _watchdog_interval(usec: str | None, pid: str | None) -> float | None:
    """Half of `WATCHDOG_USEC` in seconds, when it is set for this process; None otherwise."""
    if not usec:
        return None
    try:
        micros = int(usec)
        if pid and int(pid) != os.getpid():
            return None
    except ValueError:
        get_logger().warning("systemd.bad_watchdog", watchdog_usec=usec, watchdog_pid=pid)
        return None
    return micros / 2_000_000 if micros > 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.split())
