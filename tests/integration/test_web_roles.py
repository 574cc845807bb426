"""Every route of the web service against the least role it needs, called as each role through real uvicorn.

The table below is the access policy in one place. A route of `create_app` missing from it fails the first
test, so no route can be added unguarded; a row whose route is gone fails it too. For each route the second
test checks that a request without credentials is refused (401, or for a page a 303 to /login), that each
role below the minimum gets 403, and that the minimum role gets past the guard (whatever the route then says
about the made-up ids in the path).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import BaseRoute, Mount

from app.config import Settings
from app.web import create_app
from tests.web_server import running_web

ANONYMOUS, VIEWER, OPERATOR, ADMIN = "anonymous", "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)

# "METHOD path" -> the least role that may call it. `/static` is a mount: one row for all its files.
MINIMUM_ROLE: dict[str, str] = {
    # Open by design: probes, metrics, assets, the sign-in form, and one-click unsubscribe (RFC 8058).
    "GET /health": ANONYMOUS,
    "HEAD /health": ANONYMOUS,
    "GET /ready": ANONYMOUS,
    "HEAD /ready": ANONYMOUS,
    "GET /metrics": ANONYMOUS,
    "MOUNT /static": ANONYMOUS,
    "GET /u/{token}": ANONYMOUS,
    "HEAD /u/{token}": ANONYMOUS,
    "POST /u/{token}": ANONYMOUS,
    "GET /login": ANONYMOUS,
    "POST /login": ANONYMOUS,
    "POST /logout": ANONYMOUS,  # ends the session it is sent with, if any
    "GET /": ANONYMOUS,  # a redirect to /dashboard
    # Tokens and the audit log: admins.
    "GET /api/v1/tokens": ADMIN,
    "POST /api/v1/tokens": ADMIN,
    "DELETE /api/v1/tokens/{token_id}": ADMIN,
    "GET /api/v1/audit": ADMIN,
    # The JSON API: viewers read, operators act on campaigns, leads, sends and suppressions, admins on accounts.
    "GET /api/v1/openapi.json": ANONYMOUS,  # the schema of the routes below: no data
    "HEAD /api/v1/openapi.json": ANONYMOUS,
    "GET /api/v1/campaigns": VIEWER,
    "GET /api/v1/campaigns/{campaign_id}": VIEWER,
    "GET /api/v1/campaigns/{campaign_id}/progress": VIEWER,
    "POST /api/v1/campaigns/{campaign_id}/pause": OPERATOR,
    "POST /api/v1/campaigns/{campaign_id}/resume": OPERATOR,
    "POST /api/v1/campaigns/{campaign_id}/trigger": OPERATOR,
    "POST /api/v1/campaigns/{campaign_id}/imports": OPERATOR,
    "GET /api/v1/leads": VIEWER,
    "GET /api/v1/leads/{lead_id}": VIEWER,
    "GET /api/v1/accounts": VIEWER,
    "GET /api/v1/accounts/{account_id}": VIEWER,
    "POST /api/v1/accounts/{account_id}/pause": ADMIN,
    "POST /api/v1/accounts/{account_id}/resume": ADMIN,
    "GET /api/v1/activities": VIEWER,
    "GET /api/v1/activities/failed": VIEWER,
    "GET /api/v1/sends/uncertain": VIEWER,
    "POST /api/v1/sends/{send_key}/resolve": OPERATOR,
    "GET /api/v1/suppressions": VIEWER,
    "POST /api/v1/suppressions": OPERATOR,
    "GET /api/v1/jobs": VIEWER,
    "GET /api/v1/jobs/{job_id}": VIEWER,
    "GET /api/v1/jobs/{job_id}/executions": VIEWER,
    "POST /api/v1/jobs/{job_id}/pause": OPERATOR,
    "POST /api/v1/jobs/{job_id}/resume": OPERATOR,
    "POST /api/v1/jobs/{job_id}/cancel": OPERATOR,
    "POST /api/v1/jobs/{job_id}/run-now": OPERATOR,
    "POST /api/v1/job-executions/{execution_id}/retry-dead": OPERATOR,
    # The dashboard: viewers read, operators act.
    "GET /dashboard": VIEWER,
    "GET /dashboard/live": VIEWER,
    "GET /dashboard/campaigns/{campaign_id}": VIEWER,
    "POST /dashboard/campaigns/{campaign_id}/pause": OPERATOR,
    "POST /dashboard/campaigns/{campaign_id}/resume": OPERATOR,
    "POST /dashboard/campaigns/{campaign_id}/trigger": OPERATOR,
    "GET /dashboard/accounts": VIEWER,
    "GET /dashboard/leads": VIEWER,
    "GET /dashboard/leads/{lead_id}": VIEWER,
    "GET /dashboard/uncertain": VIEWER,
    "POST /dashboard/uncertain/resolve": OPERATOR,
    "GET /dashboard/jobs": VIEWER,
    "GET /dashboard/jobs/{job_id}": VIEWER,
    "POST /dashboard/jobs/{job_id}/pause": OPERATOR,
    "POST /dashboard/jobs/{job_id}/resume": OPERATOR,
    "POST /dashboard/jobs/{job_id}/run-now": OPERATOR,
}

# What a path parameter is replaced with: an id that names nothing (the guard runs before any lookup).
SAMPLE_PARAMETER = "000000000000000000000000"
SAMPLE_STATIC_FILE = "/static/outbound.css"
_PARAMETER = re.compile(r"\{[^}]+\}")


def _walk(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[str]:
    """`METHOD path` of every route, through included routers (FastAPI may keep them nested) and mounts."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _walk(inner.routes, prefix + getattr(route.include_context, "prefix", ""))  # type: ignore[attr-defined]
        elif isinstance(route, Mount):
            yield f"MOUNT {prefix}{route.path}"
        else:
            for method in sorted(getattr(route, "methods", None) or ()):
                yield f"{method} {prefix}{getattr(route, 'path', '')}"


