"""What one lead's writes cost a SecantusDB server, by the indexes they maintain and the way they are sent.

    .venv/bin/python scripts/bench_writes.py [--leads 2000] [--in-memory]

Starts its own SecantusDB on 127.0.0.1 and measures the server's CPU (psutil) per lead for:

1. the claim (one `update_many` of a batch of 20) and the fenced release (one statement per lead) of
   campaign_leads, with the schema's indexes, with the two retired ones added back, and with `campaign_due`
   alone;
2. the ledger outcomes of a round of 20, as 20 fenced statements and as one `update_many`.

Figures go to docs/PERFORMANCE.md ("Where the database server's time goes").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from bson import ObjectId
from pymongo import ASCENDING, IndexModel, MongoClient, UpdateOne
from pymongo.collection import Collection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.store import embedded
from app.store.schema import CAMPAIGN_LEADS, INDEXES, SENDS

BATCH = 20
RETIRED = [
    IndexModel([("progress.next_due_at", ASCENDING)], name="due"),
    IndexModel([("progress.lease_until", ASCENDING)], name="lease_until", sparse=True),
]


class Server:
    def __init__(self, workdir: Path, in_memory: bool) -> None:
        storage = ":memory:" if in_memory else str(workdir / "db")
        self.proc, port = embedded.spawn_server(storage, workdir / "db.log", detach=False, timeout=120)
        self.ps = psutil.Process(self.proc.pid)
        self.client: MongoClient[dict[str, Any]] = MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true")

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def claim_and_release(server: Server, name: str, indexes: list[IndexModel], leads: int) -> float:
    """Server CPU ms per lead for a batch claim and a fenced release of each lead."""
    coll: Collection[dict[str, Any]] = server.client.bench_writes[name]
    if indexes:
        coll.create_indexes(indexes)
    campaign, now = str(ObjectId()), datetime.now(UTC)
    docs = [
        {
            "_id": ObjectId(),
            "campaign_id": campaign,
            "lead_key": f"key{i}",
            "lead_data": [{"email": f"person{i}@example.com", "status": "pending"}],
            "progress": {"next_due_at": now, "current_step_order": 1},
        }
        for i in range(leads)
    ]
    coll.insert_many(docs)
    before = server.cpu()
    for start in range(0, leads, BATCH):
        ids = [d["_id"] for d in docs[start : start + BATCH]]
        token = uuid.uuid4().hex
        lease = {"progress.lease_token": token, "progress.lease_until": now, "progress.next_due_at": now}
        coll.update_many({"_id": {"$in": ids}, "progress.next_due_at": {"$lte": now}}, {"$set": lease})
        release = {
            "$set": {"lead_data.0.status": "contacted", "progress.next_due_at": now + timedelta(days=2)},
            "$unset": {"progress.lease_token": "", "progress.lease_until": ""},
        }
        coll.bulk_write([UpdateOne({"_id": i, "progress.lease_token": token}, release) for i in ids], ordered=False)
    return 1000.0 * (server.cpu() - before) / leads


def outcomes(server: Server, name: str, grouped: bool, leads: int) -> float:
    """Server CPU ms per entry for recording rounds of 20 `sent` outcomes."""
    coll: Collection[dict[str, Any]] = server.client.bench_writes[name]
    coll.create_indexes(INDEXES[SENDS])
    now, spent = datetime.now(UTC), 0.0
    update = {"$set": {"state": "sent", "updated_at": now, "sent_at": now}}
    for start in range(0, leads, BATCH):
        entries = [
            {
                "_id": f"lead{n}:1:0",
                "lead_id": f"lead{n}",
                "step_order": 1,
                "recipient_index": 0,
                "message_id": f"<m{n}@example.com>",
                "state": "sending",
                "token": uuid.uuid4().hex,
                "updated_at": now,
            }
            for n in range(start, start + BATCH)
        ]
        coll.insert_many(entries)
        before = server.cpu()
        if grouped:
            ids, tokens = [e["_id"] for e in entries], [e["token"] for e in entries]
            coll.update_many({"_id": {"$in": ids}, "token": {"$in": tokens}, "state": "sending"}, update)
        else:
            fenced = [UpdateOne({"_id": e["_id"], "token": e["token"], "state": "sending"}, update) for e in entries]
            coll.bulk_write(fenced, ordered=False)
        spent += server.cpu() - before
    return 1000.0 * spent / leads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=2000, help="leads (and ledger entries) per case")
    parser.add_argument("--in-memory", action="store_true", help="SecantusDB ':memory:' storage instead of disk")
    args = parser.parse_args(argv)
    if not BATCH <= args.leads <= 200_000:
        parser.error(f"--leads must be {BATCH}..200000")
    leads = args.leads - args.leads % BATCH
    schema_indexes = INDEXES[CAMPAIGN_LEADS]
    due_only = [i for i in schema_indexes if i.document["name"] == "campaign_due"]
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), args.in_memory)
        try:
            print(f"server CPU per lead, {leads} leads in batches of {BATCH}:")
            cases = [
                ("with the retired indexes", schema_indexes + RETIRED),
                ("the schema's indexes", schema_indexes),
                ("campaign_due alone", due_only),
            ]
            for number, (label, indexes) in enumerate(cases):
                ms = claim_and_release(server, f"leads{number}", indexes, leads)
                print(f"  claim + release, {label} ({len(indexes)}): {ms:.3f} ms")
            for grouped in (False, True):
                ms = outcomes(server, f"sends{int(grouped)}", grouped, leads)
                way = "one update_many per round" if grouped else "one statement per entry"
                print(f"  ledger outcome, {way}: {ms:.3f} ms")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
