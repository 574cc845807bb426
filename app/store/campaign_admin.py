"""Writing campaigns, templates and sequences from the CLI and from campaign files.

Every document is checked by its model before it is written. A sequence is never edited in place: its new
steps are written under a new `sequence_id`, then the campaign is switched to it in one update, then the old
steps are deleted (unless another campaign shares them). A dispatcher therefore sees the old sequence or the
new one, never a mix, and a failure half-way leaves unused steps at worst. Templates and steps are written
before the campaign that uses them, and a campaign that a file deactivates is deactivated first.

The reads these writes and the commands rely on (lookups by id, name or email, what is stored for a campaign
file, and AdminError) live in `campaign_reads.py`; they are importable from here as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import InsertOne, UpdateOne

from app.domain.campaign_plan import ApplyPlan, Stored
from app.domain.campaign_specs import TemplateSpec
from app.domain.campaigns import Campaign
from app.domain.document_reader import id_str
from app.domain.sequence_edits import StepSpec, step_documents
from app.store import schema
from app.store.campaign_reads import AdminError as AdminError
from app.store.campaign_reads import account_emails as account_emails
from app.store.campaign_reads import campaign_doc as campaign_doc
from app.store.campaign_reads import campaigns_named as campaigns_named
from app.store.campaign_reads import campaigns_using_templates as campaigns_using_templates
from app.store.campaign_reads import find_template as find_template
from app.store.campaign_reads import lead_positions as lead_positions
from app.store.campaign_reads import list_templates as list_templates
from app.store.campaign_reads import resolve_accounts as resolve_accounts
from app.store.campaign_reads import sequence_steps as sequence_steps
from app.store.campaign_reads import stored_campaign as stored_campaign
from app.store.campaign_reads import stored_for as stored_for
from app.store.campaign_reads import templates_by_id as templates_by_id
from app.store.campaign_reads import templates_named as templates_named
from app.store.client import Database
from app.store.documents import id_filter


def new_sequence_id() -> str:
    """A fresh sequence id."""
    return f"seq-{ObjectId()}"


# --- campaigns --------------------------------------------------------------------------------------------------


async def insert_campaign(db: Database, doc: Mapping[str, Any]) -> str:
    """Insert a checked campaign document; return its id."""
    Campaign.from_doc({"_id": "new", **doc})
    result = await db[schema.CAMPAIGNS].insert_one(dict(doc))
    return id_str(result.inserted_id)


async def update_campaign(
    db: Database, campaign_id: str, sets: Mapping[str, Any], unsets: Sequence[str] = (), *, expect: Mapping[str, Any]
) -> bool:
    """Set and unset campaign fields if it still matches `expect` (e.g. its status); False when it changed."""
    update: dict[str, Any] = {}
    if sets:
        update["$set"] = dict(sets)
    if unsets:
        update["$unset"] = dict.fromkeys(unsets, "")
    if not update:
        return True
    result = await db[schema.CAMPAIGNS].update_one({**id_filter(campaign_id), **expect}, update)
    return bool(result.matched_count)


def checked_campaign(doc: Mapping[str, Any], sets: Mapping[str, Any], unsets: Sequence[str]) -> Campaign:
    """The campaign as it would be after `$set sets` and `$unset unsets` (dotted paths), checked by the model."""
    after: dict[str, Any] = {**doc, "settings": dict(doc.get("settings") or {})}
    for path, value in sets.items():
        head, _, tail = path.partition(".")
        if tail:
            after[head][tail] = value
        else:
            after[head] = value
    for path in unsets:
        head, _, tail = path.partition(".")
        (after[head] if tail else after).pop(tail or head, None)
    return Campaign.from_doc(after)


# --- templates --------------------------------------------------------------------------------------------------


async def insert_template(db: Database, spec: TemplateSpec) -> str:
    """Insert a checked template; return its id."""
    result = await db[schema.TEMPLATES].insert_one(spec.document())
    return id_str(result.inserted_id)


def _template_update(spec: TemplateSpec) -> dict[str, Any]:
    doc = spec.document()
    unset = {k: "" for k in ("subject", "body_html", "variants") if k not in doc}
    return {"$set": doc, **({"$unset": unset} if unset else {})}


async def update_template(db: Database, template_id: str, spec: TemplateSpec) -> None:
    """Replace a template's name, subject, bodies and variants (other fields are kept)."""
    await db[schema.TEMPLATES].update_one(id_filter(template_id), _template_update(spec))


