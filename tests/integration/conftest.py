"""Fixtures for integration tests that send mail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.transport.mailbox import MailboxServer


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[MailboxServer]:
    """A loopback SMTP server recording what it accepts (messages also written under tmp_path/mail)."""
    server = MailboxServer(tmp_path / "mail")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
