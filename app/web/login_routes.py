"""`/login` (the form and its POST) and `/logout`: dashboard sign-in with a password, rate limited and audited.

Unknown email and wrong password get the same answer in the same time, so the form tells nobody who has an
account. Failures are counted per email and per client address in the database; over a limit, every attempt
is refused with 429 and Retry-After, even one with the right password, so guessing gains nothing by going on.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import urlsplit

from bson import ObjectId
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.store import audit, login_attempts, users
from app.store.client import Database
from app.web import passwords
from app.web.auth import Principal, Role, actor_of, client_address, record_audit
from app.web.login_limits import ADDRESS_LIMIT, EMAIL_LIMIT, LIMITS, retry_after
from app.web.sessions import (
    end_session,
    login_csrf_ok,
    prepare_login_nonce,
    session_principal,
    set_login_nonce_cookie,
    start_session,
)
from app.web.templating import render

HOME = "/dashboard"
WRONG = "Wrong email or password."


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: `raw` when it is a path on this site, else the dashboard.

    Refused: other sites (`https://evil.example`, `//evil.example`, `/\\evil.example`, which browsers read as
    `//`), schemes (`javascript:`), and anything with a control character or a backslash.
    """
    if not raw or not raw.startswith("/") or raw.startswith("//"):
        return HOME
    if "\\" in raw or any(ord(c) < 32 or ord(c) == 127 for c in raw):
        return HOME
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return HOME
    return raw


def _anonymous(email: str) -> audit.Actor:
    return audit.Actor(kind="anonymous", id=email, name=email)


def _page(
    request: Request, *, next_path: str, email: str = "", error: str | None = None, status: int = 200
) -> Response:
    prepare_login_nonce(request)
    response = render(request, "login.html", status, next_path=next_path, email=email, error=error)
    set_login_nonce_cookie(request, response)
    return response


async def _limited(db: Database, email: str, address: str | None, now: datetime, mine: list[ObjectId]) -> int | None:
    """Seconds to wait when the email or the address is over its failure limit (this attempt's own records,
    `mine`, left out of the count); None when neither is."""
    waits = []
    for limit in LIMITS:
        value = email if limit is EMAIL_LIMIT else address
        if value is None:
            continue
        key = limit.key(value)
        failures = await login_attempts.recent_failures(db, key, now, limit.window, limit.max_failures, mine)
        wait = retry_after(failures, limit, now)
        if wait is not None:
            waits.append(wait)
    return max(waits) if waits else None


async def _check_password(db: Database, email: str, password: str, now: datetime) -> users.User | None:
    """The user when the password is theirs (rehashing a hash with old parameters); None otherwise."""
    found = await users.password_hash_of(db, email)
    stored = found[1] if found else None
    # argon2 takes tens of milliseconds of CPU: off the event loop, so other requests go on meanwhile.
    if not await asyncio.to_thread(passwords.verify, stored, password) or found is None:
        return None
    user, stored_hash = found
    if passwords.needs_rehash(stored_hash):
        new_hash = await asyncio.to_thread(passwords.hash_password, password)
        await users.set_password_hash(db, user.id, new_hash, now, changed=False)
    return user


async def _login(request: Request, email: str, password: str, next_path: str) -> Response:
    db: Database = request.app.state.db
    now = datetime.now(UTC)
    address = client_address(request)
    # Recorded as a failure first, then counted: attempts arriving together see each other, so no more than the
    # limit reach the password check.
    keys = [EMAIL_LIMIT.key(email)] + ([ADDRESS_LIMIT.key(address)] if address else [])
    mine = await login_attempts.reserve(db, keys, now, EMAIL_LIMIT.window)
    wait = await _limited(db, email, address, now, mine)
    if wait is not None:
        await login_attempts.take_back(db, mine)  # a refusal is no guess: it does not lengthen the wait
        await record_audit(
            request,
            _anonymous(email),
            "login",
            {"email": email},
            outcome="refused",
            details={"reason": "too many failed attempts", "retry_after": wait},
        )
        minutes = max(1, round(wait / 60))
        error = f"Too many failed sign-ins. Try again in about {minutes} minute{'s' if minutes != 1 else ''}."
        response = _page(request, next_path=next_path, email=email, error=error, status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    user = await _check_password(db, email, password, now)
    if user is None:  # its records stay: they are the failure
        await record_audit(request, _anonymous(email), "login", {"email": email}, outcome="failed")
        return _page(request, next_path=next_path, email=email, error=WRONG, status=401)
    await login_attempts.take_back(db, mine)
    await login_attempts.clear(db, EMAIL_LIMIT.key(email))
    response = RedirectResponse(safe_next(next_path), status_code=303)
    await start_session(request, response, user.id, now)
    principal = Principal(kind="user", id=user.id, name=user.email, role=Role.parse(user.role))
    await record_audit(request, actor_of(principal), "login", {"email": user.email})
    return response


def login_router() -> APIRouter:
    """`GET /login`, `POST /login`, `POST /logout`."""
    router = APIRouter(include_in_schema=False)

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str | None = None) -> Response:
        """The sign-in form; a signed-in browser goes straight on to `next`."""
        if await session_principal(request, check_csrf=False) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return _page(request, next_path=safe_next(next))

    @router.post("/login", response_class=HTMLResponse)
    async def login(
        request: Request,
        email: str = Form(""),
        password: str = Form(""),
        csrf_token: str = Form(""),
        next: str = Form(HOME),
    ) -> Response:
        """Check the password; on success a session cookie and a 303 to `next` (a local path only)."""
        address = users.normalize_email(email)
        if not login_csrf_ok(request, csrf_token):
            await record_audit(
                request,
                _anonymous(address),
                "login",
                {"email": address},
                outcome="refused",
                details={"reason": "missing or wrong CSRF token"},
            )
            error = "The form had expired. Please sign in again."
            return _page(request, next_path=safe_next(next), email=address, error=error, status=403)
        if not address or not password:
            return _page(request, next_path=safe_next(next), email=address, error=WRONG, status=401)
        return await _login(request, address, password, safe_next(next))

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        """End the session (in the database, not only in the browser) and go to the sign-in form."""
        principal = await session_principal(request, check_csrf=True)
        response = RedirectResponse("/login", status_code=303)
        if principal is not None:
            await end_session(request, response)
            await record_audit(request, actor_of(principal), "logout", {"email": principal.name})
        else:
            response.delete_cookie("outbound_session", path="/")
        return response

    return router
