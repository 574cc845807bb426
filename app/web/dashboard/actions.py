"""How a dashboard action runs: the shared operation, its audit entry, a flash, and a 303 back (PRG).

Every button on the dashboard is a form that POSTs here; the operation itself is the one the API and the
CLI call (`app.ops`), so the dashboard never decides anything on its own. A refused operation (OpError)
changes nothing: the page it came from shows the operation's own message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse
from pymongo.errors import PyMongoError

from app.logging import get_logger
from app.ops.errors import OpError
from app.store.client import Database
from app.web.auth import Principal, audit
from app.web.dashboard.flash import Flash, set_flash

T = TypeVar("T")

DASHBOARD_HOME = "/dashboard"


def database(request: Request) -> Database:
    """The app's database connection."""
    db: Database = request.app.state.db
    return db


def now_utc() -> datetime:
    """One `now` per request: routes read the clock here and pass it down."""
    return datetime.now(UTC)


def back_to(target: str | None, default: str) -> str:
    """Where an action redirects: `target` if it is a dashboard path on this site, else `default`.

    Only a path under /dashboard is accepted, so a crafted form cannot send the browser elsewhere.
    """
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(DASHBOARD_HOME) or "\\" in target:
        return default
    return parts.path + (f"?{parts.query}" if parts.query else "")


def redirect_with(request: Request, target: str, flash: Flash) -> RedirectResponse:
    """A 303 to `target` carrying `flash` for the page it lands on."""
    response = RedirectResponse(target, status_code=303)
    set_flash(response, request, flash)
    return response


async def run_action(
    request: Request,
    principal: Principal,
    action: str,
    target: Mapping[str, str],
    operation: Callable[[], Awaitable[T]],
    describe: Callable[[T], str],
    back: str,
    details: dict[str, Any] | None = None,
) -> RedirectResponse:
    """Run `operation`, audit it (ok, or refused with the operation's message) and redirect to `back`.

    `describe` words the result for the flash ("Campaign Spring paused.").
    """
    log = get_logger(**target)
    try:
        result = await operation()
    except OpError as exc:
        refused = {**(details or {}), "error": exc.message}
        await audit(request, principal, action, dict(target), outcome="refused", details=refused)
        log.debug("dashboard.action_refused", action=action, kind=exc.kind, error=exc.message)
        return redirect_with(request, back, Flash("error", exc.message))
    except PyMongoError as exc:
        log.warning("dashboard.action_failed", action=action, error=type(exc).__name__)
        await _audit_failure(request, principal, action, target, {**(details or {}), "error": type(exc).__name__})
        text = "The database did not answer, so the action may not have been done: check the page and try again."
        return redirect_with(request, back, Flash("error", text))
    await audit(request, principal, action, dict(target), details=details)
    # The audit entry is logged at INFO already.
    log.debug("dashboard.action", action=action, actor=principal.name)
    return redirect_with(request, back, Flash("ok", describe(result)))


async def _audit_failure(
    request: Request, principal: Principal, action: str, target: Mapping[str, str], details: dict[str, Any]
) -> None:
    # The database just failed once: the audit entry may fail too, and must not hide the first error.
    try:
        await audit(request, principal, action, dict(target), outcome="failed", details=details)
    except PyMongoError as exc:
        get_logger(**target).warning("dashboard.audit_failed", action=action, error=type(exc).__name__)
