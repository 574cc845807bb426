"""What the inspection and repair command tests insert (campaigns, leads, accounts, sends), and result checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

NOW = datetime.now(UTC)
PAST = NOW - timedelta(hours=1)
FUTURE = NOW + timedelta(days=1)
TODAY = NOW.date().isoformat()
SECRET = "s3cret-Pa55word"


def add_campaign(sync_db: Any, name: str = "Spring", status: str = "active", **settings: Any) -> str:
    doc = {
        "name": name,
        "status": status,
        "created_at": NOW,
        "sequence_id": f"seq-{name}",
        "settings": {"daily_limit": 40, "min_wait_time": 4, "batch_size": 20, **settings},
    }
    return str(sync_db.campaigns.insert_one(doc).inserted_id)


def add_lead(sync_db: Any, campaign_id: str, recipients: int = 2, **progress: Any) -> ObjectId:
    doc = {
        "campaign_id": campaign_id,
        "created_at": NOW,
        "lead_data": [
            {"email": f"p{i}@acme.example", "status": "contacted", "last_step": 1, "last_contacted_at": PAST}
            for i in range(recipients)
        ],
        "progress": {"current_step_order": 1, "stopped": False, "processed_recipients": {}, **progress},
    }
    lead_id: ObjectId = sync_db.campaign_leads.insert_one(doc).inserted_id
    return lead_id


def add_account(sync_db: Any, email: str = "sender@mail.example", **fields: Any) -> str:
    doc = {
        "email": email,
        "smtp_host": "127.0.0.1",
        "smtp_port": 2525,
        "smtp_username": email,
        "smtp_password": SECRET,
        "status": "active",
        "provider": "custom",
        **fields,
    }
    return str(sync_db.email_accounts.insert_one(doc).inserted_id)


def add_send(sync_db: Any, lead_id: ObjectId, campaign_id: str, step: int = 1, idx: int = 0) -> None:
    key = f"{lead_id}:{step}:{idx}"
    sync_db.sends.insert_one(
        {
            "_id": key,
            "lead_id": lead_id,
            "step_order": step,
            "recipient_index": idx,
            "campaign_id": campaign_id,
            "email": f"p{idx}@acme.example",
            "message_id": f"<{key}@outbound>",
            "account_id": "acc",
            "attempts": 1,
            "state": "sent",
            "created_at": PAST,
            "updated_at": PAST,
        }
    )


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return result


def as_json(result: Any) -> Any:
    return json.loads(ok(result).stdout)
