"""What one lead's writes cost a SecantusDB server, by the indexes they maintain and the way they are sent.

    .venv/bin/python scripts/bench_writes.py [--leads 2000] [--in-memory]

Starts its own SecantusDB on 127.0.0.1 and measures the server's CPU (psutil) per lead for:

1. the claim (one `update_many` of a batch of 20) and the fenced release (one statement per lead) of
   campaign_leads, with the schema's indexes, with the two retired ones added back, and with `campaign_due`
   alone;
2. the ledger outcomes of a round of 20, as 20 fenced statements and as one `update_many`;
3. the in-flight mark and the commit of a round of 20 reservations on 20 accounts' `account_usage` documents,
   as one statement per document (the arbiter's way) and as one statement for all (an `update_many`; for the
   mark, a pipeline update that sets each document's own record).

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
from app.store.schema import ACCOUNT_USAGE, CAMPAIGN_LEADS, INDEXES, SENDS

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


def _usage_docs(coll: Collection[dict[str, Any]], accounts: int) -> list[str]:
    keys = [f"acct{n}:2026-12-03" for n in range(accounts)]
    hours = {f"{h:02d}": 3 for h in range(12)}
    coll.insert_many(
        [
            {"_id": k, "account_id": k.split(":")[0], "day": "2026-12-03", "sent": 36, "committed": 36, "hours": hours}
            for k in keys
        ]
    )
    return keys


def usage_round(server: Server, name: str, one_statement: bool, rounds: int) -> tuple[float, float]:
    """Server CPU ms per reservation for the in-flight mark and for the commit of rounds of 20 reservations,
    one per account."""
    coll: Collection[dict[str, Any]] = server.client.bench_writes[name]
    coll.create_indexes(INDEXES[ACCOUNT_USAGE])
    keys = _usage_docs(coll, BATCH)
    now, mark_cpu, commit_cpu = datetime.now(UTC), 0.0, 0.0
    for _ in range(rounds):
        tokens = {k: uuid.uuid4().hex for k in keys}
        record = {"owner": "bench:1", "campaign": "c1", "at": now, "hour": "09", "flown": False}
        coll.bulk_write([UpdateOne({"_id": k}, {"$set": {f"open.{t}": record}}) for k, t in tokens.items()])
        before = server.cpu()
        if one_statement:
            mine = {"$switch": {"branches": [_own_record(k, t) for k, t in tokens.items()], "default": {}}}
            matched = {"$or": [{"_id": k, f"open.{t}": {"$exists": True}} for k, t in tokens.items()]}
            coll.update_many(matched, [{"$set": {"open": {"$mergeObjects": ["$open", mine]}}}])
        else:
            marks = [
                UpdateOne({"_id": k, f"open.{t}": {"$exists": True}}, {"$set": {f"open.{t}.flown": True}})
                for k, t in tokens.items()
            ]
            coll.bulk_write(marks, ordered=False)
        mark_cpu += server.cpu() - before
        marked = coll.count_documents({"$or": [{"_id": k, f"open.{t}.flown": True} for k, t in tokens.items()]})
        if marked != BATCH:
            raise SystemExit(f"usage_round({name}): the mark reached {marked} of {BATCH} records")
        before = server.cpu()
        if one_statement:
            unset = {f"open.{t}": "" for t in tokens.values()}
            coll.update_many({"_id": {"$in": keys}}, {"$inc": {"committed": 1}, "$unset": unset})
        else:
            commits = [
                UpdateOne({"_id": k}, {"$inc": {"committed": 1}, "$unset": {f"open.{t}": ""}})
                for k, t in tokens.items()
            ]
            coll.bulk_write(commits, ordered=False)
        commit_cpu += server.cpu() - before
    closed = coll.count_documents({"committed": 36 + rounds, "open": {}})
    if closed != BATCH:  # every round's records were closed and counted
        raise SystemExit(f"usage_round({name}): {closed} of {BATCH} documents ended as expected")
    per = 1000.0 / (rounds * BATCH)
    return mark_cpu * per, commit_cpu * per


def _own_record(key: str, token: str) -> dict[str, Any]:
    """The `$switch` branch giving document `key` its record `token` marked as flown."""
    record = {"$mergeObjects": [{"$getField": {"field": token, "input": "$open"}}, {"flown": True}]}
    return {"case": {"$eq": ["$_id", key]}, "then": {"$arrayToObject": [[{"k": token, "v": record}]]}}


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
            for one in (False, True):
                mark, commit = usage_round(server, f"usage{int(one)}", one, leads // BATCH)
                way = "one statement for the round" if one else "one statement per account"
                print(f"  account_usage, {way}: in-flight mark {mark:.3f} ms, commit {commit:.3f} ms")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
