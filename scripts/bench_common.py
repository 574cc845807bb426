"""Building blocks of the dispatch benchmark: the database server, an SMTP sink process, the dispatcher child.

Everything listens on 127.0.0.1. The SMTP sink and each dispatcher run in their own processes (spawned, not
forked, so no driver thread is copied half-way), so their CPU time and memory are measured apart from the
benchmark's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import logging
import math
import os
import re
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from subprocess import Popen
from typing import Any

import psutil
from aiosmtpd.smtp import SMTP, Envelope, Session
from pymongo import monitoring

from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import Dispatcher, DispatcherOptions
from app.domain.settlement import Outcome
from app.logging import configure_logging
from app.store import embedded
from app.store.client import make_client
from app.transport.smtp import SmtpSender

HOST = "127.0.0.1"
_MESSAGE_ID = re.compile(rb"(?im)^Message-ID:[ \t]*(<[^>\r\n]+>)")
# Every wait on another process is bounded; these are generous ceilings, not expected durations.
CHILD_START_SECONDS = 120.0
PIPE_REPLY_SECONDS = 30.0
MAX_SINK_DELAY_SECONDS = 5.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    """The median (mean of the middle two for an even count); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero or missing."""
    if not denominator or math.isnan(denominator):
        return math.nan
    return numerator / denominator


# --- the database server -------------------------------------------------------------------------------------


@dataclass
class DatabaseServer:
    """A SecantusDB process started for this run, with its own storage directory."""

    proc: Popen[bytes]
    port: int
    storage: str

    @property
    def uri(self) -> str:
        return f"mongodb://{HOST}:{self.port}/?directConnection=true"

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far."""
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def rss_mb(self) -> float:
        """The server's resident memory now, in MB."""
        return float(psutil.Process(self.proc.pid).memory_info().rss) / 1e6

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait(timeout=30)


def start_database(workdir: Path, *, in_memory: bool) -> DatabaseServer:
    """Start SecantusDB on loopback: storage under `workdir`, or its own temporary ':memory:' directory."""
    storage = ":memory:" if in_memory else str(workdir / "db")
    proc, port = embedded.spawn_server(storage, workdir / "db.log", detach=False, timeout=120)
    return DatabaseServer(proc, port, storage)


# --- the SMTP sink process -----------------------------------------------------------------------------------


class _SinkHandler:
    """Accepts every message and remembers (Message-ID, accept time) only."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, float]] = []
        self.delay = 0.0  # seconds each DATA takes before its reply, as a real provider's server does

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        content = envelope.original_content or b""
        match = _MESSAGE_ID.search(content)
        self.accepted.append((match.group(1).decode("ascii", "replace") if match else "", time.time()))
        return "250 2.0.0 accepted"


async def _serve_sink(conn: Connection) -> None:
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    handler = _SinkHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.local", loop=loop), HOST, 0)
    conn.send(server.sockets[0].getsockname()[1])
    stopping = asyncio.Event()

    def answer() -> None:
        command = conn.recv()
        if command == "count":
            conn.send(len(handler.accepted))
        elif command == "collect":
            conn.send(handler.accepted)
            handler.accepted = []
        elif command == "cpu":
            conn.send(time.process_time())
        elif isinstance(command, tuple) and command[0] == "delay":
            handler.delay = max(0.0, min(float(command[1]), MAX_SINK_DELAY_SECONDS))
            conn.send(handler.delay)
        else:
            stopping.set()

    loop.add_reader(conn.fileno(), answer)
    await stopping.wait()
    loop.remove_reader(conn.fileno())
    server.close()


def sink_main(conn: Connection) -> None:
    """Entry point of the SMTP sink process: serve until told to stop over `conn`."""
    asyncio.run(_serve_sink(conn))


class SmtpSink:
    """The parent's handle on the sink process: its port, how many messages it accepted, their accept times."""

    def __init__(self, ctx: SpawnContext) -> None:
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=sink_main, args=(child,), name="smtp-sink", daemon=True)
        self._proc.start()
        self.port = int(self._ask(None, CHILD_START_SECONDS))

    def _ask(self, command: str | tuple[str, float] | None, timeout: float = PIPE_REPLY_SECONDS) -> Any:
        if command is not None:
            self._conn.send(command)
        if not self._conn.poll(timeout):
            raise RuntimeError(f"the SMTP sink did not answer {command or 'start'!r} within {timeout:.0f}s")
        return self._conn.recv()

    @property
    def pid(self) -> int:
        assert self._proc.pid is not None
        return self._proc.pid

    def count(self) -> int:
        """Messages accepted since the last collect()."""
        return int(self._ask("count"))

    def collect(self) -> list[tuple[str, float]]:
        """(Message-ID, accept time) of every message since the last collect(), and forget them."""
        return list(self._ask("collect"))

    def cpu_seconds(self) -> float:
        """CPU the sink has used so far."""
        return float(self._ask("cpu"))

    def set_delay(self, seconds: float) -> float:
        """Make every DATA take `seconds` (at most MAX_SINK_DELAY_SECONDS) before its reply; 0 for none."""
        return float(self._ask(("delay", seconds)))

    def stop(self) -> None:
        """Stop the sink (and kill it if it does not stop within 10 s)."""
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)


