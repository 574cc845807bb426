"""`list-campaigns`, `show-campaign` and `show-campaign-progress`: campaigns, their steps, accounts and leads.

`show-campaign` also names the accounts that cannot render the campaign's templates (a variable such as
sender_name they do not supply) and where to set what is missing.

Every document is read through its typed view; a malformed one is reported (collection, _id, field, why) and
skipped, so one bad document never hides the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import typer
from pymongo import ASCENDING

from app.cli.common import (
    CAMPAIGN_ARGUMENT,
    JSON_OPTION,
    Skipped,
    console,
    emit,
    fail,
    now_utc,
    print_table,
    run_db,
    settings_of,
)
from app.cli.lookups import any_of, campaign_ref, load_campaign
from app.domain import eligibility, reports
from app.domain.models import (
    CAMPAIGN_STATUSES,
    Campaign,
    EmailAccount,
    GeneralSettings,
    Lead,
    SequenceStep,
    Template,
    id_str,
)
from app.store import answer_stats, lead_queries, schema
from app.store.client import Database
from app.store.documents import iter_valid


async def _lead_counts(db: Database, campaign_id: str, now: datetime) -> reports.LeadCounts:
    """Count a campaign's leads per state on the server (no lead is loaded)."""
    leads = db[schema.CAMPAIGN_LEADS]
    scope = campaign_ref(campaign_id)
    total = await leads.count_documents(scope)
    counts = {
        state: await leads.count_documents({"$and": [scope, flt]})
        for state, flt in lead_queries.state_filters(now).items()
    }
    counts[reports.WAITING] = max(total - sum(counts.values()), 0)
    return reports.LeadCounts.from_states(counts)


async def _steps(db: Database, campaign: Campaign, skipped: Skipped) -> list[SequenceStep]:
    if campaign.sequence_id is None:
        return []
    flt = {"sequence_id": campaign.sequence_id}
    coll = db[schema.SEQUENCE_STEPS]
    return [
        s async for s in iter_valid(coll, flt, SequenceStep.from_doc, sort=[("step_order", 1)], on_invalid=skipped.add)
    ]


def _print_campaign(info: Mapping[str, Any], tail: str) -> None:
    console.print(f"[bold]{info['name']}[/] ({info['id']}) status {info['status']}{tail}")


def _print_lead_counts(info: Mapping[str, Any]) -> None:
    console.print("leads: " + ", ".join(f"{k} {v}" for k, v in info["leads"].items()))


async def _list_campaigns(db: Database, status: str | None, now: datetime, skipped: Skipped) -> list[dict[str, Any]]:
    flt = {"status": status} if status else {}
    rows = []
    async for campaign in iter_valid(
        db[schema.CAMPAIGNS], flt, Campaign.from_doc, sort=[("created_at", ASCENDING)], on_invalid=skipped.add
    ):
        counts = await _lead_counts(db, campaign.id, now)
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


def list_campaigns(
    ctx: typer.Context,
    json_: bool = JSON_OPTION,
    status: str | None = typer.Option(
        None, "--status", help=f"Only campaigns in this status: {', '.join(CAMPAIGN_STATUSES)}."
    ),
) -> None:
    """List campaigns with their limits and lead counts ("due now" counts leads ready to send, even if paused).

    Example: outbound list-campaigns --status active
    """
    if status is not None and status not in CAMPAIGN_STATUSES:
        fail(f"--status {status!r} is not a campaign status: use one of {', '.join(CAMPAIGN_STATUSES)}", code=2)
    now, skipped = now_utc(), Skipped()
    rows = run_db(settings_of(ctx), lambda db: _list_campaigns(db, status, now, skipped))

    def render() -> None:
        columns = ["id", "name", "status", "sequence", "daily limit", "min wait (min)", "leads", "completed", "due now"]
        print_table(f"Campaigns ({len(rows)})", columns, [list(r.values()) for r in rows])

    emit(json_, {"campaigns": rows}, skipped, render)


