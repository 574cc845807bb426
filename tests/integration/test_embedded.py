"""The embedded server: started on loopback, reused, shared by racing processes, durable, and stopped cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from app.store import embedded

REPO = Path(__file__).resolve().parents[2]

# A child process that waits for a shared "go" file, then asks for the server and prints what it got.
RACER = """
import json, sys, time
from pathlib import Path
from app.store import embedded
home, go = Path(sys.argv[1]), Path(sys.argv[2])
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.001)
info = embedded.ensure_running(home)
print(json.dumps({"pid": info.pid, "port": info.port}))
"""


# A child process that starts the server with a small log bound, prints where it is and exits, as a command does.
STARTER = """
import json, sys
from pathlib import Path
from app.store import embedded
embedded.LOG_MAX_BYTES, embedded.LOG_BACKUPS = int(sys.argv[2]), int(sys.argv[3])
info = embedded.ensure_running(Path(sys.argv[1]))
print(json.dumps({"pid": info.pid, "port": info.port}))
"""


def _kill_if_server(pid: int) -> None:
    if embedded._pid_is_server(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """An OUTBOUND_HOME of its own; whatever server was started there is stopped afterwards, even on failure."""
    path = tmp_path / "home"
    yield path
    recorded = embedded._read_state(path)
    embedded.stop(path, timeout=10)
    if recorded is not None:
        _kill_if_server(recorded.pid)


@pytest.fixture
def server_pids() -> Iterator[list[int]]:
    """Pids of servers a test saw; any still running at the end are killed (a second server must not linger)."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        _kill_if_server(pid)


def _client(info: embedded.ServerInfo) -> MongoClient[dict[str, Any]]:
    return MongoClient(info.uri, serverSelectionTimeoutMS=10_000, tz_aware=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=20)
    return proc.pid


def _write_state(home: Path, pid: int, port: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": pid,
        "host": "127.0.0.1",
        "port": port,
        "storage_path": str(home / "data"),
        "log_path": str(home / "embedded.log"),
        "started_at": 0.0,
    }
    (home / embedded.STATE_FILE).write_text(json.dumps(state))


def test_ensure_running_starts_a_server_on_loopback_and_records_it(home: Path) -> None:
    info = embedded.ensure_running(home)
    assert info.host == "127.0.0.1"
    assert info.port > 0
    assert info.uri == f"mongodb://127.0.0.1:{info.port}/?directConnection=true"
    assert Path(info.storage_path) == home / "data"
    assert json.loads((home / "embedded.json").read_text())["pid"] == info.pid
    with _client(info) as client:
        assert client.admin.command("ping")["ok"] == 1
    assert embedded.status(home) == info


def test_second_ensure_running_reuses_the_running_server(home: Path) -> None:
    first = embedded.ensure_running(home)
    second = embedded.ensure_running(home)
    assert (second.pid, second.port) == (first.pid, first.port)
    assert second == first


def test_two_processes_starting_at_once_share_one_server(home: Path, tmp_path: Path, server_pids: list[int]) -> None:
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(home), str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.3)  # both interpreters are up and polling for the go file
    go.touch()
    reports = []
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    server_pids.extend(report["pid"] for report in reports)
    assert reports[0] == reports[1], "both commands must be handed the same server"
    running = embedded.status(home)
    assert running is not None
    assert running.port == reports[0]["port"]
    log = (home / embedded.LOG_FILE).read_text()
    assert len(embedded._LISTENING.findall(log)) == 1, "exactly one server was started on the data directory"


def test_data_persists_across_stop_and_start(home: Path) -> None:
    first = embedded.ensure_running(home)
    with _client(first) as client:
        client.outbound.campaigns.insert_one({"_id": "kept", "name": "Survives a restart"})
    assert embedded.stop(home) == first
    assert embedded.status(home) is None

    second = embedded.ensure_running(home)
    assert second.pid != first.pid
    with _client(second) as client:
        assert client.outbound.campaigns.find_one({"_id": "kept"}) == {"_id": "kept", "name": "Survives a restart"}


def test_stale_state_with_a_dead_pid_is_replaced_by_a_fresh_server(home: Path) -> None:
    dead = _dead_pid()
    _write_state(home, dead, _free_port())
    assert embedded.status(home) is None

    info = embedded.ensure_running(home)
    assert info.pid != dead
    assert json.loads((home / "embedded.json").read_text())["pid"] == info.pid
    with _client(info) as client:
        assert client.admin.command("ping")["ok"] == 1


def test_corrupt_state_file_is_treated_as_not_running(home: Path) -> None:
    home.mkdir(parents=True)
    (home / embedded.STATE_FILE).write_text("{not json")
    assert embedded.status(home) is None
    info = embedded.ensure_running(home)
    assert embedded.status(home) == info


