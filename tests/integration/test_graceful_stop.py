"""Stopping (SIGTERM) starts nothing new: claimed leads not yet in the SMTP exchange are handed back untouched."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions
from app.store import schema
from app.transport.mailbox import Fault, MailboxServer, background
from app.transport.smtp import SmtpSender
from tests.factories import add_account, add_campaign, add_lead

DATA_SECONDS = 0.3


async def test_a_stop_mid_batch_finishes_the_sends_in_flight_and_hands_back_the_rest(db, tmp_path: Path) -> None:
    seen_data = threading.Event()

    def slow_data(stage: str, _: str) -> Fault | None:
        if stage == "data":
            seen_data.set()
            time.sleep(DATA_SECONDS)  # the server's own thread: every DATA reply takes this long
        return None

    with background(MailboxServer(tmp_path / "mail", fault=slow_data)) as server:
        campaign = await add_campaign(db)
        for n in range(3):
            await add_account(db, server.port, email=f"s{n}@example.com")
        leads = [await add_lead(db, campaign, [{"email": f"p{i}@x.example"}]) for i in range(20)]
        sender = SmtpSender(timeout=10)
        try:
            options = DispatcherOptions(poll_interval=0.05, concurrency=40, batch_size=20, shutdown_grace_seconds=20)
            dispatcher = build_dispatcher(db, Settings(), sender, options)
            run = asyncio.create_task(dispatcher.run())
            deadline = time.monotonic() + 20
            while not seen_data.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert seen_data.is_set(), "no send reached DATA"
            dispatcher.stop()  # what SIGTERM does
            await asyncio.wait_for(run, timeout=30)
        finally:
            await sender.close()
        received = list(server.messages)

    states = Counter([s["state"] async for s in db[schema.SENDS].find()])
    # Only the round in the SMTP exchange when the stop came went out (one message per account connection),
    # and each of those finished: nothing is in doubt, nothing else was started.
    assert 1 <= len(received) <= 3
    assert states == Counter({"sent": len(received)})
    docs = {doc["_id"]: doc async for doc in db[schema.CAMPAIGN_LEADS].find({"_id": {"$in": leads}})}
    sent_to = {m.recipients[0] for m in received}
    for doc in docs.values():
        progress = doc["progress"]
        assert "lease_token" not in progress
        if doc["lead_data"][0]["email"] in sent_to:
            assert progress["completed"] is True
        else:
            # Handed back as it was, due again for the next dispatcher.
            assert progress.get("processed_recipients", {}) == {}
            assert progress["next_due_at"] is not None
    usage = [u async for u in db[schema.ACCOUNT_USAGE].find()]
    assert sum(u["sent"] for u in usage) == sum(u["committed"] for u in usage) == len(received)
