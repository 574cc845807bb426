"""What `list-campaigns`, `show-campaign` and `show-campaign-progress` print, gathered for every surface.

Every document is read through its typed view; a malformed one is passed to `on_invalid` and skipped, so one bad
document never hides the rest. An unknown campaign raises the store's NotFound (naming the id).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from app.domain import eligibility, reports
from app.domain.models import (
    Campaign,
    EmailAccount,
    GeneralSettings,
    InvalidDocument,
    Lead,
    SequenceStep,
    Template,
    id_str,
)
from app.ops.campaigns import paused_by_label
from app.store import answer_stats, progress_reads, schema
from app.store.client import Database
from app.store.documents import get_doc, get_model, id_filter, id_values, iter_valid

OnInvalid = Callable[[InvalidDocument], None]


def campaign_ref(campaign_id: str) -> dict[str, Any]:
    """A filter for the documents of one campaign (leads, activities) by their `campaign_id`."""
    # campaign_leads.campaign_id is a string, but older data may hold the ObjectId itself.
    return id_filter(campaign_id, "campaign_id")


def any_of(ids: Sequence[object]) -> list[Any]:
    """Every stored form of these ids, for an `$in` query."""
    return [value for raw in ids for value in id_values(raw)]


async def load_campaign(db: Database, campaign_id: str) -> Campaign:
    """The campaign with this id; NotFound or InvalidDocument otherwise."""
    return await get_model(db[schema.CAMPAIGNS], "campaign", campaign_id, Campaign.from_doc)


async def lead_counts(db: Database, campaign_id: str, now: datetime) -> reports.LeadCounts:
    """Count a campaign's leads per state on the server, in one grouped read (no lead is loaded)."""
    return reports.LeadCounts.from_states(await progress_reads.state_counts(db, campaign_ref(campaign_id), now))


async def campaign_steps(db: Database, campaign: Campaign, on_invalid: OnInvalid) -> list[SequenceStep]:
    """The campaign's valid sequence steps, in order."""
    if campaign.sequence_id is None:
        return []
    flt = {"sequence_id": campaign.sequence_id}
    coll = db[schema.SEQUENCE_STEPS]
    return [
        s async for s in iter_valid(coll, flt, SequenceStep.from_doc, sort=[("step_order", 1)], on_invalid=on_invalid)
    ]


# Which campaigns a list shows: sequences (the default), the campaigns of jobs' executions (`kind: "job"`, one
# per run: a job running every minute makes 1,440 a day), or both.
CAMPAIGN_KINDS = ("sequence", "job", "all")


def kind_filter(kind: str) -> dict[str, Any]:
    """The campaigns filter of a list's `kind` (one of CAMPAIGN_KINDS).

    Sequences are matched by equality (no `kind`, or `sequence`) rather than `$ne: "job"`, so an index on `kind`
    serves the list however many executions there are (a `$ne` reads every campaign).
    """
    if kind == "sequence":
        return {"kind": {"$in": [None, "sequence"]}}
    return {"kind": "job"} if kind == "job" else {}


async def list_campaigns(
    db: Database, status: str | None, now: datetime, on_invalid: OnInvalid, kind: str = "sequence"
) -> list[dict[str, Any]]:
    """One row per valid campaign of `kind` (optionally of one status), oldest first: limits and lead counts."""
    flt = {**kind_filter(kind), **({"status": status} if status else {})}
    rows = []
    async for campaign in iter_valid(
        db[schema.CAMPAIGNS], flt, Campaign.from_doc, sort=[("created_at", 1)], on_invalid=on_invalid
    ):
        counts = await lead_counts(db, campaign.id, now)
        rows.append(
            {
                "id": campaign.id,
                "name": campaign.name,
                "status": campaign.status,
                "sequence_id": campaign.sequence_id,
                "daily_limit": campaign.settings.daily_limit,
                "min_wait_time": campaign.settings.min_wait_time,
                "leads": counts.total,
                "completed": counts.completed,
                "due_now": counts.due,
            }
        )
    return rows


async def _templates_by_id(db: Database, steps: Sequence[SequenceStep], on_invalid: OnInvalid) -> dict[str, Template]:
    flt = {"_id": {"$in": any_of([s.template_id for s in steps])}}
    found = iter_valid(db[schema.TEMPLATES], flt, Template.from_doc, on_invalid=on_invalid)
    return {t.id: t async for t in found}


async def campaign_templates(db: Database, campaign: Campaign, on_invalid: OnInvalid) -> list[Template]:
    """The valid templates the campaign's sequence steps use (a missing one is left out)."""
    steps = await campaign_steps(db, campaign, on_invalid)
    return list((await _templates_by_id(db, steps, on_invalid)).values())


