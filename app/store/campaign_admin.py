"""Writing campaigns, templates and sequences from the CLI and from campaign files.

Every document is checked by its model before it is written. A sequence is never edited in place: its new
steps are written under a new `sequence_id`, then the campaign is switched to it in one update, then the old
steps are deleted (unless another campaign shares them). A dispatcher therefore sees the old sequence or the
new one, never a mix, and a failure half-way leaves unused steps at worst. Templates and steps are written
before the campaign that uses them, and a campaign that a file deactivates is deactivated first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import InsertOne, UpdateOne

from app.domain.campaign_plan import ApplyPlan, Stored
from app.domain.campaign_specs import CampaignSpec, TemplateSpec, template_spec
from app.domain.campaigns import Campaign, SequenceStep, Template
from app.domain.document_reader import id_str
from app.domain.sequence_edits import StepSpec, step_documents
from app.store import schema
from app.store.client import Database
from app.store.documents import NotFound, get_doc, id_filter, id_values, iter_valid


class AdminError(ValueError):
    """A change that cannot be made as asked; the message says why and what to do instead."""


def _any_of(ids: Sequence[object]) -> list[Any]:
    return [value for raw in ids for value in id_values(raw)]


def new_sequence_id() -> str:
    """A fresh sequence id."""
    return f"seq-{ObjectId()}"


# --- campaigns --------------------------------------------------------------------------------------------------


async def campaign_doc(db: Database, campaign_id: str) -> dict[str, Any]:
    """The stored campaign document, checked by the model; NotFound otherwise."""
    doc = await get_doc(db[schema.CAMPAIGNS], "campaign", campaign_id)
    Campaign.from_doc(doc)
    return doc


async def campaigns_named(db: Database, name: str) -> list[dict[str, Any]]:
    """Every campaign document with this name."""
    return [doc async for doc in db[schema.CAMPAIGNS].find({"name": name})]


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


async def find_template(db: Database, ref: str) -> Template:
    """A template by id, else by name; NotFound, or AdminError when several have that name."""
    doc = await db[schema.TEMPLATES].find_one(id_filter(ref))
    if doc is not None:
        return Template.from_doc(doc)
    named = [d async for d in db[schema.TEMPLATES].find({"name": ref}, limit=2)]
    if len(named) > 1:
        raise AdminError(f"several templates are named {ref!r}: give the template's id")
    if not named:
        raise NotFound("template", ref)
    return Template.from_doc(named[0])


async def templates_named(db: Database, name: str) -> list[Template]:
    """Every valid template with this name."""
    return [t async for t in iter_valid(db[schema.TEMPLATES], {"name": name}, Template.from_doc)]


async def templates_by_id(db: Database, ids: Sequence[str]) -> dict[str, Template]:
    """Valid templates by id (a missing or malformed one is left out)."""
    found = iter_valid(db[schema.TEMPLATES], {"_id": {"$in": _any_of(ids)}}, Template.from_doc)
    return {t.id: t async for t in found}


async def list_templates(db: Database) -> list[Template]:
    """Every valid template, by name."""
    return [t async for t in iter_valid(db[schema.TEMPLATES], {}, Template.from_doc, sort=[("name", 1)])]


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


async def campaigns_using_templates(db: Database, template_ids: Sequence[str]) -> dict[str, list[str]]:
    """For each template id, the names of the campaigns whose sequence uses it."""
    uses: dict[str, set[str]] = {}
    flt = {"template_id": {"$in": _any_of(template_ids)}}
    async for step in db[schema.SEQUENCE_STEPS].find(flt, projection={"sequence_id": 1, "template_id": 1}):
        uses.setdefault(str(step.get("sequence_id")), set()).add(str(step.get("template_id")))
    found: dict[str, list[str]] = {}
    cursor = db[schema.CAMPAIGNS].find({"sequence_id": {"$in": list(uses)}}, projection={"name": 1, "sequence_id": 1})
    async for doc in cursor:
        for template_id in uses.get(str(doc.get("sequence_id")), ()):
            found.setdefault(template_id, []).append(str(doc.get("name")))
    return found


# --- sequences and leads ----------------------------------------------------------------------------------------


async def sequence_steps(db: Database, sequence_id: str | None) -> list[SequenceStep]:
    """The valid steps of a sequence, in order."""
    if sequence_id is None:
        return []
    flt = id_filter(sequence_id, "sequence_id")
    found = iter_valid(db[schema.SEQUENCE_STEPS], flt, SequenceStep.from_doc, sort=[("step_order", 1)])
    return [s async for s in found]


async def lead_positions(db: Database, campaign_id: str) -> tuple[dict[int, int], int]:
    """The campaign's leads in flight per `current_step_order`, and how many have completed."""
    pipeline: list[dict[str, Any]] = [
        {"$match": id_filter(campaign_id, "campaign_id")},
        {
            "$group": {
                "_id": {
                    "step": "$progress.current_step_order",
                    "completed": "$progress.completed",
                    "stopped": "$progress.stopped",
                },
                "n": {"$sum": 1},
            }
        },
    ]
    at: dict[int, int] = {}
    completed = 0
    async for row in await db[schema.CAMPAIGN_LEADS].aggregate(pipeline):
        key, n = row["_id"], int(row["n"])
        if key.get("completed") is True:
            completed += n
        elif key.get("stopped") is not True:
            step = key.get("step")
            order = step if isinstance(step, int) and not isinstance(step, bool) and step >= 1 else 1
            at[order] = at.get(order, 0) + n
    return at, completed


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


