"""`/dashboard/accounts`: each sending account's usage today against its daily and hourly limits, when it
may send next, and its health (status, why it is out of rotation, bounce rate over 30 days)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from app.ops import account_views
from app.web.auth import Principal, Role, require_page
from app.web.dashboard.actions import database, now_utc
from app.web.templating import render


def account_router() -> APIRouter:
    """The accounts page."""
    router = APIRouter(include_in_schema=False)

    @router.get("/dashboard/accounts", response_class=HTMLResponse)
    async def accounts(request: Request, _: Principal = Depends(require_page(Role.VIEWER))) -> HTMLResponse:
        """The rows `outbound show-account-stats` prints, each account's day in its own time zone."""
        now = now_utc()
        rows = await account_views.stats_rows(database(request), None, now, lambda _: None)
        return render(request, "dashboard/accounts.html", accounts=rows, now=now)

    return router
