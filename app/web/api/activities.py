"""`/api/v1/activities`: what happened, newest first (filtered by campaign, account, type, time), and the failed
recipients with their errors."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from app.ops import activity_views
from app.ops.activity_views import ActivityFilter, Position
from app.web.api import models
from app.web.api.pagination import CURSOR_QUERY, LIMIT_QUERY, BadCursor, bad_cursor, cursor_values, encode_cursor
from app.web.auth import Principal, Role, require

VIEWER = Depends(require(Role.VIEWER))
MAX_TYPES = 20


def _position(cursor: str | None) -> Position | None:
    values = cursor_values(cursor, 2)
    if values is None:
        return None
    created_at, doc_id = values
    if not isinstance(created_at, datetime) or not isinstance(doc_id, ObjectId):
        raise bad_cursor(BadCursor("not a cursor of this list"))
    return Position(created_at, doc_id)


def _types(raw: str | None) -> tuple[str, ...]:
    types = tuple(t.strip() for t in (raw or "").split(",") if t.strip())
    if len(types) > MAX_TYPES:
        raise HTTPException(422, f"type: at most {MAX_TYPES} types, comma-separated")
    return types


async def _page(request: Request, which: ActivityFilter, cursor: str | None, limit: int) -> models.ActivityPage:
    found = await activity_views.list_activities(request.app.state.db, which, before=_position(cursor), limit=limit)
    after = found.next
    next_cursor = encode_cursor([after.created_at, after.id]) if after is not None else None
    return models.ActivityPage(
        items=[models.Activity.model_validate(models.jsonable(item)) for item in found.items], next_cursor=next_cursor
    )


def activities_router() -> APIRouter:
    """The activity routes, for viewers."""
    router = APIRouter(prefix="/api/v1/activities", tags=["activities"])

    @router.get("", response_model=models.ActivityPage)
    async def list_activities(
        request: Request,
        principal: Principal = VIEWER,
        campaign_id: str | None = Query(None, max_length=100, description="Only this campaign's."),
        account_id: str | None = Query(None, max_length=100, description="Only this account's."),
        type: str | None = Query(None, max_length=500, description="Only these types, comma-separated: sent,replied."),
        since: datetime | None = Query(None, description="Only those at or after this time (ISO 8601)."),
        cursor: str | None = CURSOR_QUERY,
        limit: int = LIMIT_QUERY,
    ) -> models.ActivityPage:
        """Activities newest first: sends, failures, replies, bounces, unsubscribes, operator decisions."""
        if since is not None and since.tzinfo is None:
            raise HTTPException(422, "since: give a time zone, e.g. 2025-01-31T09:00:00Z")
        which = ActivityFilter(campaign_id, account_id, _types(type), since)
        return await _page(request, which, cursor, limit)

    @router.get("/failed", response_model=models.ActivityPage)
    async def failed(
        request: Request,
        principal: Principal = VIEWER,
        campaign_id: str | None = Query(None, max_length=100, description="Only this campaign's."),
        cursor: str | None = CURSOR_QUERY,
        limit: int = LIMIT_QUERY,
    ) -> models.ActivityPage:
        """Failed recipients newest first, each with its error and the SMTP server's code."""
        which = ActivityFilter(campaign_id=campaign_id, types=(activity_views.FAILED,))
        return await _page(request, which, cursor, limit)

    return router
