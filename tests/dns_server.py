"""A DNS server on loopback that answers from known records (dnslib), and a UDP port that never answers.

    with dns_server({"acme.example": {"MX": ["mx1.acme.example"]}}) as (host, port): ...

A name in the table answers NOERROR (with its records of the asked type, or none); any other name NXDOMAIN,
with the authoritative flag set, as the zone's own server would.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from dnslib import AAAA, MX, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

Records = Mapping[str, Mapping[str, Sequence[str]]]  # name -> record type -> values (MX: "host" or "10 host")


class KnownRecords(BaseResolver):  # type: ignore[misc]
    """Answers from `records`; counts the questions asked, by (name, type)."""

    def __init__(self, records: Records) -> None:
        self.records = {name.lower().rstrip("."): types for name, types in records.items()}
        self.asked: list[tuple[str, str]] = []

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        self.asked.append((name, qtype))
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in self.records[name].get(qtype, ()):
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=_rdata(qtype, value), ttl=60))
        return reply


def _rdata(qtype: str, value: str) -> Any:
    if qtype == "MX":
        preference, _, host = value.rpartition(" ")
        return MX(host, int(preference or 10))
    if qtype == "A":
        return A(value)
    if qtype == "AAAA":
        return AAAA(value)
    raise ValueError(f"no test records of type {qtype}")


@contextmanager
def dns_server(records: Records) -> Iterator[tuple[str, int, KnownRecords]]:
    """Serve `records` on 127.0.0.1 at a free UDP port: (host, port, resolver)."""
    resolver = KnownRecords(records)
    server = DNSServer(
        resolver, address="127.0.0.1", port=0, logger=DNSLogger("-request,-reply,-truncated,-recv,-send,-data")
    )
    server.start_thread()
    try:
        yield "127.0.0.1", server.server.server_address[1], resolver
    finally:
        server.stop()
        server.server.server_close()


@contextmanager
def silent_port() -> Iterator[tuple[str, int]]:
    """A bound UDP port on 127.0.0.1 that reads nothing and answers nothing: every question times out."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield "127.0.0.1", sock.getsockname()[1]
    finally:
        sock.close()
