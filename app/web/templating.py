"""The dashboard's HTML: one Jinja2 environment over `app/web/templates/`, autoescaped, and `render`.

Every page extends `base.html`. Assets are Outbound's own, served under `/static/` from `app/web/static/`:
no CDN, no external request, no inline script (the Content-Security-Policy forbids them).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.staticfiles import StaticFiles

from app.web.auth import Principal, Role, csrf_token
from app.web.dashboard import views
from app.web.dashboard.flash import clear_flash, read_flash

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
STATIC_PREFIX = "/static/"


@cache
def environment() -> Environment:
    """The template environment: HTML autoescaped, an undefined name an error rather than an empty string."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "svg"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = static_url
    env.globals["live_key"] = views.live_key
    env.globals["relative"] = views.fmt_relative
    env.globals["next_free"] = views.next_free
    env.globals["usage_bar"] = views.usage_bar
    env.filters["count"] = views.fmt_count
    env.filters["percent"] = views.fmt_percent
    env.filters["when"] = views.fmt_time
    return env


@cache
def _fingerprint(path: str) -> str:
    # Files ship with the package and do not change while the process runs, so one hash per file is enough.
    return hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest()[:12]


def static_url(path: str) -> str:
    """`/static/<path>?v=<content hash>`: a new release's CSS or script is fetched, never a stale copy.

    A name outside `app/web/static/` is a programming error and raises ValueError, so a typo fails the page
    rather than shipping a link that answers 404.
    """
    target = (STATIC_DIR / path).resolve()
    if STATIC_DIR not in target.parents or not target.is_file():
        raise ValueError(f"no static file {path!r} under {STATIC_DIR.name}/")
    return f"{STATIC_PREFIX}{path}?v={_fingerprint(path)}"


def static_files() -> StaticFiles:
    """The ASGI app serving `app/web/static/`; mounted at `/static` by `create_app`."""
    return StaticFiles(directory=STATIC_DIR)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The template `name` as an HTML response, with `request`, `csrf_token`, `principal`, `static_url`,
    `flash` (the message an action left for this page, shown once), `can_operate` (the principal may act on
    campaigns, leads and sends: show the buttons) and `live_seconds` (the poll interval).

    `principal` is the signed-in user or token the route's `require_page`/`require` dependency found
    (`request.state.principal`), or None on an open page such as the login form.
    """
    principal: Principal | None = getattr(request.state, "principal", None)
    values: dict[str, Any] = {
        "request": request,
        "csrf_token": csrf_token(request),
        "principal": principal,
        "static_url": static_url,
        "flash": read_flash(request),
        "can_operate": principal is not None and principal.may(Role.OPERATOR),
        "live_seconds": views.LIVE_SECONDS,
    }
    values.update(context)
    response = HTMLResponse(environment().get_template(name).render(values), status_code=status)
    clear_flash(request, response)
    return response
