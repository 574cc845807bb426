"""`run-dispatcher --dry-run`: render what would be sent now, through the dry-run sender, writing nothing."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.domain.models import Campaign, EmailAccount, InvalidDocument, Lead, Template
from app.domain.planning import pending_recipients
from app.domain.scheduling import after_minutes
from app.domain.stop_policy import SKIP_STATUSES
from app.domain.templating import Renderer
from app.send.compose import ComposeError, compose
from app.store import leases, schema
from app.store.catalog import Catalog
from app.store.client import Database
from app.store.documents import iter_valid
from app.transport.base import Sender


@dataclass(frozen=True)
class PreviewRow:
    """One email the dispatcher would send (or why it could not)."""

    campaign: str
    lead_id: str
    step_order: int | None
    email: str | None
    account: str | None
    subject: str | None
    send_at: datetime | None
    problem: str | None = None


async def candidate_accounts(db: Database, campaign: Campaign, only: Collection[str] | None) -> list[EmailAccount]:
    """Active accounts this campaign may use, least recently used first (no reservation is made)."""
    accounts = [
        a
        async for a in iter_valid(
            db[schema.EMAIL_ACCOUNTS], {"status": "active"}, EmailAccount.from_doc, sort=[("last_used_at", 1)]
        )
    ]
    allowed = set(campaign.settings.account_ids)
    return [a for a in accounts if (not allowed or a.id in allowed) and (only is None or a.id in only)]


async def preview(
    db: Database,
    catalog: Catalog,
    renderer: Renderer,
    sender: Sender,
    *,
    now: datetime,
    campaign_id: str | None = None,
    account_filter: Collection[str] | None = None,
    limit: int = 100,
) -> list[PreviewRow]:
    """Every recipient of the current step of up to `limit` due leads per campaign, rendered and 'sent' dry."""
    rows: list[PreviewRow] = []
    for campaign in await catalog.active_campaigns(campaign_id):
        accounts = await candidate_accounts(db, campaign, account_filter)
        for doc in await leases.find_due(db[schema.CAMPAIGN_LEADS], now, campaign.id, limit):
            rows.extend(await _preview_lead(catalog, renderer, sender, campaign, accounts, doc, now, len(rows)))
    return rows


async def _preview_lead(
    catalog: Catalog,
    renderer: Renderer,
    sender: Sender,
    campaign: Campaign,
    accounts: list[EmailAccount],
    doc: dict[str, Any],
    now: datetime,
    rotation: int,
) -> list[PreviewRow]:
    lead_id = str(doc.get("_id"))
    try:
        lead = Lead.from_doc(doc)
    except InvalidDocument as exc:
        return [PreviewRow(campaign.name, lead_id, None, None, None, None, None, f"invalid lead: {exc}")]
    steps = await catalog.steps(campaign.sequence_id)
    step = steps.get(lead.progress.current_step_order)
    if step is None:
        problem = "sequence complete" if steps else f"sequence {campaign.sequence_id} has no steps"
        return [PreviewRow(campaign.name, lead_id, lead.progress.current_step_order, None, None, None, None, problem)]
    template = await catalog.template(step.template_id)
    rows = []
    pending = [i for i in pending_recipients(lead, step.step_order) if lead.recipients[i].status not in SKIP_STATUSES]
    for position, index in enumerate(pending):
        email = lead.recipients[index].email
        send_at = after_minutes(now, position * campaign.settings.min_wait_time)
        if not accounts:
            problem = "no active account may send for this campaign"
            rows.append(PreviewRow(campaign.name, lead_id, step.step_order, email, None, None, send_at, problem))
            continue
        account = accounts[(rotation + position) % len(accounts)]
        row = await _render_one(catalog, renderer, sender, campaign, lead, step.step_order, index, template, account)
        rows.append(PreviewRow(campaign.name, lead_id, step.step_order, email, account.email, row[0], send_at, row[1]))
    return rows


async def _render_one(
    catalog: Catalog,
    renderer: Renderer,
    sender: Sender,
    campaign: Campaign,
    lead: Lead,
    step_order: int,
    index: int,
    template: Template | InvalidDocument | None,
    account: EmailAccount,
) -> tuple[str | None, str | None]:
    """(subject, problem) for one recipient; the message goes to the dry-run sender."""
    if not isinstance(template, Template):
        return None, "template not found" if template is None else str(template)
    general = await catalog.general_settings(account.id)
    message = compose(
        renderer,
        template,
        campaign=campaign,
        lead=lead,
        step_order=step_order,
        index=index,
        account=account,
        general=general,
    )
    if isinstance(message, ComposeError):
        return None, message.reason
    await sender.send(account, message)
    return message.message.subject, None
