"""`/api/v1/accounts`: each sending account's usage against its limits today (hourly too), its wait window and
rotation state; admins pause and resume one. No answer holds a password or any other credential."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request

from app.ops import account_views, accounts
from app.web.api import models
from app.web.api.errors import audited, log_invalid, read
from app.web.api.pagination import CURSOR_QUERY, LIMIT_QUERY, page_in_memory
from app.web.auth import Principal, Role, require

VIEWER = Depends(require(Role.VIEWER))
ADMIN = Depends(require(Role.ADMIN))


def usage(row: dict[str, Any]) -> models.AccountUsage:
    """An account's row as the API shows it (the fields the model names; nothing else leaves the server)."""
    return models.AccountUsage.model_validate(models.jsonable(row))


def accounts_router() -> APIRouter:
    """The account routes: reads for viewers, pause and resume for admins."""
    router = APIRouter(prefix="/api/v1/accounts", tags=["accounts"])

    @router.get("", response_model=models.AccountPage)
    async def list_accounts(
        request: Request, principal: Principal = VIEWER, cursor: str | None = CURSOR_QUERY, limit: int = LIMIT_QUERY
    ) -> models.AccountPage:
        """Accounts by id: today's sends (each in its own time zone) against the day's and the hour's limits,
        when each may send next, its status (paused, auth_failed: out of rotation) and its bounce rate."""
        rows = await account_views.stats_rows(request.app.state.db, None, datetime.now(UTC), log_invalid)
        page, next_cursor = page_in_memory(rows, lambda r: str(r["id"]), cursor, limit)
        return models.AccountPage(items=[usage(r) for r in page], next_cursor=next_cursor)

    @router.get("/{account_id}", response_model=models.AccountUsage)
    async def show_account(account_id: str, request: Request, principal: Principal = VIEWER) -> models.AccountUsage:
        """One account's usage, limits, wait window and rotation state."""
        db = request.app.state.db
        return usage(await read(account_views.account_stats(db, account_id, None, datetime.now(UTC), log_invalid)))

    async def _set(request: Request, principal: Principal, account_id: str, status: str) -> models.AccountStatusChange:
        change = await audited(
            request,
            principal,
            "account.pause" if status == "paused" else "account.resume",
            {"account_id": account_id},
            lambda: accounts.set_account_status(request.app.state.db, account_id, status, datetime.now(UTC)),
            lambda c: {"before": c.before, "after": c.after, "changed": c.changed},
        )
        return models.AccountStatusChange(**asdict(change))

    @router.post("/{account_id}/pause", response_model=models.AccountStatusChange)
    async def pause(account_id: str, request: Request, principal: Principal = ADMIN) -> models.AccountStatusChange:
        """Stop sending from an account for now (status paused); `changed` is false if it was paused already."""
        return await _set(request, principal, account_id, "paused")

    @router.post("/{account_id}/resume", response_model=models.AccountStatusChange)
    async def resume(account_id: str, request: Request, principal: Principal = ADMIN) -> models.AccountStatusChange:
        """Send from an account again (status active), also after a failed login took it out of rotation:
        `disabled_reason` says what that failure was."""
        return await _set(request, principal, account_id, "active")

    return router
