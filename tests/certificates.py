"""Throwaway TLS certificates for SMTP tests, made with the openssl command line at test time.

`TestAuthority` is a private certificate authority: it issues server certificates for any name and validity
period, so one test can present a trusted certificate, one for the wrong host and one that has expired.
`self_signed` makes a certificate that is its own issuer (nothing vouches for it unless a client trusts it).
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
# `openssl ca` is the one subcommand that takes explicit start and end dates in every OpenSSL 3 release.
_CA_CONFIG = """\
[ca]
default_ca = test_ca
[test_ca]
database = {directory}/index.txt
new_certs_dir = {directory}
serial = {directory}/serial
default_md = sha256
policy = any_name
unique_subject = no
copy_extensions = copy
[any_name]
commonName = supplied
"""


def _openssl(*args: str) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _subject_alt_names(names: Sequence[str]) -> str:
    entries = [f"IP:{name}" if name.replace(".", "").isdigit() or ":" in name else f"DNS:{name}" for name in names]
    return "subjectAltName=" + ",".join(entries)


def _asn1_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def self_signed(directory: Path, names: Sequence[str] = ("127.0.0.1", "localhost")) -> tuple[Path, Path]:
    """A self-signed certificate for `names` (IP addresses or DNS names), valid for two days: (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "self-signed.pem", directory / "self-signed.key"
    _openssl(
        "req", "-x509", *_EC_KEY, "-keyout", str(key), "-out", str(cert), "-days", "2",
        "-subj", f"/CN={names[0]}", "-addext", _subject_alt_names(names),
    )  # fmt: skip
    return cert, key


@dataclass(frozen=True)
class TestAuthority:
    """A certificate authority that exists only for one test session; `ca` is its certificate (PEM)."""

    __test__ = False  # not a pytest test class despite the name

    directory: Path
    ca: Path
    ca_key: Path

    @classmethod
    def create(cls, directory: Path) -> TestAuthority:
        """A new authority under `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        ca, ca_key = directory / "ca.pem", directory / "ca.key"
        _openssl(
            "req", "-x509", *_EC_KEY, "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=Test CA",
        )  # fmt: skip
        (directory / "index.txt").write_text("")
        (directory / "serial").write_text("01\n")
        (directory / "ca.cnf").write_text(_CA_CONFIG.format(directory=directory))
        return cls(directory, ca, ca_key)

    def issue(
        self,
        label: str,
        names: Sequence[str],
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> tuple[Path, Path]:
        """A server certificate for `names` signed by this authority, (cert, key); valid from an hour ago for
        two days unless `not_before` / `not_after` say otherwise (a past `not_after` makes an expired one)."""
        now = datetime.now(UTC)
        start = not_before or now - timedelta(hours=1)
        end = not_after or now + timedelta(days=2)
        cert, key, request = (self.directory / f"{label}{suffix}" for suffix in (".pem", ".key", ".csr"))
        _openssl(
            "req", "-new", *_EC_KEY, "-keyout", str(key), "-out", str(request),
            "-subj", f"/CN={names[0]}", "-addext", _subject_alt_names(names),
        )  # fmt: skip
        _openssl(
            "ca", "-batch", "-notext", "-config", str(self.directory / "ca.cnf"),
            "-cert", str(self.ca), "-keyfile", str(self.ca_key), "-in", str(request), "-out", str(cert),
            "-startdate", _asn1_time(start), "-enddate", _asn1_time(end),
        )  # fmt: skip
        return cert, key

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this authority only (host names and dates are still verified)."""
        return ssl.create_default_context(cafile=str(self.ca))


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A server-side context presenting `certificate` (cert, key)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context
