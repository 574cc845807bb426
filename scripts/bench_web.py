"""Web benchmark: how long the dashboard and the JSON API take to answer for one campaign of many leads.

Everything runs on 127.0.0.1: a SecantusDB server (in-memory storage unless --disk), seeded with one campaign
of --leads leads over a three-step sequence in realistic progress (leads at each step, due, waiting, leased,
completed and stopped; recipients sent, failed and uncertain, with their `sends` ledger entries and
activities of every type over the last day, or --history-days), then `outbound serve` in its own process.
Each route is called --calls times in turn after one warm-up call; the figures are the median and p90 per
route and the peak RSS (VmHWM) of the web process, printed as a table and, last, as one JSON line.

    .venv/bin/python scripts/bench_web.py                   # 10,000 leads
    .venv/bin/python scripts/bench_web.py --leads 100000 --calls 5
    .venv/bin/python scripts/bench_web.py --history-days 30   # a month of sends: most are not today's
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bench_common import HOST, median, percentile, start_database, temp_workdir
from bson import ObjectId
from pymongo import MongoClient
from pymongo.database import Database as SyncDatabase

from app.store import api_tokens
from app.store.client import make_client

SEED_BATCH = 5_000
DB_NAME = "bench_web"
START_SECONDS = 60.0
CALL_TIMEOUT = 600.0
STEPS = (1, 2, 3)
ANSWERS = ("replied", "auto_reply", "bounced", "soft_bounce", "unsubscribed")
ACCOUNTS = 8
# Where the seeded leads stand, as shares of all leads (the rest wait at step 1).
SHARES = {"completed": 0.20, "stopped": 0.05, "leased": 0.03, "due": 0.15, "step_2": 0.15, "step_3": 0.12}
OUTCOMES = ("sent",) * 16 + ("failed", "failed", "uncertain")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=10_000, help="leads of the campaign (default 10000)")
    parser.add_argument("--calls", type=int, default=10, help="timed calls per route (default 10)")
    parser.add_argument("--disk", action="store_true", help="SecantusDB disk storage instead of ':memory:'")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the generated progress")
    parser.add_argument(
        "--history-days", type=int, default=1, help="days the sends and answers spread over, ending now (default 1)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.leads <= 2_000_000:
        parser.error(f"--leads must be 1..2000000, got {args.leads}")
    if not 1 <= args.calls <= 1000:
        parser.error(f"--calls must be 1..1000, got {args.calls}")
    if not 1 <= args.history_days <= 3650:
        parser.error(f"--history-days must be 1..3650, got {args.history_days}")
    return args


# --- seeding -------------------------------------------------------------------------------------------------


def seed_catalog(db: SyncDatabase[Any], now: datetime) -> str:
    """Accounts, templates, a three-step sequence and the active campaign; its id."""
    accounts = [
        {"_id": ObjectId(), "email": f"sender{i}@mail.example.com", "status": "active", "timezone": "UTC"}
        for i in range(ACCOUNTS)
    ]
    db.email_accounts.insert_many(accounts)
    db.templates.insert_many(
        [{"_id": f"t{n}", "name": f"Step {n}", "subject": "Hello {{first_name}}", "body": "Hi"} for n in STEPS]
    )
    db.sequence_steps.insert_many(
        [{"sequence_id": "seq", "step_order": n, "template_id": f"t{n}", "delay_minutes": 60 * 24} for n in STEPS]
    )
    campaign = {
        "_id": ObjectId(),
        "name": "Bench",
        "status": "active",
        "sequence_id": "seq",
        "created_at": now - timedelta(days=7),
        "settings": {"daily_limit": 1000, "min_wait_time": 60, "account_ids": [str(a["_id"]) for a in accounts]},
    }
    db.campaigns.insert_one(campaign)
    return str(campaign["_id"])


def _position(rng: random.Random) -> str:
    roll, edge = rng.random(), 0.0
    for name, share in SHARES.items():
        edge += share
        if roll < edge:
            return name
    return "waiting"


def _lead(rng: random.Random, cid: str, i: int, now: datetime) -> dict[str, Any]:
    where = _position(rng)
    step = {"step_2": 2, "step_3": 3, "completed": 3}.get(where, rng.choice(STEPS) if where == "stopped" else 1)
    finished = step if where == "completed" else step - 1
    processed = {f"step_{n}_recipient_0": {"status": rng.choice(OUTCOMES)} for n in range(1, finished + 1)}
    progress: dict[str, Any] = {
        "current_step_order": step,
        "completed": where == "completed",
        "stopped": where == "stopped",
        "processed_recipients": processed,
        "next_due_at": now - timedelta(minutes=5) if where == "due" else now + timedelta(hours=rng.randint(1, 72)),
    }
    if where == "leased":
        progress.update(lease_owner="bench", lease_token="t", lease_until=now + timedelta(minutes=2))
    email = f"p{i}@c{i // 2}.example.com"
    return {"_id": ObjectId(), "campaign_id": cid, "lead_data": [{"email": email}], "progress": progress}


def _follow_ups(rng: random.Random, lead: dict[str, Any], now: datetime, days: int) -> tuple[list[Any], list[Any]]:
    """The lead's ledger entries and activities: one per processed recipient, and the answers some drew, over
    the last `days` days."""
    sends, acts = [], []
    for key, entry in lead["progress"]["processed_recipients"].items():
        step, state = int(key.split("_")[1]), entry["status"]
        at = now - timedelta(minutes=rng.randint(0, days * 24 * 60 - 1))
        account = f"a{rng.randrange(ACCOUNTS)}"
        sends.append({"_id": f"{lead['_id']}:{step}:0", "lead_id": lead["_id"], "step_order": step, "state": state})
        sends[-1].update(recipient_index=0, campaign_id=lead["campaign_id"], account_id=account, created_at=at)
        sends[-1]["message_id"] = f"<{lead['_id']}.{step}@mail.example.com>"
        kind = "sent" if state == "sent" else "failed" if state == "failed" else "uncertain"
        act = {"campaign_id": lead["campaign_id"], "lead_id": lead["_id"], "type": kind, "step_order": step}
        act.update(account_id=account, created_at=at, variant=rng.choice(["a", "b"]))
        acts.append(act)
        if state == "sent" and rng.random() < 0.1:
            acts.append({**act, "type": rng.choice(ANSWERS), "created_at": at + timedelta(minutes=1)})
    return sends, acts


def seed_leads(
    db: SyncDatabase[Any], cid: str, leads: int, now: datetime, rng: random.Random, days: int = 1
) -> dict[str, int]:
    """Insert the leads, their ledger entries and activities in batches; how many of each."""
    totals = {"leads": 0, "sends": 0, "activities": 0}
    for start in range(0, leads, SEED_BATCH):
        batch = [_lead(rng, cid, i, now) for i in range(start, min(start + SEED_BATCH, leads))]
        sends: list[Any] = []
        acts: list[Any] = []
        for lead in batch:
            more_sends, more_acts = _follow_ups(rng, lead, now, days)
            sends += more_sends
            acts += more_acts
        for name, docs in (("campaign_leads", batch), ("sends", sends), ("activities", acts)):
            if docs:
                db[name].insert_many(docs, ordered=False)
        totals["leads"] += len(batch)
        totals["sends"] += len(sends)
        totals["activities"] += len(acts)
    return totals


# --- the web process -----------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_web(uri: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """`outbound serve` on loopback in its own process; returns once /health answers."""
    env = {**os.environ, "MONGO_URI": uri, "DB_NAME": DB_NAME, "OUTBOUND_HOME": str(workdir), "LOG_LEVEL": "WARNING"}
    env["OUTBOUND_SECRET_KEY"] = secrets.token_urlsafe(32)
    command = [str(Path(sys.executable).parent / "outbound"), "serve", "--host", HOST, "--port", str(port)]
    log = (workdir / "web.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parent.parent)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    proc.wait(timeout=30)
    sys.exit(f"the web service did not start:\n{(workdir / 'web.log').read_text()[-3000:]}")


def peak_rss_of(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def routes(cid: str) -> Iterator[tuple[str, str]]:
    """(name, path) of each timed route."""
    yield "/dashboard", "/dashboard"
    yield "/dashboard/live?campaign=<id>", f"/dashboard/live?campaign={cid}"
    yield "/dashboard/live", "/dashboard/live"
    yield "/api/v1/campaigns/<id>/progress", f"/api/v1/campaigns/{cid}/progress"
    yield "/api/v1/accounts", "/api/v1/accounts"
    yield "/api/v1/activities", "/api/v1/activities"


def time_routes(client: httpx.Client, cid: str, calls: int) -> dict[str, dict[str, float]]:
    """Per route: the median and p90 of `calls` timed calls (after one warm-up), in ms."""
    figures: dict[str, dict[str, float]] = {}
    for name, path in routes(cid):
        client.get(path).raise_for_status()
        took = []
        for _ in range(calls):
            started = time.perf_counter()
            client.get(path).raise_for_status()
            took.append((time.perf_counter() - started) * 1000.0)
        figures[name] = {"median_ms": round(median(took), 1), "p90_ms": round(percentile(took, 90), 1)}
    return figures


def make_token(uri: str, now: datetime) -> str:
    """A viewer API token for the benchmark, stored as `outbound token create` stores it."""

    async def create() -> str:
        client = make_client(uri)
        try:
            _, secret = await api_tokens.create(client[DB_NAME], "bench", "viewer", now)
            return secret
        finally:
            await client.close()

    return asyncio.run(create())


def main() -> None:
    args = parse_args()
    now = datetime.now(UTC)
    with temp_workdir() as tmp:
        workdir = Path(tmp)
        server = start_database(workdir, in_memory=not args.disk)
        web = None
        try:
            sync: MongoClient[Any] = MongoClient(server.uri)
            db = sync[DB_NAME]
            started = time.perf_counter()
            cid = seed_catalog(db, now)
            seeded = seed_leads(db, cid, args.leads, now, random.Random(args.seed), args.history_days)
            seed_seconds = time.perf_counter() - started
            token = make_token(server.uri, now)
            port = _free_port()
            web = start_web(server.uri, port, workdir)
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=f"http://{HOST}:{port}", headers=headers, timeout=CALL_TIMEOUT) as client:
                figures = time_routes(client, cid, args.calls)
            rss = peak_rss_of(web.pid)
            sync.close()
        finally:
            if web is not None:
                web.terminate()
                web.wait(timeout=30)
            server.stop()
    print(f"seeded {seeded} in {seed_seconds:.1f} s ({'disk' if args.disk else 'in-memory'} SecantusDB)")
    print(f"{'route':<36} {'median ms':>10} {'p90 ms':>10}")
    for name, f in figures.items():
        print(f"{name:<36} {f['median_ms']:>10,.1f} {f['p90_ms']:>10,.1f}")
    print(f"web process peak RSS: {rss:.1f} MB")
    print(json.dumps({"leads": args.leads, "calls": args.calls, **seeded, "routes": figures, "peak_rss_mb": rss}))


if __name__ == "__main__":
    main()
