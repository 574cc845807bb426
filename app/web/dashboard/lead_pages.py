"""`/dashboard/leads?q=`: finding leads by a recipient's address or name (or company), a page at a time, and
`/dashboard/leads/{id}`: one lead, its recipients, its sends and its timeline of activities."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from app.domain import reports
from app.domain.models import InvalidDocument, Lead
from app.ops import account_views, lead_views
from app.store.documents import NotFound
from app.store.lead_search import MAX_TERM, search_leads
from app.web.auth import Principal, Role, require_page
from app.web.dashboard.actions import database, now_utc
from app.web.dashboard.campaign_pages import problem_page
from app.web.templating import render

PAGE_SIZE = 50


@dataclass(frozen=True)
class LeadRow:
    """One search result: the lead, who it reaches first, its company, campaign and state."""

    id: str
    email: str
    name: str
    company: str | None
    campaign_id: str
    campaign: str | None
    state: str
    step: int
    recipients: int


def lead_row(lead: Lead, campaign_names: dict[str, str], now: datetime) -> LeadRow:
    """The row of one lead (pure): its first recipient stands for it."""
    first = lead.recipients[0]
    name = " ".join(str(first.fields.get(k) or "") for k in ("first_name", "last_name")).strip()
    return LeadRow(
        id=str(lead.id),
        email=first.email,
        name=name,
        company=lead_views.lead_company(lead),
        campaign_id=lead.campaign_id,
        campaign=campaign_names.get(lead.campaign_id),
        state=reports.lead_state(lead, now),
        step=lead.progress.current_step_order,
        recipients=len(lead.recipients),
    )


def lead_router() -> APIRouter:
    """The lead search and the lead page."""
    router = APIRouter(include_in_schema=False)

    @router.get("/dashboard/leads", response_class=HTMLResponse)
    async def leads(
        request: Request,
        q: str | None = Query(None, max_length=MAX_TERM),
        company: str | None = Query(None, max_length=MAX_TERM),
        after: str | None = Query(None, max_length=100),
        _: Principal = Depends(require_page(Role.VIEWER)),
    ) -> HTMLResponse:
        """Leads whose recipient's email or name contains `q` (and whose company contains `company`)."""
        db, now = database(request), now_utc()
        page = await search_leads(db, text=q, company=company, after=after or None, limit=PAGE_SIZE)
        names = await account_views.campaign_names(db, sorted({lead.campaign_id for lead in page.leads}))
        return render(
            request,
            "dashboard/leads.html",
            rows=[lead_row(lead, names, now) for lead in page.leads],
            q=q or "",
            company=company or "",
            after=after,
            next_after=page.next_after,
        )

    @router.get("/dashboard/leads/{lead_id}", response_class=HTMLResponse)
    async def lead_page(
        request: Request, lead_id: str, _: Principal = Depends(require_page(Role.VIEWER))
    ) -> HTMLResponse:
        """One lead as `outbound show-lead-details` shows it, its activities as a timeline (newest first)."""
        now = now_utc()
        try:
            info: dict[str, Any] = await lead_views.lead_details(database(request), lead_id, now)
        except (NotFound, InvalidDocument) as exc:
            return problem_page(request, exc, "/dashboard/leads")
        return render(request, "dashboard/lead.html", lead=info, now=now)

    return router
