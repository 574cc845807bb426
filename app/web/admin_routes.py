"""The admin part of the JSON API: API tokens (`/api/v1/tokens`) and the audit log (`/api/v1/audit`).

A token's secret is returned once, in the answer to the POST that creates it; no other answer holds a token
or its hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.store import api_tokens, audit
from app.store.api_tokens import DuplicateTokenName
from app.web.auth import Principal, Role, require
from app.web.auth import audit as audit_action

ADMIN = Depends(require(Role.ADMIN))


class NewToken(BaseModel):
    """The body of `POST /api/v1/tokens`."""

    name: str = Field(min_length=1, max_length=100, description="A unique name saying who or what uses it.")
    role: str = Field(description="viewer, operator or admin.")


async def _create_token(request: Request, principal: Principal, body: NewToken) -> JSONResponse:
    name = body.name.strip()
    target = {"name": name}
    try:
        role = Role.parse(body.role)
        if not name:
            raise ValueError("the name must not be blank")
    except ValueError as exc:
        await audit_action(request, principal, "token.create", target, outcome="refused", details={"error": str(exc)})
        raise HTTPException(status_code=422, detail=str(exc)) from None
    try:
        record, token = await api_tokens.create(request.app.state.db, name, role.value, datetime.now(UTC))
    except DuplicateTokenName as exc:
        await audit_action(request, principal, "token.create", target, outcome="refused", details={"error": str(exc)})
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await audit_action(
        request, principal, "token.create", {"token_id": record.id, **target}, details={"role": role.value}
    )
    return JSONResponse({**record.to_json(), "token": token}, status_code=201)


def admin_router() -> APIRouter:
    """`/api/v1/tokens` and `/api/v1/audit`, for admins only."""
    router = APIRouter(prefix="/api/v1", tags=["admin"])

    @router.get("/tokens")
    async def list_tokens(request: Request, principal: Principal = ADMIN) -> dict[str, Any]:
        """Every API token with its role, prefix, creation, last use and revocation (never the token)."""
        return {"items": [token.to_json() for token in await api_tokens.list_tokens(request.app.state.db)]}

    @router.post("/tokens", status_code=201)
    async def create_token(body: NewToken, request: Request, principal: Principal = ADMIN) -> JSONResponse:
        """Create a token; the answer carries it once, in `token`: store it, it cannot be shown again."""
        return await _create_token(request, principal, body)

    @router.delete("/tokens/{token_id}")
    async def revoke_token(token_id: str, request: Request, principal: Principal = ADMIN) -> dict[str, Any]:
        """Revoke a token: every request with it is refused from now on. 404 when unknown or revoked already."""
        revoked = await api_tokens.revoke(request.app.state.db, token_id, datetime.now(UTC))
        if revoked is None:
            await audit_action(request, principal, "token.revoke", {"token_id": token_id}, outcome="refused")
            raise HTTPException(status_code=404, detail=f"no unrevoked token has the id {token_id}")
        await audit_action(request, principal, "token.revoke", {"token_id": revoked.id, "name": revoked.name})
        return revoked.to_json()

    @router.get("/audit")
    async def audit_entries(
        request: Request,
        principal: Principal = ADMIN,
        limit: int = Query(50, ge=1, le=audit.MAX_PAGE),
        cursor: str | None = Query(None, description="The next_cursor of the previous page."),
        actor: str | None = Query(None, description="Only this actor (name or id)."),
        action: str | None = Query(None, description="Only this action, e.g. login or token.create."),
    ) -> dict[str, Any]:
        """Audit entries newest first, a page at a time: pass `next_cursor` back as `cursor` for the next page."""
        try:
            docs = await audit.list_entries(
                request.app.state.db, limit=limit + 1, actor=actor, action=action, before=cursor
            )
        except audit.BadCursor as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        page = docs[:limit]
        more = len(docs) > limit
        return {"items": [audit.entry_json(doc) for doc in page], "next_cursor": str(page[-1]["_id"]) if more else None}

    return router