async def general_settings_by_account(db: Database, on_invalid: OnInvalid) -> dict[str, GeneralSettings]:
    """Each account's `email_general_settings` by account id (its first valid one, as the send pipeline reads)."""
    found: dict[str, GeneralSettings] = {}
    coll = db[schema.EMAIL_GENERAL_SETTINGS]
    async for general in iter_valid(coll, {}, GeneralSettings.from_doc, on_invalid=on_invalid):
        found.setdefault(id_str(general.email_id), general)
    return found


async def _scope_accounts(
    db: Database, campaign: Campaign, on_invalid: OnInvalid
) -> tuple[list[str], dict[str, EmailAccount]]:
    """The ids of the accounts the campaign may send from (listed, else every active one) and those found."""
    wanted = campaign.settings.account_ids
    flt: dict[str, Any] = {"_id": {"$in": any_of(wanted)}} if wanted else {"status": "active"}
    coll = db[schema.EMAIL_ACCOUNTS]
    found = {a.id: a async for a in iter_valid(coll, flt, EmailAccount.from_doc, on_invalid=on_invalid)}
    return (list(wanted) if wanted else sorted(found)), found


def _account_rows(ids: Sequence[str], found: Mapping[str, EmailAccount]) -> list[dict[str, Any]]:
    return [
        {"id": i, "email": found[i].email, "status": found[i].status}
        if i in found
        else {"id": i, "email": None, "status": "missing"}
        for i in ids
    ]


async def _ineligible(
    db: Database, templates: Mapping[str, Template], accounts: Sequence[EmailAccount], on_invalid: OnInvalid
) -> list[dict[str, Any]]:
    general = await general_settings_by_account(db, on_invalid)
    found = eligibility.ineligible_accounts(templates.values(), accounts, general)
    return [{"id": i.account.id, "email": i.account.email, "missing": list(i.missing)} for i in found]


async def campaign_details(db: Database, campaign_id: str, now: datetime, on_invalid: OnInvalid) -> dict[str, Any]:
    """A campaign's settings, steps, accounts in scope, lead counts and the accounts that cannot render it, and
    why and when it was paused (a pause by the dispatcher, or an operator's reason)."""
    doc = await get_doc(db[schema.CAMPAIGNS], "campaign", campaign_id)
    campaign = Campaign.from_doc(doc)
    steps = await campaign_steps(db, campaign, on_invalid)
    templates = await _templates_by_id(db, steps, on_invalid)
    ids, found = await _scope_accounts(db, campaign, on_invalid)
    in_scope = [found[i] for i in dict.fromkeys(ids) if i in found]
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "sequence_id": campaign.sequence_id,
        "created_at": campaign.created_at,
        "paused_reason": doc.get("paused_reason") if isinstance(doc.get("paused_reason"), str) else None,
        "paused_at": doc.get("paused_at") if isinstance(doc.get("paused_at"), datetime) else None,
        "paused_by": paused_by_label(doc.get("paused_by")),
        "settings": {**asdict(campaign.settings), "account_ids": list(campaign.settings.account_ids)},
        "steps": [
            {
                "step_order": s.step_order,
                "template_id": s.template_id,
                "template_name": templates[s.template_id].name if s.template_id in templates else None,
                "delay_minutes": s.delay_minutes,
            }
            for s in steps
        ],
        "accounts": _account_rows(ids, found),
        "account_scope": "listed" if campaign.settings.account_ids else "every active account",
        "leads": asdict(await lead_counts(db, campaign.id, now)),
        "ineligible_accounts": await _ineligible(db, templates, in_scope, on_invalid),
    }


async def _sends_today(db: Database, campaign_id: str, now: datetime, on_invalid: OnInvalid) -> dict[str, int]:
    midnight = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    sent = await db[schema.ACTIVITIES].count_documents(
        {"$and": [campaign_ref(campaign_id), {"type": "sent", "created_at": {"$gte": midnight}}]}
    )
    counted = 0
    flt = {"day": reports.utc_day(now), f"campaigns.{campaign_id}": {"$exists": True}}
    async for usage in iter_valid(db[schema.ACCOUNT_USAGE], flt, reports.usage_from_doc, on_invalid=on_invalid):
        counted += usage.campaigns.get(campaign_id, 0)
    return {"sent_today": sent, "counted_today": counted}


