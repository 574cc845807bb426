"""Fixtures for integration tests that send mail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.transport.mailbox import MailboxServer
from tests.imap_server import imap_authority as imap_authority  # IMAP fixtures: a real pymap server process
from tests.imap_server import imap_server as imap_server
from tests.imap_server import start_imap_server as start_imap_server


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[MailboxServer]:
    """A loopback SMTP server recording what it accepts (messages also written under tmp_path/mail)."""
    server = MailboxServer(tmp_path / "mail")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
