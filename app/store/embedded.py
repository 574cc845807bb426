"""Start, reuse and stop the local MongoDB-compatible server (SecantusDB) used when MONGO_URI is unset.

The server always runs as a separate process (`python -m secantus`); it is never imported. Its data lives
under OUTBOUND_HOME, its address in `embedded.json`, and an exclusive file lock makes sure two commands
started at once share one server instead of starting two on the same data.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

HOST = "127.0.0.1"
STATE_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"
LOG_FILE = "embedded.log"
DATA_DIR = "data"
_LISTENING = re.compile(r"listening on ([\d.]+):(\d+)")


class EmbeddedError(RuntimeError):
    """The embedded server could not be started, found or stopped; the message says what to do."""


@dataclass(frozen=True)
class ServerInfo:
    """Where a running embedded server is."""

    pid: int
    host: str
    port: int
    storage_path: str
    log_path: str
    started_at: float

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"


def is_installed() -> bool:
    """True when the SecantusDB package can be run (`pip install 'outbound[embedded]'`)."""
    return importlib.util.find_spec("secantus") is not None


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_is_server(pid: int, storage_path: str | None = None) -> bool:
    """True when `pid` is a live secantus process, serving `storage_path` when given.

    Guards against a recycled pid and against another home's server.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            args = cmdline.read_bytes()
        except OSError:
            return False
        return b"secantus" in args and (storage_path is None or os.fsencode(storage_path) in args.split(b"\0"))
    return True


def spawn_server(
    storage_path: str,
    log_path: Path,
    *,
    extra_args: tuple[str, ...] = (),
    timeout: float = 60.0,
    detach: bool = True,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `python -m secantus` on 127.0.0.1 with a free port; return the process and its port."""
    if not is_installed():
        raise EmbeddedError(
            "MONGO_URI is unset and the embedded database is not installed: "
            "run `pip install 'outbound[embedded]'` or set MONGO_URI to your MongoDB server"
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    start_offset = log.tell()
    args = [sys.executable, "-m", "secantus", "--host", HOST, "--port", "0", "--storage-path", storage_path]
    proc = subprocess.Popen(
        [*args, *extra_args],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=detach,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with log_path.open("rb") as f:
            f.seek(start_offset)
            match = _LISTENING.search(f.read().decode("utf-8", "replace"))
        if match and _port_open(HOST, int(match.group(2))):
            return proc, int(match.group(2))
        if proc.poll() is not None:
            raise EmbeddedError(f"the embedded database exited with code {proc.returncode}; see {log_path}")
        time.sleep(0.05)
    proc.kill()
    raise EmbeddedError(f"the embedded database did not start within {timeout:.0f}s; see {log_path}")


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state(home: Path) -> ServerInfo | None:
    path = home / STATE_FILE
    try:
        info = ServerInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    # A record copied from another home (a restored backup) names that home's server, which is not ours to use.
    return info if info.storage_path == str(home / DATA_DIR) else None


def _alive(info: ServerInfo) -> bool:
    return _pid_is_server(info.pid, info.storage_path) and _port_open(info.host, info.port)


def status(home: Path) -> ServerInfo | None:
    """The running embedded server for `home`, or None."""
    info = _read_state(home)
    return info if info is not None and _alive(info) else None


def ensure_running(home: Path, timeout: float = 60.0) -> ServerInfo:
    """Return the embedded server for `home`, starting it if it is not running."""
    with _locked(home):
        info = _read_state(home)
        if info is not None and _alive(info):
            return info
        storage = home / DATA_DIR
        storage.mkdir(parents=True, exist_ok=True)
        log_path = home / LOG_FILE
        proc, port = spawn_server(str(storage), log_path, timeout=timeout)
        info = ServerInfo(proc.pid, HOST, port, str(storage), str(log_path), time.time())
        tmp = home / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(info)))
        tmp.replace(home / STATE_FILE)
        return info


def stop(home: Path, timeout: float = 30.0) -> ServerInfo | None:
    """Stop the embedded server for `home` (SIGTERM, then SIGKILL after `timeout`). Returns what ran."""
    with _locked(home):
        info = _read_state(home)
        (home / STATE_FILE).unlink(missing_ok=True)
        if info is None or not _pid_is_server(info.pid, info.storage_path):
            return None
        _terminate(info.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_is_server(info.pid, info.storage_path):
            _reap(info.pid)
            time.sleep(0.05)
        if _pid_is_server(info.pid, info.storage_path):
            os.kill(info.pid, signal.SIGKILL)
        return info


def _terminate(pid: int) -> None:
    """Send SIGTERM to the server's main thread.

    Python runs signal handlers only in the main thread. A process-wide SIGTERM that the kernel hands to one of
    the server's connection threads never wakes a main thread blocked on a lock, so the server would not stop
    (seen about every other time); a signal addressed to the main thread (tgkill) always interrupts it.
    """
    tgkill = getattr(ctypes.CDLL(None, use_errno=True), "tgkill", None)
    if tgkill is None or tgkill(pid, pid, signal.SIGTERM) != 0:
        os.kill(pid, signal.SIGTERM)


def _reap(pid: int) -> None:
    # The server may be our own child (started by this process); reap it so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
