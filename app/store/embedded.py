"""Start, reuse and stop the local MongoDB-compatible server (SecantusDB) used when MONGO_URI is unset.

The server always runs as a separate process (`python -m secantus`); it is never imported. Its data lives
under OUTBOUND_HOME, its address in `embedded.json`, and an exclusive file lock makes sure two commands
started at once share one server instead of starting two on the same data.

Its log, `embedded.log`, is kept under a size bound however long the server runs: the server writes to a pipe,
not to the file, and a small pump process (this file run as a script, standard library only) copies each line
into the log through `logging.handlers.RotatingFileHandler`, which moves a full `embedded.log` to
`embedded.log.1` (and so on, `LOG_BACKUPS` of them) once it reaches `LOG_MAX_BYTES`: at most
(LOG_BACKUPS + 1) x LOG_MAX_BYTES on disk. The server cannot rotate a file it writes itself, and the command
that starts it exits long before it does, so the pump is a process of its own, started beside the server; it
ends when the server's output ends (the server exited). While the server starts, the pump also echoes the lines
to the command that started it, which reads the port from the "listening on" line and then stops reading.
Were the pump killed, the server would keep serving (writes to a closed pipe fail and are ignored) and log
nothing more until it is restarted.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import json
import logging
import logging.handlers
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
STATE_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"
LOG_FILE = "embedded.log"
LOG_MAX_BYTES = 10 * 1024 * 1024  # one log file; a full one is renamed embedded.log.1, .2, ...
LOG_BACKUPS = 3  # rotated files kept: the log takes at most (LOG_BACKUPS + 1) x LOG_MAX_BYTES
DATA_DIR = "data"
_PUMP_LINE_BYTES = 65_536  # a longer line is logged in pieces, so the pump's memory stays bounded
_pumps: list[subprocess.Popen[bytes]] = []
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
    log_max_bytes: int | None = None,
    log_backups: int | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `python -m secantus` on 127.0.0.1 with a free port; return the process and its port.

    Its output goes to `log_path` through the log pump, rotated at `log_max_bytes` (default LOG_MAX_BYTES) with
    `log_backups` (default LOG_BACKUPS) older files kept.
    """
    if not is_installed():
        raise EmbeddedError(
            "MONGO_URI is unset and the embedded database is not installed: "
            "run `pip install 'outbound[embedded]'` or set MONGO_URI to your MongoDB server"
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        log_path.open("ab").close()  # the pump runs unattended: say now if the log cannot be written
    except OSError as exc:
        raise EmbeddedError(f"cannot write the embedded database log {log_path}: {exc.strerror or exc}") from None
    max_bytes = LOG_MAX_BYTES if log_max_bytes is None else log_max_bytes
    backups = LOG_BACKUPS if log_backups is None else log_backups
    output, server_end = os.pipe()
    try:
        # -I: the script's directory (app/store) must not shadow standard library modules.
        pump = subprocess.Popen(
            [sys.executable, "-I", str(Path(__file__).resolve()), str(log_path), str(max_bytes), str(backups)],
            stdin=output,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=detach,
        )
        args = [sys.executable, "-m", "secantus", "--host", HOST, "--port", "0", "--storage-path", storage_path]
        proc = subprocess.Popen(
            [*args, *extra_args],
            stdout=server_end,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
        )
    finally:
        os.close(output)
        os.close(server_end)
    # Kept so a finished pump is reaped by a later start (no zombie in a long-lived process).
    _pumps[:] = [p for p in _pumps if p.poll() is None] + [pump]
    assert pump.stdout is not None
    with pump.stdout as echo:
        try:
            return proc, _await_listening(proc, echo.fileno(), log_path, timeout)
        except BaseException:
            if proc.poll() is None:
                proc.kill()
            raise


def _await_listening(proc: subprocess.Popen[bytes], echo: int, log_path: Path, timeout: float) -> int:
    """Read the server's start-up output (echoed by the pump) until it says which port it listens on."""
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([echo], [], [], 0.05)
        chunk = os.read(echo, 65_536) if ready else b""
        seen = (seen + chunk)[-_PUMP_LINE_BYTES:]
        match = _LISTENING.search(seen.decode("utf-8", "replace"))
        if match and _port_open(HOST, int(match.group(2))):
            return int(match.group(2))
        if ready and not chunk:  # the pump ended: the server's output ended (it exited), or the pump failed
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if proc.poll() is None:
                raise EmbeddedError(f"the embedded database log pump stopped; see {log_path}")
        if proc.poll() is not None:
            raise EmbeddedError(f"the embedded database exited with code {proc.returncode}; see {log_path}")
    raise EmbeddedError(f"the embedded database did not start within {timeout:.0f}s; see {log_path}")


def _pump(log_path: str, max_bytes: int, backups: int) -> None:
    """Copy the server's output (stdin) into the rotating log, echoing it to stdout while someone reads it."""
    # Ctrl-C reaches the server too; keep copying until it has written its last line and closed its output.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    handler = logging.handlers.RotatingFileHandler(
        log_path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", errors="backslashreplace"
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.terminator = ""  # lines keep their own line ends
    echo: Any = sys.stdout.buffer
    for line in iter(lambda: sys.stdin.buffer.readline(_PUMP_LINE_BYTES), b""):
        text = line.decode("utf-8", "backslashreplace")
        handler.emit(logging.LogRecord("secantus", logging.INFO, "", 0, text, None, None))
        if echo is not None:
            try:
                echo.write(line)
                echo.flush()
            except OSError:  # the starting command has its port and stopped reading
                echo = None
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    handler.close()


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


if __name__ == "__main__":
    # The log pump: `python -I embedded.py LOG_PATH MAX_BYTES BACKUPS`, started by spawn_server.
    _pump(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
