"""How fast answers are read: the classifier alone, then whole sync passes against a local IMAP server.

Prints figures; asserts nothing. The classifier runs over a mix of real-world shapes (replies, out-of-office
replies, Postfix / Gmail / Microsoft 365 / Exim bounces, unsubscribe mails, newsletters). The sync part puts
`--messages` replies to real sends in a pymap mailbox on loopback (the demo's IMAP server) and times one pass
of the inbox sync over them on the embedded database (or MONGO_URI), from login to the last answer applied.

Usage: .venv/bin/python scripts/bench_inbox.py [--classify 2000] [--messages 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import demo_inbox  # noqa: E402
from app.config import load_settings  # noqa: E402
from app.domain.inbound_classify import classify, parse  # noqa: E402
from app.inbound.imap_reader import read_mailbox  # noqa: E402
from app.inbound.sync import InboxSync  # noqa: E402
from app.inbound.sync_values import SyncOptions  # noqa: E402
from app.logging import configure_logging  # noqa: E402
from app.store import schema  # noqa: E402
from app.store.client import Database, connect  # noqa: E402
from app.store.schema import ensure_schema  # noqa: E402

ACCOUNT = "bench@outreach.example.net"


def shapes(n: int) -> list[bytes]:
    """`n` messages cycling through the demo's answer shapes, each answering a different send."""
    out = []
    for i in range(n):
        mid = f"<outbound.{i:024x}.1.0@outreach.example.net>"
        kind = demo_inbox.ANSWERS[i % len(demo_inbox.ANSWERS)]
        out.append(demo_inbox.answer(kind, f"p{i}@prospect{i}.example", ACCOUNT, mid, "Quick question"))
    return out


def bench_classify(n: int) -> None:
    messages = shapes(n)
    started = time.perf_counter()
    kinds: dict[str, int] = {}
    for raw in messages:
        kind = classify(parse(raw)).kind
        kinds[kind] = kinds.get(kind, 0) + 1
    elapsed = time.perf_counter() - started
    tracemalloc.start()  # a second pass for memory: tracing slows the first one down several times
    for raw in messages[:200]:
        classify(parse(raw))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"classify: {n} messages in {elapsed:.2f} s = {1000 * elapsed / n:.3f} ms/message; peak {peak / 1e6:.1f} MB")
    print(f"  classes: {kinds}")


async def seed(db: Database, server: demo_inbox.LocalImapServer, n: int) -> None:
    """One account reading the server, one campaign, `n` leads each with a sent step 1, and `n` replies."""
    account = await db[schema.EMAIL_ACCOUNTS].insert_one(
        {
            "email": ACCOUNT,
            "smtp_host": "127.0.0.1",
            "smtp_port": 2525,
            "smtp_security": "none",
            "status": "active",
            "imap_host": "127.0.0.1",
            "imap_port": server.port,
            "imap_security": "none",
            "imap_username": server.user,
            "imap_password": server.password,
        }
    )
    campaign = str((await db[schema.CAMPAIGNS].insert_one({"name": "bench", "status": "active"})).inserted_id)
    leads = [
        {"campaign_id": campaign, "lead_data": [{"email": f"p{i}@prospect{i}.example", "status": "contacted"}]}
        for i in range(n)
    ]
    ids = (await db[schema.CAMPAIGN_LEADS].insert_many(leads)).inserted_ids
    sends = []
    for i, lead in enumerate(ids):
        mid = f"<outbound.{lead}.1.0@outreach.example.net>"
        sends.append(
            {"_id": f"{lead}:1:0", "lead_id": str(lead), "step_order": 1, "recipient_index": 0}
            | {"email": f"p{i}@prospect{i}.example", "message_id": mid, "account_id": str(account.inserted_id)}
            | {"state": "sent", "campaign_id": campaign}
        )
        raw = demo_inbox.reply(f"p{i}@prospect{i}.example", ACCOUNT, mid, "Quick question")
        await asyncio.to_thread(server.append, raw)
    await db[schema.SENDS].insert_many(sends)


async def bench_sync(n: int) -> None:
    if not demo_inbox.available():
        print("sync: pymap is not installed (make install adds it); skipped")
        return
    settings = load_settings().with_overrides(db_name=f"bench_inbox_{uuid.uuid4().hex[:8]}")
    settings.home.mkdir(parents=True, exist_ok=True)
    server = demo_inbox.LocalImapServer("bench", "bench-password", settings.home / "bench-imap.log").start()
    try:
        async with connect(settings) as db:
            await ensure_schema(db)
            await seed(db, server, n)
            sync = InboxSync(db, read_mailbox(30.0), owner="bench", options=SyncOptions(due_only=False, batch=n))
            try:
                started = time.perf_counter()
                [report] = await sync.run_once()
                elapsed = time.perf_counter() - started
                started = time.perf_counter()
                [again] = await sync.run_once()
                idle = time.perf_counter() - started
            finally:
                sync.close()
            stopped = await db[schema.CAMPAIGN_LEADS].count_documents({"progress.stopped": True})
            await db.client.drop_database(settings.db_name)
    finally:
        server.stop()
    print(
        f"sync: {report.read} replies read and applied in {elapsed:.2f} s = {1000 * elapsed / max(report.read, 1):.2f}"
        f" ms/message ({stopped} leads stopped); a pass with nothing new: {1000 * idle:.0f} ms ({again.read} read)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classify", type=int, default=2000, help="messages to classify")
    parser.add_argument("--messages", type=int, default=300, help="replies for the sync pass")
    args = parser.parse_args()
    if not (1 <= args.classify <= 100_000 and 1 <= args.messages <= 5000):
        parser.error("--classify must be 1-100000 and --messages 1-5000")
    configure_logging("WARNING", "console")
    bench_classify(args.classify)
    asyncio.run(bench_sync(args.messages))


if __name__ == "__main__":
    main()
