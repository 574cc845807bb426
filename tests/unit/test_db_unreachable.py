"""What an unreachable database is called in the one line an operator reads."""

from __future__ import annotations

import pytest

from app.store.client import hosts_of, unreachable_reason


@pytest.mark.parametrize(
    ("uri", "hosts"),
    [
        ("mongodb://127.0.0.1:1/", "127.0.0.1:1"),
        (
            "mongodb://user:s3cret@db1.internal:27017,db2.internal:27017/outbound?replicaSet=rs0",
            "db1.internal:27017,db2.internal:27017",
        ),
        ("mongodb+srv://app:p%40ss@cluster0.example.mongodb.net/?retryWrites=true", "cluster0.example.mongodb.net"),
        ("mongodb://db.internal", "db.internal"),
    ],
)
def test_hosts_never_carry_the_credentials(uri: str, hosts: str) -> None:
    assert hosts_of(uri) == hosts
    assert "s3cret" not in hosts_of(uri) and "p%40ss" not in hosts_of(uri)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            "127.0.0.1:1: [Errno 111] Connect call failed ('127.0.0.1', 1) (configured timeouts: socketTimeoutMS: "
            "10000.0ms, connectTimeoutMS: 10000.0ms), Timeout: 10.0s, Topology Description: <...>",
            "connection refused (nothing listens on that port)",
        ),
        ("db.nowhere:27017: [Errno -2] Name or service not known, Timeout: 10.0s", "host not found"),
        ("10.0.0.9:27017: timed out (configured timeouts: ...), Timeout: 10.0s", "no answer (timed out)"),
        (
            "db:27017: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed, Timeout: 10.0s",
            "the TLS handshake failed",
        ),
        ("something else entirely", "something else entirely"),
    ],
)
def test_the_reason_in_a_few_words(error: str, reason: str) -> None:
    assert unreachable_reason(error) == reason
