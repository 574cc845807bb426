"""A real IMAP server for the tests: pymap (its in-memory `dict` backend) as a subprocess on 127.0.0.1.

pymap is started as `python -c "from pymap.main import main; main()" --host 127.0.0.1 --port P [--no-tls |
--cert C --key K] dict --demo-user U --demo-password W` (the package has no `__main__`; this is what its
`pymap` console script runs). What the tests rely on, read from pymap 0.36:

- The dict backend knows one user, the one on its command line: one server per mailbox owner
  (`start_imap_server(user=..., password=...)` starts more). Mail lives in memory and is gone at stop.
- With a certificate it offers STARTTLS (and still accepts a login in plain text); with `--no-tls` it does not
  offer STARTTLS. It has no implicit-TLS listener: `implicit_tls=True` puts a `TlsFront` in front of it (a TLS
  listener forwarding the decrypted bytes, as stunnel or a load balancer would before port 993).
- UIDs of a new folder start at 101. UIDVALIDITY is (seconds % 65535) << 16 plus 16 random bits, chosen when
  a folder is created: deleting and re-creating a folder changes it. INBOX cannot be deleted, but RENAME INBOX
  moves its mail to the new name and leaves a new, empty INBOX with a new UIDVALIDITY (`recreate_folder` does
  either).
- EXAMINE works, and FETCH BODY[] (without PEEK) would set \\Seen; `flags_of` shows the flags without changing
  them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from app.demo_inbox import greets, pymap_command, stop_process
from tests.certificates import TestAuthority, server_context

IMAP_USER = "alice@mail.example"
IMAP_PASSWORD = "imap-Pa55word"
_START_SECONDS = 20.0
_STOP_SECONDS = 10.0
_CLIENT_TIMEOUT = 10.0
_CONNECTION_SECONDS = 120.0  # longest a connection through a TlsFront may last
_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (into the listen backlog) and never says anything: a server that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


class TlsFront:
    """Implicit TLS on a loopback port, forwarding each connection in plain text to `target_port`."""

    def __init__(self, target_port: int, certificate: tuple[Path, Path]) -> None:
        self.target_port = target_port
        self.port = 0
        self._context = server_context(certificate)
        self._loop = asyncio.new_event_loop()
        # A client that refuses the certificate ends the handshake: not an error of the front.
        self._loop.set_exception_handler(lambda _loop, _context: None)
        self._thread = threading.Thread(target=self._loop.run_forever, name="imap-tls-front", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> None:
        """Listen (in a thread of its own) until `stop`."""
        self._thread.start()
        start = asyncio.start_server(self._forward, "127.0.0.1", 0, ssl=self._context)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(_START_SECONDS)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _forward(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_CONNECTION_SECONDS):
                server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
                await asyncio.gather(_pipe(client_in, server_out), _pipe(server_in, client_out))
        except (OSError, TimeoutError):
            pass
        finally:
            client_out.close()

    def stop(self) -> None:
        """Close the listener and every connection, and end the thread."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(_STOP_SECONDS)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_STOP_SECONDS)
        self._loop.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):  # bounded by the connection's timeout
            sink.write(data)
            await sink.drain()
    finally:
        sink.close()


