"""`/api/v1/campaigns`: the list, one campaign, its progress, and the pause, resume and trigger actions."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request

from app.domain.models import CAMPAIGN_STATUSES
from app.ops import campaign_views, campaigns
from app.web.api import models
from app.web.api.errors import audited, log_invalid, read
from app.web.api.pagination import CURSOR_QUERY, LIMIT_QUERY, page_in_memory
from app.web.auth import Principal, Role, require

VIEWER = Depends(require(Role.VIEWER))
OPERATOR = Depends(require(Role.OPERATOR))


def campaigns_router() -> APIRouter:
    """The campaign routes: reads for viewers, actions for operators."""
    router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"])

    @router.get("", response_model=models.CampaignPage)
    async def list_campaigns(
        request: Request,
        principal: Principal = VIEWER,
        status: str | None = Query(None, description=f"Only this status: {', '.join(CAMPAIGN_STATUSES)}."),
        kind: str = Query("sequence", description="sequence (default), job (the campaigns of job executions) or all."),
        cursor: str | None = CURSOR_QUERY,
        limit: int = LIMIT_QUERY,
    ) -> models.CampaignPage:
        """Campaigns with their limits and lead counts, by id; job executions (a campaign each) only with `kind`."""
        if status is not None and status not in CAMPAIGN_STATUSES:
            raise HTTPException(422, f"status: {status!r} is not a campaign status: use {', '.join(CAMPAIGN_STATUSES)}")
        if kind not in campaign_views.CAMPAIGN_KINDS:
            raise HTTPException(422, f"kind: {kind!r} is not a kind: use {', '.join(campaign_views.CAMPAIGN_KINDS)}")
        now = datetime.now(UTC)
        rows = await campaign_views.list_campaigns(request.app.state.db, status, now, log_invalid, kind)
        page, next_cursor = page_in_memory(rows, lambda r: str(r["id"]), cursor, limit)
        return models.CampaignPage(items=[models.CampaignSummary(**r) for r in page], next_cursor=next_cursor)

    @router.get("/{campaign_id}", response_model=models.CampaignDetail)
    async def show_campaign(campaign_id: str, request: Request, principal: Principal = VIEWER) -> models.CampaignDetail:
        """A campaign's settings, steps, status and pause reason, the accounts it may send from and its leads."""
        info = await read(
            campaign_views.campaign_details(request.app.state.db, campaign_id, datetime.now(UTC), log_invalid)
        )
        return models.CampaignDetail(**models.jsonable(info))

    @router.get("/{campaign_id}/progress", response_model=models.CampaignProgress)
    async def campaign_progress(
        campaign_id: str, request: Request, principal: Principal = VIEWER
    ) -> models.CampaignProgress:
        """Per step: total, pending, percentage, sent, failed, uncertain, replies, bounces and unsubscribes: the
        JSON of `outbound show-campaign-progress --json` with each step's total, pending and percentage."""
        db = request.app.state.db
        info = await read(campaign_views.campaign_progress(db, campaign_id, datetime.now(UTC), log_invalid))
        return models.CampaignProgress(**models.jsonable(campaign_views.with_step_totals(info)))

    @router.post("/{campaign_id}/pause", response_model=models.CampaignStatusChange)
    async def pause(
        campaign_id: str,
        request: Request,
        principal: Principal = OPERATOR,
        body: models.PauseBody | None = Body(None),
    ) -> models.CampaignStatusChange:
        """Stop sending for an active campaign now; its leads wait where they are until it is resumed."""
        reason = body.reason if body is not None else None
        change = await audited(
            request,
            principal,
            "campaign.pause",
            {"campaign_id": campaign_id},
            lambda: campaigns.pause_campaign(
                request.app.state.db,
                campaign_id,
                reason,
                datetime.now(UTC),
                campaigns.pauser(principal.kind, principal.name),
            ),
            lambda c: {"reason": c.paused_reason},
        )
        return models.CampaignStatusChange(**asdict(change))

    @router.post("/{campaign_id}/resume", response_model=models.CampaignStatusChange)
    async def resume(
        campaign_id: str, request: Request, principal: Principal = OPERATOR
    ) -> models.CampaignStatusChange:
        """Make a paused or draft campaign active (it needs steps whose templates exist); clears its pause reason."""
        change = await audited(
            request,
            principal,
            "campaign.resume",
            {"campaign_id": campaign_id},
            lambda: campaigns.resume_campaign(request.app.state.db, campaign_id, datetime.now(UTC)),
            lambda c: {"before": c.before, "paused_reason": c.paused_reason},
        )
        return models.CampaignStatusChange(**asdict(change))

    @router.post("/{campaign_id}/trigger", response_model=models.TriggerResult)
    async def trigger(campaign_id: str, request: Request, principal: Principal = OPERATOR) -> models.TriggerResult:
        """Make the campaign's waiting leads due now (their step's delay is skipped); leads a dispatcher holds are
        left alone. They are sent when the campaign is active."""
        done = await audited(
            request,
            principal,
            "campaign.trigger",
            {"campaign_id": campaign_id},
            lambda: campaigns.trigger_campaign(request.app.state.db, campaign_id, datetime.now(UTC)),
            lambda t: {"leads_due_now": t.leads_due_now},
        )
        return models.TriggerResult(**asdict(done))

    return router
