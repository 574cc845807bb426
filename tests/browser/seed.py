"""A small, known world for the dashboard's tests: a user, a campaign with sends and answers, an account with
usage, an uncertain send. Written with the blocking driver, since the web service runs its own event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.database import Database as SyncDatabase

from app.domain.models import recipient_key
from app.store import schema, users
from app.store.client import make_client
from app.web.passwords import hash_password

Db = SyncDatabase[dict[str, Any]]
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class World:
    """The ids of what `seed_world` wrote."""

    campaign_id: str
    paused_campaign_id: str
    account_id: str
    lead_ids: tuple[str, ...]
    uncertain_send: str
    uncertain_lead: str


def one(db: Db, collection: str, flt: dict[str, Any]) -> dict[str, Any]:
    """The one document of `collection` matching `flt`; the test fails if there is none."""
    doc = db[collection].find_one(flt)
    assert doc is not None, f"no {collection} document matches {flt}"
    return doc


def add_user(mongo_uri: str, db_name: str, email: str, role: str) -> None:
    """A dashboard user with PASSWORD, made with the users store exactly as `outbound user add` does."""

    async def add() -> None:
        client = make_client(mongo_uri)
        try:
            await users.add(client[db_name], email, role, hash_password(PASSWORD), datetime.now(UTC))
        finally:
            await client.close()

    asyncio.run(add())


def _campaign(db: Db, name: str, status: str, steps: int, **extra: Any) -> str:
    sequence_id = f"seq-{ObjectId()}"
    doc = {"name": name, "status": status, "created_at": datetime.now(UTC), "sequence_id": sequence_id}
    doc["settings"] = {"daily_limit": 100, "min_wait_time": 0, "batch_size": 20}
    cid = str(db[schema.CAMPAIGNS].insert_one({**doc, **extra}).inserted_id)
    for order in range(1, steps + 1):
        tid = db[schema.TEMPLATES].insert_one({"name": f"{name} {order}", "subject": "Hi", "body_text": "Hello"})
        db[schema.SEQUENCE_STEPS].insert_one(
            {"sequence_id": sequence_id, "step_order": order, "template_id": str(tid.inserted_id), "delay_minutes": 60}
        )
    return cid


def _lead(db: Db, cid: str, email: str, step: int, sent_steps: int, now: datetime, **progress: Any) -> str:
    processed = {recipient_key(s, 0): {"status": "sent", "at": now} for s in range(1, sent_steps + 1)}
    doc = {
        "campaign_id": cid,
        "lead_key": f"email:{email}",
        "lead_data": [{"email": email, "first_name": email.split("@")[0].title(), "company_name": "Acme"}],
        "progress": {
            "current_step_order": step,
            "stopped": False,
            "processed_recipients": processed,
            "next_due_at": now + timedelta(hours=2),
            "version": 1,
            **progress,
        },
    }
    return str(db[schema.CAMPAIGN_LEADS].insert_one(doc).inserted_id)


def _activity(db: Db, cid: str, lead: str, kind: str, step: int, at: datetime, account: str) -> None:
    db[schema.ACTIVITIES].insert_one(
        {
            "campaign_id": cid,
            "lead_id": ObjectId(lead),
            "account_id": account,
            "type": kind,
            "step_order": step,
            "recipient_index": 0,
            "created_at": at,
        }
    )


def seed_world(db: Db, now: datetime) -> World:
    """Campaign "Spring launch" (active, 2 steps, 4 leads: one completed, two at step 2, one at step 1),
    3 sends at step 1 and 1 at step 2 with 1 reply and 1 bounce; a paused campaign; one account with 7 sends
    today; one uncertain send at step 2."""
    cid = _campaign(db, "Spring launch", "active", 2)
    paused = _campaign(db, "Winter sale", "paused", 1, paused_reason="bounce rate over 5%", paused_at=now)
    account = str(
        db[schema.EMAIL_ACCOUNTS]
        .insert_one(
            {
                "email": "sender@example.com",
                "smtp_host": "127.0.0.1",
                "smtp_port": 2525,
                "smtp_security": "none",
                "status": "active",
                "provider": "Test",
            }
        )
        .inserted_id
    )
    db[schema.EMAIL_CAMPAIGN_SETTINGS].insert_one({"email_id": account, "max_daily_sends": 50, "min_wait_time": 1})
    db[schema.ACCOUNT_USAGE].insert_one(
        {
            "_id": f"{account}:{now:%Y-%m-%d}",
            "account_id": account,
            "day": f"{now:%Y-%m-%d}",
            "sent": 7,
            "committed": 7,
            "campaigns": {cid: 7},
            "hours": {f"{now:%H}": 3},
        }
    )
    done = _lead(db, cid, "ann@acme.example", 2, 2, now, completed=True)
    bob = _lead(db, cid, "bob@acme.example", 2, 1, now)
    cat = _lead(db, cid, "cat@acme.example", 2, 1, now)
    dan = _lead(db, cid, "dan@acme.example", 1, 0, now)
    for lead, step, back in ((done, 1, 5), (bob, 1, 4), (cat, 1, 3), (done, 2, 1)):
        _activity(db, cid, lead, "sent", step, now - timedelta(hours=back), account)
    _activity(db, cid, bob, "replied", 1, now - timedelta(hours=2), account)
    _activity(db, cid, cat, "bounced", 1, now - timedelta(hours=2), account)
    # The dispatcher marks the recipient of an uncertain send in the lead's progress as well as in the ledger.
    db[schema.CAMPAIGN_LEADS].update_one(
        {"_id": ObjectId(cat)},
        {"$set": {f"progress.processed_recipients.{recipient_key(2, 0)}": {"status": "uncertain"}}},
    )
    send_key = f"{cat}:2:0"
    db[schema.SENDS].insert_one(
        {
            "_id": send_key,
            "lead_id": ObjectId(cat),
            "campaign_id": cid,
            "step_order": 2,
            "recipient_index": 0,
            "email": "cat@acme.example",
            "state": "uncertain",
            "account_id": account,
            "attempts": 1,
            "message_id": "<m1@example.com>",
            "last_error": "connection dropped after DATA",
            "updated_at": now,
        }
    )
    return World(cid, paused, account, (done, bob, cat, dan), send_key, cat)