async def lead_progress(
    db: Database, campaign_id: str, step_orders: Sequence[int], now: datetime, on_invalid: OnInvalid
) -> reports.CampaignProgress:
    """`reports.campaign_progress` over the campaign's valid leads, counted on the server.

    Every lead is grouped by the database; the suspect ones (a field of another type than `Lead.from_doc`
    accepts, or an address that is not plain) come back whole from the same pass, their rows are taken away,
    and they are validated here: those `Lead.from_doc` accepts are counted one by one, the malformed ones go to
    `on_invalid` and are counted nowhere, as when every lead was read here.
    """
    rows, suspects = await progress_reads.grouped_progress(db, campaign_ref(campaign_id), now)
    valid: list[Lead] = []
    for doc in suspects:
        try:
            valid.append(Lead.from_doc(doc))
        except InvalidDocument as exc:
            on_invalid(exc)
    tally = reports.tally_from_rows(rows - progress_reads.rows_of_docs(suspects, now), len(step_orders))
    return reports.progress_of(tally + reports.tally_leads(valid, len(step_orders), now), step_orders)


async def campaign_progress(db: Database, campaign_id: str, now: datetime, on_invalid: OnInvalid) -> dict[str, Any]:
    """Per step: leads at it, sent/failed/uncertain recipients, answers and variants; lead states; sends today."""
    campaign = await load_campaign(db, campaign_id)
    steps = await campaign_steps(db, campaign, on_invalid)
    progress = await lead_progress(db, campaign.id, [s.step_order for s in steps], now, on_invalid)
    answers = await answer_stats.per_step(db, campaign.id)
    variants = await _per_variant(db, campaign.id)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "steps": [
            {**asdict(s), **_answer_counts(answers.get(s.step_order)), "variants": variants.get(s.step_order, [])}
            for s in progress.steps
        ],
        "leads": asdict(progress.counts),
        "percent_complete": progress.percent_complete,
        **await _sends_today(db, campaign.id, now, on_invalid),
    }


def step_totals(steps: Sequence[reports.StepProgress], counts: reports.LeadCounts) -> dict[int, dict[str, int | float]]:
    """Per step: `total` leads that reached it (at it, at a later step, or completed), `pending` those still at it,
    and `percentage`, the share of all the campaign's leads past it. Pure."""
    out: dict[int, dict[str, int | float]] = {}
    for step in steps:
        later = sum(s.leads_at_step for s in steps if s.step_order > step.step_order) + counts.completed
        share = round(100.0 * later / counts.total, 1) if counts.total else 0.0
        out[step.step_order] = {"total": later + step.leads_at_step, "pending": step.leads_at_step, "percentage": share}
    return out


def with_step_totals(info: Mapping[str, Any]) -> dict[str, Any]:
    """`campaign_progress`'s answer with each step's `total`, `pending` and `percentage` (see `step_totals`)."""
    counts = reports.LeadCounts(**info["leads"])
    steps = [
        reports.StepProgress(s["step_order"], s["leads_at_step"], s["sent"], s["failed"], s["uncertain"])
        for s in info["steps"]
    ]
    totals = step_totals(steps, counts)
    return {**info, "steps": [{**s, **totals[s["step_order"]]} for s in info["steps"]]}


async def _per_variant(db: Database, campaign_id: str) -> dict[int, list[dict[str, Any]]]:
    """Per step, for each template variant its messages were worded from: sent, replied and the reply rate
    (replies per message sent), from the variant each `sent` and `replied` activity records."""
    match = {
        "$and": [campaign_ref(campaign_id), {"type": {"$in": ["sent", "replied"]}, "variant": {"$type": "string"}}]
    }
    group = {"_id": {"step": "$step_order", "variant": "$variant", "type": "$type"}, "n": {"$sum": 1}}
    counts: dict[tuple[int, str], dict[str, int]] = {}
    async for row in await db[schema.ACTIVITIES].aggregate([{"$match": match}, {"$group": group}]):
        key = row["_id"]
        if isinstance(key.get("step"), int):
            counts.setdefault((key["step"], key["variant"]), {})[str(key["type"])] = int(row["n"])
    out: dict[int, list[dict[str, Any]]] = {}
    for (step, name), found in sorted(counts.items()):
        sent, replied = found.get("sent", 0), found.get("replied", 0)
        rate = round(replied / sent, 4) if sent else None
        out.setdefault(step, []).append({"variant": name, "sent": sent, "replied": replied, "reply_rate": rate})
    return out


def _answer_counts(counts: Mapping[str, int] | None) -> dict[str, int]:
    given = counts or {}
    return {
        "replied": given.get("replied", 0),
        "auto_replies": given.get("auto_reply", 0),
        "bounced": given.get("bounced", 0),
        "soft_bounces": given.get("soft_bounce", 0),
        "unsubscribed": given.get("unsubscribed", 0),
    }
