"""Strict security headers on every response of the web service (an ASGI middleware around the app).

Two policies. By default (the unsubscribe pages, the API, the probes) a response loads nothing at all; the
unsubscribe pages admit their one inline style by hash. The dashboard's pages (and the login page) may load
only Outbound's own files from `/static/`: no inline script or style, no other origin, no framing. Only the
static files may be cached; every other answer may show a signed-in person's data, so nothing keeps it.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.web.pages import STYLE_HASH

# default-src 'none': no script, image, font or connection at all; the one inline style is admitted by hash.
# form-action does not fall back to default-src, so the confirm button's same-URL POST is allowed by name.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# 'self' only: scripts and styles are files under /static (no 'unsafe-inline'), the live updates fetch from
# this origin; the charts are inline SVG markup and the icon a file here, so no data: image is needed.
DASHBOARD_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# Pages a browser renders with the layout's stylesheet and script; everything else keeps the strict policy.
DASHBOARD_PREFIXES = ("/dashboard", "/login", "/logout")
STATIC_PREFIX = "/static/"
# Static URLs carry a content hash (`?v=`), so a new release is fetched at once; an hour bounds a stale copy
# of a URL typed without one.
STATIC_CACHE_CONTROL = "public, max-age=3600"

COMMON_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    ("X-Robots-Tag", "noindex, nofollow"),
)

# What every response outside the dashboard carries (the unsubscribe pages, the API, the probes).
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    *COMMON_HEADERS,
    # An unsubscribe link names a person's send: no shared cache or browser history may keep its page.
    ("Cache-Control", "no-store"),
)

DASHBOARD_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", DASHBOARD_CONTENT_SECURITY_POLICY),
    *COMMON_HEADERS,
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
)

STATIC_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", DASHBOARD_CONTENT_SECURITY_POLICY),
    *COMMON_HEADERS,
    ("Cache-Control", STATIC_CACHE_CONTROL),
)


def headers_for(path: str) -> tuple[tuple[str, str], ...]:
    """The security headers a response to `path` carries."""
    if path.startswith(STATIC_PREFIX):
        return STATIC_HEADERS
    if path == "/" or path.startswith(DASHBOARD_PREFIXES):
        return DASHBOARD_HEADERS
    return SECURITY_HEADERS


class SecurityHeaders:
    """Sets the path's security headers on every HTTP response, replacing any the route set itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chosen = headers_for(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in chosen:
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
