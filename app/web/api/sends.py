"""`/api/v1/sends`: the uncertain sends (maybe delivered, maybe not) and how an operator settles one."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from app.ops import sends
from app.web.api import models
from app.web.api.errors import audited
from app.web.api.pagination import CURSOR_QUERY, LIMIT_QUERY, BadCursor, bad_cursor, cursor_values, encode_cursor
from app.web.auth import Principal, Role, require

VIEWER = Depends(require(Role.VIEWER))
OPERATOR = Depends(require(Role.OPERATOR))


def uncertain_send(doc: dict[str, Any]) -> models.UncertainSend:
    """A ledger entry as the API lists it (its `_id` is the send key)."""
    fields = {k: v for k, v in doc.items() if k != "_id"}
    return models.UncertainSend.model_validate(models.jsonable({"send_key": str(doc["_id"]), **fields}))


def sends_router() -> APIRouter:
    """The send routes: the list for viewers, resolving for operators."""
    router = APIRouter(prefix="/api/v1/sends", tags=["sends"])

    @router.get("/uncertain", response_model=models.UncertainPage)
    async def uncertain(
        request: Request,
        principal: Principal = VIEWER,
        campaign_id: str | None = Query(None, max_length=100, description="Only this campaign's."),
        cursor: str | None = CURSOR_QUERY,
        limit: int = LIMIT_QUERY,
    ) -> models.UncertainPage:
        """Sends that may or may not have been delivered, by send key. They count against limits and are never
        retried automatically: settle each with `POST /api/v1/sends/{send_key}/resolve`."""
        position = cursor_values(cursor, 1)
        after = position[0] if position is not None else None
        if position is not None and not isinstance(after, str):
            raise bad_cursor(BadCursor("not a cursor of this list"))
        key = after if isinstance(after, str) else None
        docs = await sends.list_uncertain(request.app.state.db, campaign_id, limit + 1, by_key=True, after=key)
        page = docs[:limit]
        next_cursor = encode_cursor([str(page[-1]["_id"])]) if len(docs) > limit else None
        return models.UncertainPage(items=[uncertain_send(d) for d in page], next_cursor=next_cursor)

    @router.post("/{send_key}/resolve", response_model=models.ResolvedSend)
    async def resolve(
        send_key: str, body: models.ResolveBody, request: Request, principal: Principal = OPERATOR
    ) -> models.ResolvedSend:
        """Settle an uncertain send: `sent` records it as delivered, `resend` queues it to be sent again (the
        recipient may get it twice). 409 when it is not uncertain or a dispatcher holds its lead."""
        done = await audited(
            request,
            principal,
            "send.resolve",
            {"send_key": send_key},
            lambda: sends.resolve_send(request.app.state.db, send_key, body.outcome, datetime.now(UTC)),
            lambda r: {"outcome": body.outcome, "state": r.state},
        )
        return models.ResolvedSend(**asdict(done))

    return router
