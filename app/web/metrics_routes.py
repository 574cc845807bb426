"""`GET /metrics` of `outbound serve`: the cluster's database-derived gauges, read at each scrape.

The dispatchers expose their own counters and histograms (`run-dispatcher --metrics-port`); this endpoint shows
what the database says of all of them at once (due backlog, uncertain sends, paused campaigns, accounts out of
rotation, inbox sync lag, live dispatchers), so one scrape of the web service gives the whole picture. Like
`/health` and `/ready` it needs no credentials: it carries ids and counts, never a name or an address.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.exposition import generate_latest
from pymongo.errors import PyMongoError

from app.logging import get_logger
from app.metrics import gauges as metric_gauges
from app.metrics.registry import ClusterGauges


def metrics_router() -> APIRouter:
    """The scrape route, with a registry of its own holding only the cluster gauges."""
    router = APIRouter(include_in_schema=False)
    registry = CollectorRegistry(auto_describe=True)
    gauges = ClusterGauges(registry)

    @router.get("/metrics")
    async def scrape(request: Request) -> Response:
        """Prometheus text; 503 when the database does not answer (the scrape then fails, as it should)."""
        try:
            readings = await metric_gauges.read(request.app.state.db, datetime.now(UTC))
        except PyMongoError as exc:
            get_logger().warning("web.metrics_failed", error=str(exc))
            return PlainTextResponse("database unreachable\n", status_code=503)
        # Set and rendered with no await in between: a concurrent scrape never sees half of another's values.
        metric_gauges.apply(gauges, readings)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
