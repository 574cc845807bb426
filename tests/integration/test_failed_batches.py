"""A batch that fails part way (a database error between SMTP rounds) gives back every reservation it never
handed to SMTP: the accounts' counts and wait windows are free again at once, not held for the rest of the day."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo.errors import AutoReconnect

from app.cli.dispatch_cmds import build_dispatcher
from app.config import Settings
from app.dispatch.dispatcher import DispatcherOptions
from app.store import leases, schema
from app.store.client import Database
from app.store.leases import Lease
from app.transport.mailbox import MailboxServer
from app.transport.smtp import SmtpSender
from tests.factories import add_account, add_campaign, add_lead


class _SecondInsertFails:
    """The `sends` collection, whose second `insert_many` (the second SMTP round's ledger entries) fails before
    reaching the server, as when the connection drops."""

    def __init__(self, coll: Any) -> None:
        self._coll = coll
        self.inserts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._coll, name)

    async def insert_many(self, docs: Any, **kwargs: Any) -> Any:
        self.inserts += 1
        if self.inserts == 2:
            raise AutoReconnect("connection reset before the insert was sent")
        return await self._coll.insert_many(docs, **kwargs)


async def test_a_database_error_between_rounds_gives_back_the_reservations_of_the_rounds_not_begun(
    db: Database, tmp_path: Path
) -> None:
    async with MailboxServer(tmp_path / "mail") as server:
        # One account, no wait window: a batch of four goes out in four rounds of one.
        account = await add_account(db, server.port, email="one@sender.example", max_daily_sends=10)
        campaign = await add_campaign(db, daily_limit=None)
        for i in range(4):
            await add_lead(db, campaign, [{"email": f"f{i}@x.example"}])
        sender = SmtpSender(timeout=10)
        options = DispatcherOptions(once=True, poll_interval=0.05, concurrency=4, batch_size=4)
        dispatcher = build_dispatcher(db, Settings(), sender, options)
        sends = _SecondInsertFails(db[schema.SENDS])
        dispatcher.pipeline.delivery.rounds.sends = sends  # type: ignore[assignment]
        try:
            outcomes = await dispatcher.pipeline.process_batch(await _claim_all(db, dispatcher.owner))
        finally:
            await sender.close()

    # Round one went out; round two failed before its ledger entry; rounds three and four never began. The
    # batch is handed back whole, due again shortly; the ledger records the one sent, for the next pass.
    assert len(server.messages) == 1
    assert [o.kind for o in outcomes] == ["db_error"] * 4
    usage = await db[schema.ACCOUNT_USAGE].find_one({"account_id": account})
    assert usage is not None
    assert usage["sent"] == usage["committed"] == 1
    assert usage.get("open", {}) == {}, "a reservation of this live dispatcher was left open"
    assert [d["state"] async for d in db[schema.SENDS].find()] == ["sent"]
    waiting = [d async for d in db[schema.CAMPAIGN_LEADS].find({"progress.completed": {"$ne": True}})]
    assert len(waiting) == 4
    assert all("lease_token" not in d["progress"] for d in waiting)


async def _claim_all(db: Database, owner: str) -> list[tuple[dict[str, Any], Lease]]:
    leads = db[schema.CAMPAIGN_LEADS]
    ids = [d["_id"] async for d in leads.find({}, projection={"_id": 1})]
    return await leases.claim_many(leads, ids, owner=owner, now=datetime.now(UTC), lease_seconds=120)
