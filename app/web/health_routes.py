"""`/health` (the process answers) and `/ready` (the database answers and a dispatcher is alive)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.store.dispatchers import readiness

# Dispatchers beat every few seconds: a probe asking again sooner learns nothing new.
READY_RETRY_AFTER_SECONDS = 5


def health_router() -> APIRouter:
    """The two probes; the database is the app's (`state.db`)."""
    router = APIRouter()

    @router.api_route("/health", methods=["GET", "HEAD"])
    async def health() -> JSONResponse:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    @router.api_route("/ready", methods=["GET", "HEAD"])
    async def ready(request: Request) -> JSONResponse:
        """Readiness: 200 when the database answers a ping and a dispatcher beat within 3 of its intervals;
        503 with the reason otherwise."""
        verdict = await readiness(request.app.state.db, datetime.now(UTC))
        if verdict.ready:
            return JSONResponse(verdict.to_json())
        headers = {"Retry-After": str(READY_RETRY_AFTER_SECONDS)}
        return JSONResponse(verdict.to_json(), status_code=503, headers=headers)

    return router
