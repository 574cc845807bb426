"""`update-lead-statuses` against a real database: the rebuild agrees with what the dispatcher wrote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from app.store import schema
from app.store.client import Database
from app.store.statuses import rebuild_statuses

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _activity(lead_id: ObjectId, kind: str, step: int, minutes: int, **extra: Any) -> dict[str, Any]:
    return {
        "campaign_id": "c1",
        "lead_id": lead_id,
        "step_order": step,
        "recipient_index": 0,
        "email": "ann@example.com",
        "type": kind,
        "created_at": T0 + timedelta(minutes=minutes),
        **extra,
    }


async def test_a_recipient_the_dispatcher_failed_after_a_sent_step_stays_failed(db: Database) -> None:
    # Step 1 was sent; step 2 failed after its retries, so the dispatcher set the recipient to failed.
    lead_id = ObjectId()
    processed = {"step_1_recipient_0": {"status": "sent"}, "step_2_recipient_0": {"status": "failed"}}
    await db[schema.CAMPAIGN_LEADS].insert_one(
        {
            "_id": lead_id,
            "campaign_id": "c1",
            "lead_data": [{"email": "ann@example.com", "status": "failed", "last_contacted_at": T0, "last_step": 1}],
            "progress": {"current_step_order": 3, "processed_recipients": processed},
        }
    )
    await db[schema.ACTIVITIES].insert_many(
        [
            _activity(lead_id, "sent", 1, 0, account_id="a1"),
            _activity(lead_id, "retry", 2, 60, smtp_code=451),
            _activity(lead_id, "failed", 2, 90, smtp_code=451, error="gave up after 5 attempts"),
        ]
    )

    counts = await rebuild_statuses(db, {"_id": lead_id})

    assert counts["unchanged"] == 1
    lead = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
    assert lead is not None
    assert lead["lead_data"][0]["status"] == "failed"

    await db[schema.CAMPAIGN_LEADS].update_one({"_id": lead_id}, {"$set": {"lead_data.0.status": "not_contacted"}})
    counts = await rebuild_statuses(db, {"_id": lead_id})

    assert counts["changed"] == 1
    lead = await db[schema.CAMPAIGN_LEADS].find_one({"_id": lead_id})
    assert lead is not None
    assert lead["lead_data"][0]["status"] == "failed"
