"""The JSON API under `/api/v1`: campaigns, leads, accounts, activities, sends, suppressions, imports and jobs.

Every GET needs the viewer role, every action its own role (operator, admin for accounts) and is audited. The
OpenAPI schema at `/api/v1/openapi.json` lists the `/api/v1` routes only (there are no Swagger or ReDoc pages:
they would load scripts from elsewhere).
"""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from app.web.api.accounts import accounts_router
from app.web.api.activities import activities_router
from app.web.api.campaigns import campaigns_router
from app.web.api.imports import imports_router
from app.web.api.jobs import jobs_router
from app.web.api.leads import leads_router
from app.web.api.sends import sends_router
from app.web.api.suppressions import suppressions_router

API_PREFIX = "/api/v1"
OPENAPI_URL = f"{API_PREFIX}/openapi.json"


def api_router() -> APIRouter:
    """Every `/api/v1` route of this package (the admin token and audit routes are in app.web.admin_routes)."""
    router = APIRouter()
    # The import route shares the campaigns prefix; it goes first so `/{id}/imports` is never read as an id.
    for sub in (
        imports_router(),
        campaigns_router(),
        leads_router(),
        accounts_router(),
        activities_router(),
        sends_router(),
        suppressions_router(),
        jobs_router(),
    ):
        router.include_router(sub)
    return router


def install_openapi(app: FastAPI) -> None:
    """Serve an OpenAPI schema of the `/api/v1` routes alone (pages, health and unsubscribe links are not API)."""

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            # HEAD twins of the pages' GET routes share operation ids; those paths are dropped below anyway.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Duplicate Operation ID")
                whole = get_openapi(
                    title="Outbound API", version=app.version, description=__doc__ or "", routes=app.routes
                )
            paths = whole.get("paths", {})
            whole["paths"] = {path: ops for path, ops in paths.items() if path.startswith(API_PREFIX + "/")}
            app.openapi_schema = whole
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]