# --- sequences --------------------------------------------------------------------------------------------------


async def replace_sequence(
    db: Database,
    campaign_id: str,
    old_sequence_id: str | None,
    steps: Sequence[StepSpec],
    *,
    campaign_set: Mapping[str, Any] | None = None,
    campaign_unset: Sequence[str] = (),
) -> str:
    """Write `steps` (template ids) as a new sequence, switch the campaign to it, drop the old one's steps.

    The switch is fenced by the old `sequence_id`: if another edit switched it meanwhile, AdminError (the new
    steps are removed again and nothing else changed).
    """
    sequence_id = new_sequence_id()
    docs = step_documents(sequence_id, steps)
    if docs:
        await db[schema.SEQUENCE_STEPS].insert_many(docs)
    switched = await update_campaign(
        db,
        campaign_id,
        {**(campaign_set or {}), "sequence_id": sequence_id},
        campaign_unset,
        expect={"sequence_id": old_sequence_id},
    )
    if not switched:
        await db[schema.SEQUENCE_STEPS].delete_many({"sequence_id": sequence_id})
        raise AdminError(f"campaign {campaign_id} was changed meanwhile: nothing was written; run the command again")
    await drop_unused_sequence(db, old_sequence_id)
    return sequence_id


async def drop_unused_sequence(db: Database, sequence_id: str | None) -> None:
    """Delete a sequence's steps unless a campaign still uses it."""
    if sequence_id is None or await db[schema.CAMPAIGNS].count_documents({"sequence_id": sequence_id}, limit=1):
        return
    await db[schema.SEQUENCE_STEPS].delete_many({"sequence_id": sequence_id})


# --- campaign files ---------------------------------------------------------------------------------------------


async def apply_plan(db: Database, plan: ApplyPlan, stored: Stored, now: datetime) -> str:
    """Carry out a campaign file's plan, in the order that keeps the dispatcher's view consistent; the id."""
    campaign = stored.campaign
    sets = dict(plan.campaign_set)
    if campaign is not None and campaign.status == "active" and sets.get("status", "active") != "active":
        # Stop sending before anything it sends with changes.
        await _update_fenced(db, campaign, {"status": sets.pop("status")}, ())
        campaign = Campaign(campaign.id, campaign.name, plan.campaign_set["status"], campaign.sequence_id,
                            campaign.settings, campaign.created_at)  # fmt: skip
    ids = {name: t.id for name, t in stored.templates.items() if t.id}
    ops: list[Any] = [UpdateOne(id_filter(t.id), _template_update(t)) for t in plan.templates_changed if t.id]
    new_docs = [t.document() for t in plan.templates_new]
    ops += [InsertOne(doc) for doc in new_docs]
    if ops:
        await db[schema.TEMPLATES].bulk_write(ops, ordered=True)
        ids.update({t.name: id_str(doc["_id"]) for t, doc in zip(plan.templates_new, new_docs, strict=True)})
    steps = [StepSpec(ids[s.template], s.delay_minutes, s.thread) for s in plan.steps] if plan.steps else None
    if campaign is None:
        return await _create(db, sets, steps or [], now)
    if steps is not None:
        await replace_sequence(
            db, campaign.id, campaign.sequence_id, steps, campaign_set=sets, campaign_unset=plan.campaign_unset
        )
    else:
        await _update_fenced(db, campaign, sets, plan.campaign_unset)
    return campaign.id


async def _update_fenced(db: Database, campaign: Campaign, sets: Mapping[str, Any], unsets: Sequence[str]) -> None:
    if not await update_campaign(db, campaign.id, sets, unsets, expect={"sequence_id": campaign.sequence_id}):
        raise AdminError(f"campaign {campaign.id} was changed meanwhile: run the command again")


async def _create(db: Database, sets: Mapping[str, Any], steps: Sequence[StepSpec], now: datetime) -> str:
    sequence_id = new_sequence_id()
    docs = step_documents(sequence_id, steps)
    doc: dict[str, Any] = {"name": sets["name"], "status": sets["status"], "created_at": now}
    doc["sequence_id"] = sequence_id
    doc["settings"] = {k.partition(".")[2]: v for k, v in sets.items() if k.startswith("settings.")}
    Campaign.from_doc({"_id": "new", **doc})
    if docs:
        await db[schema.SEQUENCE_STEPS].insert_many(docs)
    return await insert_campaign(db, doc)