def test_state_naming_an_unrelated_live_process_is_neither_reused_nor_killed(home: Path) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_state(home, bystander.pid, _free_port())
        assert embedded.status(home) is None
        assert embedded.stop(home) is None
        assert bystander.poll() is None, "stop() must never signal a process that is not our server"
        assert not (home / embedded.STATE_FILE).exists()
    finally:
        bystander.kill()
        bystander.wait(timeout=20)


def test_state_copied_from_another_home_is_neither_reused_nor_stopped(home: Path, tmp_path: Path) -> None:
    other_home = tmp_path / "other"
    other = embedded.ensure_running(other_home)
    try:
        # As after restoring a backup of one home into another: the record names the first home's server.
        home.mkdir(parents=True)
        (home / embedded.STATE_FILE).write_text((other_home / embedded.STATE_FILE).read_text())
        assert embedded.status(home) is None
        assert embedded.stop(home) is None
        assert embedded.status(other_home) == other, "the other home's server keeps running"

        mine = embedded.ensure_running(home)
        assert mine.pid != other.pid
        assert Path(mine.storage_path) == home / embedded.DATA_DIR
    finally:
        embedded.stop(other_home, timeout=10)


def test_stop_when_not_running_returns_none(home: Path) -> None:
    assert embedded.stop(home) is None
    home.mkdir(parents=True, exist_ok=True)
    _write_state(home, _dead_pid(), _free_port())
    assert embedded.stop(home) is None
    assert not (home / embedded.STATE_FILE).exists(), "a stale record is cleared"


def test_status_is_none_when_not_running(home: Path) -> None:
    assert embedded.status(home) is None
    info = embedded.ensure_running(home)
    assert embedded.status(home) == info
    embedded.stop(home)
    assert embedded.status(home) is None


def _exit_status(pid: int, within: float) -> int | None:
    """Reap our child `pid`, polling up to `within` seconds; its raw wait status, or None while it still runs."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return status
        time.sleep(0.05)
    return None


@pytest.mark.parametrize("round_", range(3))
def test_terminate_shuts_a_server_with_open_connections_down_cleanly(home: Path, round_: int) -> None:
    info = embedded.ensure_running(home)
    with _client(info) as client:
        client.outbound.campaigns.insert_one({"round": round_})
        embedded._terminate(info.pid)
    status = _exit_status(info.pid, within=20)
    assert status is not None, "the server ignored SIGTERM"
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0


def test_stop_ends_the_server_process(home: Path) -> None:
    info = embedded.ensure_running(home)
    stopped = embedded.stop(home)
    assert stopped == info
    assert not embedded._pid_is_server(info.pid)
    assert not embedded._port_open(info.host, info.port)
    assert not (home / embedded.STATE_FILE).exists()


def _unknown_op_code(port: int, op_code: int) -> None:
    """Send a message with an unknown op code: the server logs one WARNING line naming it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(struct.pack("<iiii", 20, 1, 0, op_code) + b"abcd")


def _wait_for(path: Path, text: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_the_log_of_a_long_running_server_stays_under_its_size_bound(home: Path) -> None:
    bound, backups = 4096, 2
    starter = subprocess.run(
        [sys.executable, "-c", STARTER, str(home), str(bound), str(backups)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert starter.returncode == 0, starter.stderr
    port = json.loads(starter.stdout.strip().splitlines()[-1])["port"]

    # About 120 bytes a line: 400 lines fill the log and its backups several times over.
    for op_code in range(10_000, 10_400):
        _unknown_op_code(port, op_code)
    log = home / embedded.LOG_FILE
    _wait_for(log, "unsupported op_code 10399")

    files = sorted(home.glob(embedded.LOG_FILE + "*"))
    assert [f.name for f in files] == ["embedded.log", "embedded.log.1", "embedded.log.2"]
    assert all(f.stat().st_size <= bound for f in files), [f.stat().st_size for f in files]
    texts = [f.read_text() for f in files]
    assert all(text.endswith("\n") and text[:2] == "20" for text in texts), "files are cut at line ends"
    assert not any("op_code 10000\n" in text for text in texts), "the oldest lines were rotated away"
    # The command that started the server has exited; the log is still written, and the server still answers.
    with MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=10_000) as c:
        assert c.admin.command("ping")["ok"] == 1


def test_a_server_that_exits_at_start_is_reported_with_its_exit_code_and_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"

    with pytest.raises(embedded.EmbeddedError, match="exited with code 2") as caught:
        embedded.spawn_server(str(tmp_path / "data"), log, extra_args=("--no-such-flag",), detach=False)

    assert str(log) in str(caught.value)
    _wait_for(log, "--no-such-flag")