@dataclass
class ImapServer:
    """One running pymap with one user. `port` speaks plain IMAP (and STARTTLS when started with a
    certificate); `tls_port` is the implicit-TLS front when started with `implicit_tls=True`."""

    port: int
    user: str
    password: str
    process: subprocess.Popen[bytes]
    log: Path
    certificate: tuple[Path, Path] | None = None
    front: TlsFront | None = None
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    @property
    def tls_port(self) -> int:
        """The implicit-TLS port (only with implicit_tls=True)."""
        if self.front is None:
            raise RuntimeError("this server was started without implicit_tls=True")
        return self.front.port

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A logged-in IMAPClient on the plain port (pymap allows that), logged out afterwards."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=_CLIENT_TIMEOUT)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def create_folder(self, folder: str) -> None:
        """Create `folder` (empty)."""
        with self.client() as client:
            client.create_folder(folder)

    def append(self, folder: str, raw: bytes, flags: Sequence[str | bytes] = ()) -> int:
        """Store the message `raw` in `folder` with `flags` (e.g. `[b"\\\\Seen"]`) and return its UID."""
        with self.client() as client:
            reply = client.append(folder, raw, flags=tuple(flags))
        found = _APPENDUID.search(reply)
        if found is None:
            raise AssertionError(f"APPEND gave no APPENDUID: {reply!r}")
        return int(found.group(1))

    def flags_of(self, folder: str, uid: int) -> tuple[bytes, ...]:
        """The flags of message `uid` in `folder`, read without changing them (EXAMINE, FETCH FLAGS)."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            flags: tuple[bytes, ...] = client.get_flags([uid]).get(uid, ())
        return flags

    def uidvalidity(self, folder: str) -> int:
        """The folder's UIDVALIDITY (STATUS)."""
        with self.client() as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def recreate_folder(self, folder: str) -> int:
        """Empty `folder` by replacing it with a new one, as a server does when a mailbox is rebuilt, and return
        its new UIDVALIDITY (the old UIDs mean nothing in it).

        A folder is deleted and created again; INBOX, which cannot be deleted, is renamed away (pymap then makes
        a new INBOX) and the renamed copy deleted. pymap draws UIDVALIDITY from the clock and 16 random bits: the
        rare draw equal to the old value is re-drawn (at most 10 times).
        """
        old = self.uidvalidity(folder)
        with self.client() as client:
            for attempt in range(10):
                if folder.upper() == "INBOX":
                    client.rename_folder(folder, f"replaced-inbox-{attempt}")
                    client.delete_folder(f"replaced-inbox-{attempt}")
                else:
                    client.delete_folder(folder)
                    client.create_folder(folder)
                new = int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])
                if new != old:
                    return new
        raise AssertionError(f"UIDVALIDITY of {folder} stayed {old} after 10 re-creations")

    def stop(self) -> None:
        """Stop the front and the process (terminate, then kill), each within a bound."""
        if self._stopped:
            return
        self._stopped = True
        if self.front is not None:
            self.front.stop()
        stop_process(self.process)


def _launch(port: int, user: str, password: str, certificate: tuple[Path, Path] | None, log: Path) -> Any:
    tls = ["--cert", str(certificate[0]), "--key", str(certificate[1])] if certificate else ["--no-tls"]
    args = pymap_command(port, user, password, tls)
    # pymap prefers CERT_FILE/KEY_FILE from the environment over --cert/--key; FQDN names it in its greeting.
    env = {k: v for k, v in os.environ.items() if k not in ("CERT_FILE", "KEY_FILE")} | {"FQDN": "localhost"}
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def _wait_until_greeting(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + _START_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        if greets(port):
            return True
        time.sleep(0.05)
    return False


def start_server(
    directory: Path,
    *,
    user: str = IMAP_USER,
    password: str = IMAP_PASSWORD,
    certificate: tuple[Path, Path] | None = None,
    implicit_tls: bool = False,
) -> ImapServer:
    """Start pymap on a free loopback port with one user, and wait until it greets (bounded).

    `certificate` (cert, key): it offers STARTTLS with it; `implicit_tls` (needs `certificate`): also a TLS front.
    """
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"pymap-{user}.log"
    for _ in range(3):  # a port taken between choosing and binding it: choose another
        port = free_port()
        process = _launch(port, user, password, certificate, log)
        if _wait_until_greeting(process, port):
            server = ImapServer(port, user, password, process, log, certificate)
            if implicit_tls:
                if certificate is None:
                    raise ValueError("implicit_tls needs a certificate")
                server.front = TlsFront(port, certificate)
                server.front.start()
            return server
        stop_process(process)
    raise RuntimeError(f"pymap did not start; its log:\n{log.read_text(errors='replace')[-2000:]}")


StartImapServer = Callable[..., ImapServer]


@pytest.fixture(scope="session")
def imap_authority(tmp_path_factory: pytest.TempPathFactory) -> TestAuthority:
    """A private certificate authority for IMAP servers' certificates (clients trust it via its `ca` file)."""
    return TestAuthority.create(tmp_path_factory.mktemp("imap-ca"))


@pytest.fixture
def start_imap_server(tmp_path: Path) -> Iterator[StartImapServer]:
    """Start pymap servers: `start_imap_server(user=..., password=..., certificate=..., implicit_tls=...)`;
    every one is stopped at teardown."""
    started: list[ImapServer] = []

    def start(**options: Any) -> ImapServer:
        server = start_server(tmp_path / "imap", **options)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def imap_server(start_imap_server: StartImapServer) -> ImapServer:
    """A plain-text pymap (no STARTTLS) whose one user is IMAP_USER / IMAP_PASSWORD."""
    return start_imap_server()
