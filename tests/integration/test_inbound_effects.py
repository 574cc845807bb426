"""Answers applied to leads in the real database: statuses, stops, suppressions, one activity each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bson import ObjectId

from app.domain import inbound_effects as fx
from app.domain.inbound import SendRef
from app.inbound import effects
from app.inbound.effects import Answer
from app.store import inbound, schema
from app.store.client import Database
from tests.factories import add_campaign, add_lead

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def _lead(db: Database, *emails: str) -> tuple[str, str]:
    campaign = await add_campaign(db)
    lead = await add_lead(db, campaign, [{"email": e, "status": "contacted"} for e in emails])
    return campaign, str(lead)


async def _doc(db: Database, lead_id: str) -> dict:
    doc = await db[schema.CAMPAIGN_LEADS].find_one({"_id": ObjectId(lead_id)})
    assert doc is not None
    return doc


async def test_a_reply_stops_the_whole_lead_once(db: Database) -> None:
    _, lead = await _lead(db, "ann@a.example", "bob@a.example")
    answer = Answer(fx.REPLY, "bob@a.example", "msg:acct:<r1@a.example>", SendRef(lead, 1, 1), "acct")
    first = await effects.apply(db, answer, NOW)
    again = await effects.apply(db, answer, NOW + timedelta(minutes=1))
    assert first.changed and first.status == "replied" and first.stopped == "replied"
    assert not again.changed
    doc = await _doc(db, lead)
    assert [r["status"] for r in doc["lead_data"]] == ["contacted", "replied"]
    assert doc["progress"]["stopped"] is True and doc["progress"]["stopped_reason"] == "replied"
    assert "next_due_at" not in doc["progress"]
    acts = await db[schema.ACTIVITIES].find({"lead_id": lead}).to_list(None)
    assert [(a["type"], a["recipient_index"], a["step_order"]) for a in acts] == [("replied", 1, 1)]


async def test_stop_on_reply_recipient_lets_colleagues_go_on(db: Database) -> None:
    campaign, lead = await _lead(db, "ann@a.example", "bob@a.example")
    await db[schema.CAMPAIGNS].update_one(
        {"_id": ObjectId(campaign)}, {"$set": {"settings.stop_on_reply": "recipient"}}
    )
    applied = await effects.apply(db, Answer(fx.REPLY, "ann@a.example", "k1", SendRef(lead, 1, 0)), NOW)
    assert applied.status == "replied" and applied.stopped is None
    assert (await _doc(db, lead))["progress"]["stopped"] is False


async def test_a_hard_bounce_suppresses_the_address_everywhere(db: Database) -> None:
    _, lead = await _lead(db, "gone@b.example", "stay@b.example")
    await effects.apply(db, Answer(fx.HARD_BOUNCE, "gone@b.example", "k2", SendRef(lead, 1, 0)), NOW)
    doc = await _doc(db, lead)
    assert [r["status"] for r in doc["lead_data"]] == ["bounced", "contacted"]
    assert doc["progress"]["stopped"] is False
    entry = await db[schema.SUPPRESSIONS].find_one({"value": "gone@b.example"})
    assert entry is not None and entry["reason"] == "bounced"


async def test_the_third_soft_bounce_counts_as_hard(db: Database) -> None:
    _, lead = await _lead(db, "full@c.example")
    ref = SendRef(lead, 1, 0)
    for n in range(2):
        applied = await effects.apply(db, Answer(fx.SOFT_BOUNCE, "full@c.example", f"soft{n}", ref), NOW)
        assert applied.status is None
    await effects.apply(db, Answer(fx.SOFT_BOUNCE, "full@c.example", "soft0", ref), NOW)  # the same one again
    assert (await _doc(db, lead))["lead_data"][0]["status"] == "contacted"
    third = await effects.apply(db, Answer(fx.SOFT_BOUNCE, "full@c.example", "soft2", ref), NOW)
    assert third.status == "bounced" and third.stopped == "bounced"
    assert await db[schema.SUPPRESSIONS].count_documents({"value": "full@c.example"}) == 1


async def test_a_held_lead_is_deferred_but_the_address_is_suppressed_at_once(db: Database) -> None:
    _, lead = await _lead(db, "dee@d.example")
    await db[schema.CAMPAIGN_LEADS].update_one(
        {"_id": ObjectId(lead)},
        {"$set": {"progress.lease_token": "t", "progress.lease_until": NOW + timedelta(seconds=60)}},
    )
    ref = SendRef(lead, 1, 0)
    held = await effects.unsubscribe_by_link(db, ref, NOW)
    assert held.deferred and not held.changed
    assert (await _doc(db, lead))["lead_data"][0]["status"] == "contacted"
    assert await db[schema.SUPPRESSIONS].count_documents({"value": "dee@d.example"}) == 1
    waiting = await inbound.deferred_due(db[schema.INBOUND], NOW + timedelta(minutes=1))
    assert [w["_id"] for w in waiting] == [f"link:{ref.send_key}"]
    stored = effects.answer_from_doc(waiting[0]["answers"][0])
    assert stored is not None and stored.ref == ref and stored.answer == fx.UNSUBSCRIBE
    # The lease runs out: applying again lands.
    later = await effects.apply(db, stored, NOW + timedelta(minutes=2))
    assert later.changed and later.status == "unsubscribed" and later.stopped == "unsubscribed"


async def test_an_answer_for_a_lead_that_is_gone_still_suppresses(db: Database) -> None:
    applied = await effects.apply(
        db, Answer(fx.UNSUBSCRIBE, "x@e.example", "k9", SendRef("000000000000000000000000", 1, 0)), NOW
    )
    assert not applied.found and applied.changed
    assert await db[schema.SUPPRESSIONS].count_documents({"value": "x@e.example"}) == 1
    assert (await effects.unsubscribe_by_link(db, SendRef("nolead", 1, 0), NOW)).found is False