async def _templates_by_id(db: Database, steps: Sequence[SequenceStep], skipped: Skipped) -> dict[str, Template]:
    flt = {"_id": {"$in": any_of([s.template_id for s in steps])}}
    found = iter_valid(db[schema.TEMPLATES], flt, Template.from_doc, on_invalid=skipped.add)
    return {t.id: t async for t in found}


async def campaign_templates(db: Database, campaign: Campaign, skipped: Skipped) -> list[Template]:
    """The valid templates the campaign's sequence steps use (a missing one is left out)."""
    steps = await _steps(db, campaign, skipped)
    return list((await _templates_by_id(db, steps, skipped)).values())


async def general_settings_by_account(db: Database, skipped: Skipped) -> dict[str, GeneralSettings]:
    """Each account's `email_general_settings` by account id (its first valid one, as the send pipeline reads)."""
    found: dict[str, GeneralSettings] = {}
    coll = db[schema.EMAIL_GENERAL_SETTINGS]
    async for general in iter_valid(coll, {}, GeneralSettings.from_doc, on_invalid=skipped.add):
        found.setdefault(id_str(general.email_id), general)
    return found


async def _scope_accounts(
    db: Database, campaign: Campaign, skipped: Skipped
) -> tuple[list[str], dict[str, EmailAccount]]:
    """The ids of the accounts the campaign may send from (listed, else every active one) and those found."""
    wanted = campaign.settings.account_ids
    flt: dict[str, Any] = {"_id": {"$in": any_of(wanted)}} if wanted else {"status": "active"}
    found = {
        a.id: a async for a in iter_valid(db[schema.EMAIL_ACCOUNTS], flt, EmailAccount.from_doc, on_invalid=skipped.add)
    }
    return (list(wanted) if wanted else sorted(found)), found


def _account_rows(ids: Sequence[str], found: Mapping[str, EmailAccount]) -> list[dict[str, Any]]:
    return [
        {"id": i, "email": found[i].email, "status": found[i].status}
        if i in found
        else {"id": i, "email": None, "status": "missing"}
        for i in ids
    ]


async def _ineligible(
    db: Database, templates: Mapping[str, Template], accounts: Sequence[EmailAccount], skipped: Skipped
) -> list[dict[str, Any]]:
    general = await general_settings_by_account(db, skipped)
    found = eligibility.ineligible_accounts(templates.values(), accounts, general)
    return [{"id": i.account.id, "email": i.account.email, "missing": list(i.missing)} for i in found]


async def _show_campaign(db: Database, campaign_id: str, now: datetime, skipped: Skipped) -> dict[str, Any]:
    campaign = await load_campaign(db, campaign_id)
    steps = await _steps(db, campaign, skipped)
    templates = await _templates_by_id(db, steps, skipped)
    ids, found = await _scope_accounts(db, campaign, skipped)
    in_scope = [found[i] for i in dict.fromkeys(ids) if i in found]
    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "sequence_id": campaign.sequence_id,
        "created_at": campaign.created_at,
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
        "leads": asdict(await _lead_counts(db, campaign.id, now)),
        "ineligible_accounts": await _ineligible(db, templates, in_scope, skipped),
    }


