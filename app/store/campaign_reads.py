"""What campaign administration reads: campaigns, templates, sequences, leads' positions and accounts, found
by id, name or email, and what is stored for a campaign file.

Separate from `campaign_admin.py` (the writes) because these only read: the commands call them to show what is
stored, to check a change before it is written, and to plan a campaign file. A reference that names nothing or
several documents is an AdminError here, before anything is written; the writes raise it too and re-export it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.domain.campaign_plan import Stored
from app.domain.campaign_specs import CampaignSpec, TemplateSpec, template_spec
from app.domain.campaigns import Campaign, SequenceStep
from app.domain.document_reader import id_str
from app.domain.sequence_edits import StepSpec
from app.domain.template_docs import Template
from app.store import schema
from app.store.client import Database
from app.store.documents import NotFound, get_doc, id_filter, id_values, iter_valid


class AdminError(ValueError):
    """A change that cannot be made as asked; the message says why and what to do instead."""


def _any_of(ids: Sequence[object]) -> list[Any]:
    return [value for raw in ids for value in id_values(raw)]


# --- campaigns --------------------------------------------------------------------------------------------------


async def campaign_doc(db: Database, campaign_id: str) -> dict[str, Any]:
    """The stored campaign document, checked by the model; NotFound otherwise."""
    doc = await get_doc(db[schema.CAMPAIGNS], "campaign", campaign_id)
    Campaign.from_doc(doc)
    return doc


async def campaigns_named(db: Database, name: str) -> list[dict[str, Any]]:
    """Every campaign document with this name."""
    return [doc async for doc in db[schema.CAMPAIGNS].find({"name": name})]


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
