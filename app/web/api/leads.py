"""`/api/v1/leads`: finding leads by address, name or company, and one lead with its timeline and answers."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query, Request

from app.domain import reports
from app.domain.models import Lead
from app.ops import lead_views
from app.store import lead_search
from app.store.answer_stats import ANSWER_TYPES
from app.web.api import models
from app.web.api.errors import read
from app.web.api.pagination import CURSOR_QUERY, LIMIT_QUERY, BadCursor, bad_cursor, cursor_values, encode_cursor
from app.web.auth import Principal, Role, require

VIEWER = Depends(require(Role.VIEWER))
TIMELINE_LIMIT = 100


def lead_summary(lead: Lead, now: datetime) -> models.LeadSummary:
    """A lead as a search lists it: its company, state at `now`, step and recipients."""
    return models.LeadSummary(
        id=str(lead.id),
        campaign_id=lead.campaign_id,
        lead_key=lead.lead_key,
        company=lead_views.lead_company(lead),
        state=reports.lead_state(lead, now),
        current_step_order=lead.progress.current_step_order,
        next_due_at=lead.progress.next_due_at,
        recipients=[models.RecipientSummary(email=r.email, status=r.status) for r in lead.recipients],
    )


def leads_router() -> APIRouter:
    """The lead routes, for viewers."""
    router = APIRouter(prefix="/api/v1/leads", tags=["leads"])

    @router.get("", response_model=models.LeadPage)
    async def search(
        request: Request,
        principal: Principal = VIEWER,
        q: str | None = Query(None, max_length=200, description="Part of a recipient's address or name."),
        company: str | None = Query(None, max_length=200, description="Part of the company name or website."),
        cursor: str | None = CURSOR_QUERY,
        limit: int = LIMIT_QUERY,
    ) -> models.LeadPage:
        """Leads whose recipients match `q` and whose company matches `company` (case-insensitive), by id."""
        position = cursor_values(cursor, 1)
        after = position[0] if position is not None else None
        if position is not None and not isinstance(after, str):
            raise bad_cursor(BadCursor("not a cursor of this list"))
        found = await lead_search.search_leads(
            request.app.state.db, text=q, company=company, after=after if isinstance(after, str) else None, limit=limit
        )
        now = datetime.now(UTC)
        next_cursor = encode_cursor([found.next_after]) if found.next_after is not None else None
        return models.LeadPage(items=[lead_summary(lead, now) for lead in found.leads], next_cursor=next_cursor)

    @router.get("/{lead_id}", response_model=models.LeadDetail)
    async def show_lead(lead_id: str, request: Request, principal: Principal = VIEWER) -> models.LeadDetail:
        """A lead in full: campaign, state, progress and lease, recipients, send ledger, its latest activities
        (newest first) and the answers among them (replies, bounces, unsubscribes)."""
        db = request.app.state.db
        info = await read(lead_views.lead_details(db, lead_id, datetime.now(UTC), TIMELINE_LIMIT))
        answers = [a for a in info["activities"] if a.get("type") in ANSWER_TYPES]
        return models.LeadDetail(**models.jsonable({**info, "answers": answers}))

    return router