def app_routes(settings: Settings) -> set[str]:
    """Every route `create_app` serves."""
    return set(_walk(create_app(settings).routes))


@pytest.fixture
def settings(mongo_uri: str, db_name: str, tmp_path: Path) -> Settings:
    return Settings(mongo_uri=mongo_uri, db_name=db_name, home=tmp_path / "home", secret_key="w" * 40)


def test_every_route_is_in_the_role_table(settings: Settings) -> None:
    served = app_routes(settings)
    missing = sorted(served - set(MINIMUM_ROLE))
    assert not missing, f"routes without a row in MINIMUM_ROLE (add each with its least role): {missing}"
    stale = sorted(set(MINIMUM_ROLE) - served)
    assert not stale, f"rows of MINIMUM_ROLE for routes the app no longer serves: {stale}"


def _request(web: httpx.Client, row: str, token: str | None) -> httpx.Response:
    method, path = row.split(" ", 1)
    if method == "MOUNT":
        method, path = "GET", SAMPLE_STATIC_FILE
    url = _PARAMETER.sub(SAMPLE_PARAMETER, path)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {"json": {}} if method in {"POST", "PUT", "PATCH"} and url.startswith("/api/") else {}
    return web.request(method, url, headers=headers, **body)


def _refused_anonymously(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return bool(response.headers.get("WWW-Authenticate") == "Bearer")
    return response.status_code == 303 and str(response.headers["location"]).startswith("/login?next=")


def test_each_route_admits_its_least_role_and_refuses_the_ones_below(cli: Any, settings: Settings) -> None:
    tokens = {}
    for role in ROLES:
        made = cli("token", "create", "--name", f"as-{role}", "--role", role)
        assert made.exit_code == 0, made.output
        tokens[role] = made.stdout.strip()
    wrong: list[str] = []
    with running_web(settings) as web:
        for row, least in sorted(MINIMUM_ROLE.items()):
            anonymous = _request(web, row, None)
            if least == ANONYMOUS:
                if _refused_anonymously(anonymous):
                    wrong.append(f"{row}: open by design, but refused without credentials")
                continue
            if not _refused_anonymously(anonymous):
                wrong.append(f"{row}: answered {anonymous.status_code} without credentials")
            for role in ROLES:
                status = _request(web, row, tokens[role]).status_code
                allowed = ROLES.index(role) >= ROLES.index(least)
                if allowed and status in {401, 403}:
                    wrong.append(f"{row}: {role} refused with {status}; it needs only {least}")
                if not allowed and status != 403:
                    wrong.append(f"{row}: {role} answered {status}, not 403; it needs {least}")
    assert not wrong, "\n".join(wrong)
