"""`/u/{token}`: the one-click unsubscribe link of every message (RFC 8058), and its confirm page.

GET and HEAD only show the confirm page: link scanners and mail previews fetch URLs on their own, so a GET
must never unsubscribe anybody. POST unsubscribes the recipient the signed token names, idempotently, and
answers 200 with a page, never a redirect (RFC 8058 section 3.2: the mail provider posts without following).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pymongo.errors import PyMongoError

from app.domain.unsubscribe import verify
from app.inbound.effects import unsubscribe_by_link
from app.logging import get_logger
from app.store.client import Database
from app.web.pages import Page, confirm_page, refused_page, unavailable_page, unsubscribed_page

RETRY_AFTER_SECONDS = 60


def _html(page: Page) -> HTMLResponse:
    response = HTMLResponse(page.html, status_code=page.status)
    if page.status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def unsubscribe_router(secret_key: str) -> APIRouter:
    """The `/u/{token}` routes, verifying tokens with `secret_key`; the database is the app's (`state.db`)."""
    router = APIRouter()

    @router.api_route("/u/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def confirm(token: str) -> HTMLResponse:
        """Show the confirm button; reads and changes nothing."""
        ref = verify(token, secret_key)
        if ref is None:
            get_logger().info("web.unsubscribe_refused", method="GET", reason="invalid or forged token")
            return _html(refused_page())
        return _html(confirm_page())

    # No CSRF token: RFC 8058 one-click POSTs come from mail providers without cookies or an earlier GET, and
    # this service has no session to ride on. A cross-site POST can only do what the signed link itself allows:
    # unsubscribe the one recipient it names.
    @router.post("/u/{token}", response_class=HTMLResponse)
    async def unsubscribe(token: str, request: Request) -> HTMLResponse:
        """Unsubscribe the recipient the token names; idempotent.

        The body is not read: the signed URL is the whole request, so RFC 8058's `List-Unsubscribe=One-Click`
        (form-urlencoded or multipart), the confirm button's form and an empty body all mean the same.
        """
        ref = verify(token, secret_key)
        if ref is None:
            get_logger().info("web.unsubscribe_refused", method="POST", reason="invalid or forged token")
            return _html(refused_page())
        log = get_logger(lead_id=ref.lead_id, step_order=ref.step_order, recipient_index=ref.recipient_index)
        db: Database = request.app.state.db
        try:
            # The inbox sync's own effect: a link and an unsubscribe mail follow one rule.
            applied = await unsubscribe_by_link(db, ref, datetime.now(UTC))
        except PyMongoError as exc:
            log.warning("web.unsubscribe_failed", error=type(exc).__name__)
            return _html(unavailable_page())
        log.info("web.unsubscribed", found=applied.found, changed=applied.changed, deferred=applied.deferred)
        return _html(
            unsubscribed_page(
                found=applied.found, changed=applied.changed, deferred=applied.deferred, email=applied.email
            )
        )

    return router
