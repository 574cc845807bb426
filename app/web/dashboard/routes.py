"""The dashboard's routes, page by page, as one router for `create_app`."""

from __future__ import annotations

from fastapi import APIRouter

from app.web.dashboard.account_pages import account_router
from app.web.dashboard.campaign_pages import campaign_router
from app.web.dashboard.job_pages import job_router
from app.web.dashboard.lead_pages import lead_router
from app.web.dashboard.uncertain_pages import uncertain_router


def dashboard_router() -> APIRouter:
    """`/`, `/dashboard/...`: campaigns, accounts, leads, uncertain sends, jobs, their actions and the live numbers."""
    router = APIRouter(include_in_schema=False)
    for part in (campaign_router(), account_router(), lead_router(), uncertain_router(), job_router()):
        router.include_router(part)
    return router
