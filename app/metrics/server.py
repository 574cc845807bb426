"""`run-dispatcher --metrics-port`: the process's metrics over HTTP, from a thread of prometheus_client's own.

The port is bound before the dispatcher starts, so a port in use stops the command with a message instead of a
dispatcher running unobserved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, start_http_server

DEFAULT_HOST = "127.0.0.1"


class MetricsPortError(Exception):
    """The metrics endpoint could not listen where it was asked to."""


@contextmanager
def serving(registry: CollectorRegistry, host: str, port: int) -> Iterator[int]:
    """Serve `registry` as Prometheus text on host:port (port 0: any free one) until the block ends; the port."""
    try:
        server, thread = start_http_server(port, addr=host.strip("[]"), registry=registry)
    except OSError as exc:
        raise MetricsPortError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc} "
            "(choose another --metrics-port, or stop what listens there)"
        ) from exc
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