def wait_for_count(sink: SmtpSink, expected: int, deadline: float, children: Sequence[SpawnProcess]) -> int:
    """Poll the sink every 50 ms until it has `expected` messages, the deadline passes or every child exits."""
    seen = sink.count()
    while seen < expected and time.monotonic() < deadline and any(c.is_alive() for c in children):
        time.sleep(0.05)
        seen = sink.count()
    return seen


# --- the dispatcher child process ----------------------------------------------------------------------------


class CommandCounter(monitoring.CommandListener):
    """Counts the commands this process sends to the database (one started event = one round trip): `counts` by
    command, `targets` by command and collection ("update account_usage")."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.targets: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.counts[event.command_name] += 1
        # The command's first field names its collection (getMore names it under "collection").
        target = event.command.get("collection") if event.command_name == "getMore" else None
        target = target or event.command.get(event.command_name)
        self.targets[f"{event.command_name} {target}" if isinstance(target, str) else event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


@dataclass(frozen=True)
class DispatcherSpec:
    """How one dispatcher child runs."""

    uri: str
    db_name: str
    concurrency: int
    batch_size: int
    poll_interval: float
    log_level: str
    log_path: str
    deadline_seconds: float


@dataclass
class DispatcherReport:
    """What a dispatcher child measured about itself between `go` and the end of its drain."""

    started_at: float = 0.0
    finished_at: float = 0.0
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    inherited_rss_mb: float = 0.0  # ru_maxrss: also counts the parent's pages at fork time, before exec
    outcomes: dict[str, int] = field(default_factory=dict)
    commands: dict[str, int] = field(default_factory=dict)
    commands_by_collection: dict[str, int] = field(default_factory=dict)
    db_errors: int = 0
    error: str | None = None


async def _watch(stop: Event, dispatcher: Dispatcher, deadline: float) -> None:
    # A multiprocessing Event cannot be awaited; polling it every 20 ms costs nothing measurable.
    while not stop.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    dispatcher.stop()


def peak_rss_mb() -> float:
    """This process's own peak RSS since it started (VmHWM), in MB.

    Not `ru_maxrss`: Linux carries into it the resident size the forked copy of the parent had before exec, so
    a child spawned by a benchmark that has just seeded a million leads reports the parent's memory.
    """
    try:
        with Path("/proc/self/status").open() as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _dispatch(spec: DispatcherSpec, ready: Event, go: Event, stop: Event) -> DispatcherReport:
    counter = CommandCounter()
    client = make_client(spec.uri, event_listeners=[counter])
    sender = SmtpSender(timeout=30.0, default_starttls=False)
    report = DispatcherReport()
    try:
        db = client[spec.db_name]
        await db.command("ping")
        options = DispatcherOptions(
            batch_size=spec.batch_size, concurrency=spec.concurrency, poll_interval=spec.poll_interval
        )
        outcomes: Counter[str] = Counter()

        def on_outcome(outcome: Outcome) -> None:
            outcomes[outcome.kind] += 1

        dispatcher = build_dispatcher(db, Settings(), sender, options, on_outcome=on_outcome)
        ready.set()
        if not await asyncio.to_thread(go.wait, CHILD_START_SECONDS):
            raise RuntimeError("no go signal from the benchmark")
        counter.counts.clear()
        counter.targets.clear()
        cpu0, report.started_at = _cpu_now(), time.time()
        watcher = asyncio.create_task(_watch(stop, dispatcher, time.monotonic() + spec.deadline_seconds))
        stats = await dispatcher.run()
        report.finished_at, report.cpu_seconds = time.time(), _cpu_now() - cpu0
        await watcher
        report.outcomes, report.commands, report.db_errors = dict(outcomes), dict(counter.counts), stats.db_errors
        report.commands_by_collection = dict(counter.targets)
    finally:
        await sender.close()
        await client.close()
    report.peak_rss_mb = peak_rss_mb()
    report.inherited_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KB on Linux
    return report


def dispatcher_main(spec: DispatcherSpec, ready: Event, go: Event, stop: Event, results: Queue[Any]) -> None:
    """Entry point of a dispatcher child: connect, signal `ready`, run from `go` until `stop`, report."""
    with Path(spec.log_path).open("a") as log:
        configure_logging(spec.log_level, "json", stream=log)
        profile_path = os.environ.get("OUTBOUND_BENCH_PROFILE")
        profiler = cProfile.Profile() if profile_path else None
        try:
            if profiler is not None:
                profiler.enable()
            report = asyncio.run(_dispatch(spec, ready, go, stop))
        except Exception as exc:
            report = DispatcherReport(error=f"{type(exc).__name__}: {exc}")
            ready.set()
        finally:
            if profiler is not None and profile_path:
                profiler.disable()
                # One file per child: the throughput phase's dispatcher is the first to write.
                profiler.dump_stats(f"{profile_path}.{os.getpid()}")
    results.put(report)


@dataclass
class DispatcherGroup:
    """Some dispatcher children started together, waiting for one `go`."""

    ctx: SpawnContext
    specs: list[DispatcherSpec]
    go: Event = field(init=False)
    stop: Event = field(init=False)
    results: Queue[Any] = field(init=False)
    procs: list[SpawnProcess] = field(default_factory=list)
    go_time: float = 0.0

    def __post_init__(self) -> None:
        self.go, self.stop, self.results = self.ctx.Event(), self.ctx.Event(), self.ctx.Queue()

    def start(self) -> None:
        """Start every child and wait until each is connected and ready."""
        readies = []
        for index, spec in enumerate(self.specs):
            ready = self.ctx.Event()
            proc = self.ctx.Process(
                target=dispatcher_main,
                args=(spec, ready, self.go, self.stop, self.results),
                name=f"dispatcher-{index}",
            )
            proc.start()
            self.procs.append(proc)
            readies.append(ready)
        for ready in readies:
            if not ready.wait(CHILD_START_SECONDS):
                raise RuntimeError(f"a dispatcher child was not ready within {CHILD_START_SECONDS:.0f}s")

    def begin(self) -> None:
        """Let every child start dispatching now."""
        self.go_time = time.time()
        self.go.set()

    def finish(self, timeout: float = 120.0) -> list[DispatcherReport]:
        """Tell every child to stop, and collect their reports."""
        self.stop.set()
        reports = [self.results.get(timeout=timeout) for _ in self.procs]
        for proc in self.procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
        failed = [r.error for r in reports if r.error]
        if failed:
            raise RuntimeError(f"a dispatcher child failed: {failed[0]}")
        return reports


def temp_workdir() -> tempfile.TemporaryDirectory[str]:
    """A temporary directory for the database's storage, logs and the dispatcher logs."""
    return tempfile.TemporaryDirectory(prefix="outbound-bench-")