def _print_ineligible(rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    console.print(f"not eligible: {len(rows)} account(s) cannot render this campaign's templates")
    for row in rows:
        console.print(f"  {row['email']} ({row['id']}): missing {', '.join(row['missing'])}")
        for variable in row["missing"]:
            console.print(f"    {eligibility.fix_hint(variable, row['email'])}")


def show_campaign(ctx: typer.Context, campaign_id: str = CAMPAIGN_ARGUMENT, json_: bool = JSON_OPTION) -> None:
    """Show a campaign's settings, its sequence steps, the accounts it may send from and its lead counts, then
    the accounts that cannot render its templates (the variables they lack and where to set them).

    Example: outbound show-campaign 665f1c2e9b1e8a3d4c5b6a70 --json
    """
    now, skipped = now_utc(), Skipped()
    info = run_db(settings_of(ctx), lambda db: _show_campaign(db, campaign_id, now, skipped))

    def render() -> None:
        _print_campaign(info, f", sequence {info['sequence_id'] or '-'}")
        console.print("settings: " + ", ".join(f"{k}={v}" for k, v in info["settings"].items()))
        step_rows = [
            [s["step_order"], s["template_name"] or f"{s['template_id']} (missing)", s["delay_minutes"]]
            for s in info["steps"]
        ]
        print_table("Steps", ["step", "template", "delay (min)"], step_rows)
        account_rows = [[a["id"], a["email"], a["status"]] for a in info["accounts"]]
        print_table(f"Accounts ({info['account_scope']})", ["id", "email", "status"], account_rows)
        _print_lead_counts(info)
        _print_ineligible(info["ineligible_accounts"])

    emit(json_, info, skipped, render)


async def _sends_today(db: Database, campaign_id: str, now: datetime, skipped: Skipped) -> dict[str, int]:
    midnight = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    sent = await db[schema.ACTIVITIES].count_documents(
        {"$and": [campaign_ref(campaign_id), {"type": "sent", "created_at": {"$gte": midnight}}]}
    )
    counted = 0
    flt = {"day": reports.utc_day(now), f"campaigns.{campaign_id}": {"$exists": True}}
    async for usage in iter_valid(db[schema.ACCOUNT_USAGE], flt, reports.usage_from_doc, on_invalid=skipped.add):
        counted += usage.campaigns.get(campaign_id, 0)
    return {"sent_today": sent, "counted_today": counted}


async def _campaign_progress(db: Database, campaign_id: str, now: datetime, skipped: Skipped) -> dict[str, Any]:
    campaign = await load_campaign(db, campaign_id)
    steps = await _steps(db, campaign, skipped)
    coll = db[schema.CAMPAIGN_LEADS]
    leads = [lead async for lead in iter_valid(coll, campaign_ref(campaign.id), Lead.from_doc, on_invalid=skipped.add)]
    progress = reports.campaign_progress(leads, [s.step_order for s in steps], now)
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
        **await _sends_today(db, campaign.id, now, skipped),
    }


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


def _print_variants(steps: Sequence[Mapping[str, Any]]) -> None:
    rows = [
        [
            s["step_order"],
            v["variant"],
            v["sent"],
            v["replied"],
            "-" if v["reply_rate"] is None else f"{v['reply_rate']:.1%}",
        ]
        for s in steps
        for v in s["variants"]
    ]
    if rows:
        print_table("Variants", ["step", "variant", "sent", "replied", "reply rate"], rows)


def show_campaign_progress(ctx: typer.Context, campaign_id: str = CAMPAIGN_ARGUMENT, json_: bool = JSON_OPTION) -> None:
    """Show per step the leads at it, its sent/failed/uncertain recipients and the replies, bounces and
    unsubscribes its messages drew, sent and reply rate per template variant, then lead states and sends today.

    Example: outbound show-campaign-progress 665f1c2e9b1e8a3d4c5b6a70
    """
    now, skipped = now_utc(), Skipped()
    info = run_db(settings_of(ctx), lambda db: _campaign_progress(db, campaign_id, now, skipped))

    def render() -> None:
        _print_campaign(info, f": {info['percent_complete']}% complete")
        rows = [
            [s[k] for k in ("step_order", "leads_at_step", "sent", "failed", "uncertain")]
            + [s[k] for k in ("replied", "auto_replies", "bounced", "unsubscribed")]
            for s in info["steps"]
        ]
        columns = ["step", "leads at step", "sent", "failed", "uncertain", "replied", "auto-replies", "bounced"]
        print_table("Steps", [*columns, "unsubscribed"], rows)
        _print_variants(info["steps"])
        _print_lead_counts(info)
        console.print(f"today (UTC): sent {info['sent_today']}, counted against limits {info['counted_today']}")

    emit(json_, info, skipped, render)


def register(app: typer.Typer) -> None:
    """Add the campaign commands to `app`."""
    app.command("list-campaigns")(list_campaigns)
    app.command("show-campaign")(show_campaign)
    app.command("show-campaign-progress")(show_campaign_progress)