# --- accounts ---------------------------------------------------------------------------------------------------


async def resolve_accounts(db: Database, refs: Sequence[str]) -> list[str]:
    """Account ids for ids or emails, in the order given; AdminError naming those not found."""
    if not refs:
        return []
    emails = [r.strip().lower() for r in refs if "@" in r]
    flt = {"$or": [{"_id": {"$in": _any_of([r for r in refs if "@" not in r])}}, {"email": {"$in": emails}}]}
    by_ref: dict[str, str] = {}
    async for doc in db[schema.EMAIL_ACCOUNTS].find(flt, projection={"email": 1}):
        by_ref[id_str(doc["_id"])] = id_str(doc["_id"])
        by_ref[str(doc.get("email", "")).lower()] = id_str(doc["_id"])
    missing = [r for r in refs if (r.strip().lower() if "@" in r else r) not in by_ref]
    if missing:
        raise AdminError(f"account(s) not found: {', '.join(missing)} (list-accounts shows them)")
    return list(dict.fromkeys(by_ref[r.strip().lower() if "@" in r else r] for r in refs))


async def account_emails(db: Database, ids: Sequence[str]) -> list[str]:
    """Each account's email (its id where it is not stored), in the order given."""
    found = {id_str(d["_id"]): str(d.get("email")) async for d in db[schema.EMAIL_ACCOUNTS].find(
        {"_id": {"$in": _any_of(ids)}}, projection={"email": 1})}  # fmt: skip
    return [found.get(i, i) for i in ids]


# --- campaign files ---------------------------------------------------------------------------------------------


async def stored_for(db: Database, spec: CampaignSpec) -> Stored:
    """What is stored for the campaign a file names: by its `id:`, else by name (several: AdminError)."""
    if spec.id is not None:
        doc: dict[str, Any] | None = await campaign_doc(db, spec.id)
    else:
        named = await campaigns_named(db, spec.name)
        if len(named) > 1:
            raise AdminError(f"several campaigns are named {spec.name!r}: add `id:` to the file to say which")
        doc = named[0] if named else None
    stored = await stored_campaign(db, doc) if doc is not None else Stored(None)
    templates: dict[str, TemplateSpec] = {}
    own = {t.name: t for t in stored.templates.values()}
    for wanted in spec.templates:
        found = await _template_for(db, wanted, own)
        if found is not None:
            templates[wanted.name] = found
    return Stored(stored.campaign, stored.settings, stored.paused_reason, stored.steps, templates)


async def _template_for(db: Database, wanted: TemplateSpec, own: Mapping[str, TemplateSpec]) -> TemplateSpec | None:
    if wanted.id is not None:
        return template_spec(await find_template(db, wanted.id))
    if wanted.name in own:
        return own[wanted.name]
    named = await templates_named(db, wanted.name)
    if len(named) > 1:
        raise AdminError(f"several templates are named {wanted.name!r}: give its `id:` in the file")
    return template_spec(named[0]) if named else None


async def stored_campaign(db: Database, doc: Mapping[str, Any]) -> Stored:
    """A stored campaign with its steps (template names) and the templates they use (by stored name)."""
    campaign = Campaign.from_doc(doc)
    steps = await sequence_steps(db, campaign.sequence_id)
    templates = await templates_by_id(db, [s.template_id for s in steps])
    names = {tid: t.name for tid, t in templates.items()}
    return Stored(
        campaign=campaign,
        settings=dict(doc.get("settings") or {}),
        paused_reason=doc.get("paused_reason") if isinstance(doc.get("paused_reason"), str) else None,
        steps=tuple(
            (s.id, StepSpec(names.get(s.template_id, s.template_id), s.delay_minutes, s.thread)) for s in steps
        ),
        templates={t.name: template_spec(t) for t in templates.values()},
    )


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
