"""`/dashboard` (every campaign, the sends chart, the paused ones), `/dashboard/campaigns/{id}`, the
campaign buttons (pause, resume, trigger) and `/dashboard/live`, the numbers the pages' script polls."""

from __future__ import annotations

import time
from datetime import datetime

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from app.domain.models import InvalidDocument
from app.ops import campaign_views, campaigns
from app.store.client import Database
from app.store.documents import NotFound
from app.web.auth import Principal, Role, require, require_page
from app.web.dashboard.actions import back_to, database, now_utc, run_action
from app.web.dashboard.chart import sends_chart
from app.web.dashboard.queries import campaign_ids, pause_info, paused_campaigns, sends_per_hour
from app.web.dashboard.views import CampaignView, campaign_live, campaign_view, fmt_count, live_key, next_poll_seconds
from app.web.templating import render

# The overview and the live numbers cover at most this many campaigns (oldest first).
MAX_CAMPAIGNS = 100
MAX_SKIPPED_SHOWN = 5


async def _views(
    db: Database, ids: list[str], now: datetime, skipped: list[InvalidDocument] | None = None
) -> list[CampaignView]:
    """Each campaign's view; a malformed campaign (or lead, step) is added to `skipped` and left out."""
    on_invalid = (skipped if skipped is not None else []).append
    found = []
    for cid in ids:
        try:
            found.append(campaign_view(await campaign_views.campaign_progress(db, cid, now, on_invalid)))
        except InvalidDocument as exc:
            on_invalid(exc)
        except NotFound:
            continue  # deleted since it was listed: the next poll no longer lists it
    return found


def problem_page(request: Request, error: NotFound | InvalidDocument, back: str) -> HTMLResponse:
    """What a page could not show: 404 for an unknown id, 409 for a document that breaks the data contract
    (the message names its collection, id and field), and a way back."""
    if isinstance(error, NotFound):
        return render(request, "dashboard/problem.html", 404, heading="Not found", message=f"{error}.", back=back)
    message = f"{error}. Fix the document (or remove it) and reload this page."
    return render(request, "dashboard/problem.html", 409, heading="Malformed document", message=message, back=back)


def campaign_router() -> APIRouter:
    """The campaign pages, their actions and the live numbers."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def home() -> RedirectResponse:
        """The site's root opens the dashboard (which asks to sign in first)."""
        return RedirectResponse("/dashboard", status_code=303)

    @router.get("/dashboard", response_class=HTMLResponse)
    async def overview(request: Request, _: Principal = Depends(require_page(Role.VIEWER))) -> HTMLResponse:
        """Every campaign with its progress and funnel, sends per hour over the last day, the paused ones."""
        db, now = database(request), now_utc()
        ids = await campaign_ids(db, MAX_CAMPAIGNS + 1)
        hours = await sends_per_hour(db, now)
        skipped: list[InvalidDocument] = []
        views = await _views(db, ids[:MAX_CAMPAIGNS], now, skipped)
        return render(
            request,
            "dashboard/overview.html",
            campaigns=views,
            skipped=[str(exc) for exc in skipped[:MAX_SKIPPED_SHOWN]],
            skipped_count=len(skipped),
            more_campaigns=len(ids) > MAX_CAMPAIGNS,
            paused=await paused_campaigns(db),
            chart=sends_chart(hours),
            sent_24h=sum(h.count for h in hours),
        )

    @router.get("/dashboard/campaigns/{campaign_id}", response_class=HTMLResponse)
    async def campaign_page(
        request: Request, campaign_id: str, _: Principal = Depends(require_page(Role.VIEWER))
    ) -> HTMLResponse:
        """One campaign: progress per step, its funnel, why it is paused, and its buttons."""
        db, now = database(request), now_utc()
        try:
            progress = await campaign_views.campaign_progress(db, campaign_id, now, lambda _: None)
        except (NotFound, InvalidDocument) as exc:
            return problem_page(request, exc, "/dashboard")
        view = campaign_view(progress)
        return render(
            request,
            "dashboard/campaign.html",
            view=view,
            pause=await pause_info(db, view.id),
            chart=sends_chart(await sends_per_hour(db, now, [view.id])),
        )

    @router.get("/dashboard/live")
    async def live(
        request: Request,
        campaign: list[str] | None = Query(None, description="Only these campaigns (repeat the parameter)."),
        _: Principal = Depends(require(Role.VIEWER)),
    ) -> Response:
        """The live numbers of the campaigns (all, or those asked for) under the keys the pages mark."""
        db, now = database(request), now_utc()
        started = time.monotonic()
        ids = list(dict.fromkeys(campaign))[:MAX_CAMPAIGNS] if campaign else await campaign_ids(db, MAX_CAMPAIGNS)
        values: dict[str, str] = {}
        bars: dict[str, dict[str, float]] = {}
        for view in await _views(db, ids, now):
            more_values, more_bars = campaign_live(view.progress)
            values.update(more_values)
            bars.update(more_bars)
        if not campaign:
            values[live_key("sent_24h")] = fmt_count(sum(h.count for h in await sends_per_hour(db, now)))
        wait = next_poll_seconds(time.monotonic() - started)
        return JSONResponse({"at": now.isoformat(), "values": values, "bars": bars, "next_seconds": wait})

    _actions(router)
    return router


def _actions(router: APIRouter) -> None:
    operator = require_page(Role.OPERATOR)

    @router.post("/dashboard/campaigns/{campaign_id}/pause")
    async def pause(
        request: Request,
        campaign_id: str,
        reason: str | None = Form(None),
        back: str | None = Form(None),
        principal: Principal = Depends(operator),
    ) -> RedirectResponse:
        """Pause an active campaign (with an optional reason); nothing more is sent until it is resumed."""
        return await run_action(
            request,
            principal,
            "campaign.pause",
            {"campaign_id": campaign_id},
            lambda: campaigns.pause_campaign(
                database(request), campaign_id, reason, now_utc(), campaigns.pauser(principal.kind, principal.name)
            ),
            lambda done: "Campaign paused." + (f" Reason: {done.paused_reason}" if done.paused_reason else ""),
            back_to(back, f"/dashboard/campaigns/{campaign_id}"),
            details={"reason": reason} if reason else None,
        )

    @router.post("/dashboard/campaigns/{campaign_id}/resume")
    async def resume(
        request: Request, campaign_id: str, back: str | None = Form(None), principal: Principal = Depends(operator)
    ) -> RedirectResponse:
        """Make a paused or draft campaign active again."""
        return await run_action(
            request,
            principal,
            "campaign.resume",
            {"campaign_id": campaign_id},
            lambda: campaigns.resume_campaign(database(request), campaign_id, now_utc()),
            lambda done: f"Campaign resumed (it was {done.before}); its due leads are sent now.",
            back_to(back, f"/dashboard/campaigns/{campaign_id}"),
        )

    @router.post("/dashboard/campaigns/{campaign_id}/trigger")
    async def trigger(
        request: Request, campaign_id: str, back: str | None = Form(None), principal: Principal = Depends(operator)
    ) -> RedirectResponse:
        """Make the campaign's waiting leads due now."""
        return await run_action(
            request,
            principal,
            "campaign.trigger",
            {"campaign_id": campaign_id},
            lambda: campaigns.trigger_campaign(database(request), campaign_id, now_utc()),
            lambda done: (
                f"{done.leads_due_now} waiting lead(s) are due now"
                + ("." if done.status == "active" else f"; the campaign is {done.status}, so nothing is sent yet.")
            ),
            back_to(back, f"/dashboard/campaigns/{campaign_id}"),
        )
