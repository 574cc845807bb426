"""`/api/v1/suppressions`: the addresses and @domains never to be mailed, and adding one."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from app.domain.suppression_entries import display_value
from app.ops import suppressions
from app.store import schema
from app.store import suppressions as suppression_store
from app.web.api import models
from app.web.api.errors import audited
from app.web.api.pagination import CURSOR_QUERY, LIMIT_QUERY, BadCursor, bad_cursor, cursor_values, encode_cursor
from app.web.auth import Principal, Role, require

VIEWER = Depends(require(Role.VIEWER))
OPERATOR = Depends(require(Role.OPERATOR))


def entry(doc: dict[str, Any]) -> models.Suppression:
    """A stored entry as the operator writes it: an address, or a domain as @domain."""
    value = str(doc["value"])
    return models.Suppression(
        value=display_value(value),
        kind="address" if "@" in value else "domain",
        reason=doc.get("reason"),
        detail=doc.get("detail"),
        created_at=doc.get("created_at"),
    )


def suppressions_router() -> APIRouter:
    """The suppression routes: the list for viewers, adding for operators."""
    router = APIRouter(prefix="/api/v1/suppressions", tags=["suppressions"])

    @router.get("", response_model=models.SuppressionPage)
    async def list_suppressions(
        request: Request, principal: Principal = VIEWER, cursor: str | None = CURSOR_QUERY, limit: int = LIMIT_QUERY
    ) -> models.SuppressionPage:
        """The list in alphabetical order of the stored value (a domain without its @), with the total."""
        position = cursor_values(cursor, 1)
        after = position[0] if position is not None else None
        if position is not None and not isinstance(after, str):
            raise bad_cursor(BadCursor("not a cursor of this list"))
        coll = request.app.state.db[schema.SUPPRESSIONS]
        key = after if isinstance(after, str) else None
        docs = await suppression_store.list_entries(coll, limit=limit + 1, after=key)
        page = docs[:limit]
        next_cursor = encode_cursor([str(page[-1]["value"])]) if len(docs) > limit else None
        total = await suppression_store.count(coll)
        return models.SuppressionPage(total=total, items=[entry(d) for d in page], next_cursor=next_cursor)

    @router.post("", response_model=models.Suppressed, status_code=201)
    async def suppress(
        body: models.SuppressBody, request: Request, response: Response, principal: Principal = OPERATOR
    ) -> models.Suppressed:
        """Suppress an address or a whole @domain in every campaign: 201 when added, 200 when it was listed
        already (kept as it was). The dispatcher checks the list before every send."""
        done = await audited(
            request,
            principal,
            "suppression.add",
            {"value": body.email},
            lambda: suppressions.suppress_address(
                request.app.state.db, body.email, body.reason, datetime.now(UTC), detail=f"api {principal.describe()}"
            ),
            lambda s: {"reason": s.reason, "added": s.added},
        )
        if not done.added:
            response.status_code = 200
        return models.Suppressed(**asdict(done))

    return router
