"""Inbound metrics against real servers: messages read from a real IMAP mailbox (pymap) counted by class, once,
and the account's sync lag read from the database afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import gauges, registry
from app.metrics.registry import Metrics
from app.store.client import Database
from app.transport.mailbox import MailboxServer
from tests import inbound_messages as im
from tests.imap_server import ImapServer
from tests.integration.test_inbox_sync import message_id, sent_world, sync_once


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    fresh = Metrics()
    previous = registry.install(fresh)
    try:
        yield fresh
    finally:
        registry.install(previous)


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.text().decode())
        for s in family.samples
    }


async def test_messages_read_are_counted_by_class_once_and_the_sync_lag_follows_the_last_read(
    db: Database, smtp: MailboxServer, imap_server: ImapServer, metrics: Metrics
) -> None:
    w = await sent_world(db, smtp, imap_server, [["ann"], ["dan"]])
    acct = w.account_email
    ann, dan = await message_id(db, w.ref("ann")), await message_id(db, w.ref("dan"))
    imap_server.append("INBOX", im.reply(from_addr="ann@anncorp.example", to_addr=acct, in_reply_to=ann))
    imap_server.append("INBOX", im.dsn_postfix(recipient="dan@dancorp.example", original_message_id=dan, sender=acct))
    imap_server.append("INBOX", im.newsletter(to_addr=acct))

    await sync_once(db)
    await sync_once(db)  # nothing new: nothing counted twice

    samples = _samples(metrics)
    for kind in ("reply", "bounce", "unrelated"):
        assert samples[("outbound_inbound_messages_total", (("account_id", w.account), ("class", kind)))] == 1, kind
    assert sum(v for (name, _), v in samples.items() if name == "outbound_inbound_messages_total") == 3
    assert await gauges.refresh(db, metrics.gauges, datetime.now(UTC))
    lag = _samples(metrics)[("outbound_inbox_sync_lag_seconds", (("account_id", w.account),))]
    assert 0 <= lag < 30
