"""Dashboard sessions: the signed cookie, the session behind it, and the CSRF tokens of its forms.

The cookie holds a random session id and its HMAC, so a forged or altered cookie is refused before the
database is asked. The CSRF token of a session is an HMAC of its id: nothing more to store, the same in
every form of that session, and worthless in any other session. The login form, which has no session yet,
is protected by double submit: a random nonce in a cookie, and its HMAC in the form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException, Request, Response

from app.store import sessions as session_store
from app.store import users
from app.store.client import Database
from app.web.auth import Principal, Role

SESSION_COOKIE = "outbound_session"
LOGIN_CSRF_COOKIE = "outbound_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOGIN_CSRF_MINUTES = 60  # how long a login page may stay open before its form goes stale
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def purpose_key(secret_key: str, purpose: str) -> bytes:
    """A key for one purpose derived from OUTBOUND_SECRET_KEY, so a cookie signature can never pass for an
    unsubscribe link's or a CSRF token (each is an HMAC under its own key)."""
    return hmac.new(secret_key.encode(), f"outbound {purpose}".encode(), hashlib.sha256).digest()


def _mac(key: bytes, value: str) -> str:
    digest = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(value: str, key: bytes) -> str:
    """`value.signature`: what the cookie holds."""
    return f"{value}.{_mac(key, value)}"


def unsign(signed: str, key: bytes) -> str | None:
    """The value of a `sign`ed string; None when the signature does not match (compared in constant time)."""
    value, dot, signature = signed.rpartition(".")
    if not dot or not value:
        return None
    return value if hmac.compare_digest(signature, _mac(key, value)) else None


def csrf_for(session_id: str, key: bytes) -> str:
    """The CSRF token of a session (or of a login nonce)."""
    return _mac(key, f"csrf:{session_id}")


def csrf_matches(given: str | None, expected: str) -> bool:
    """True when the submitted token is the expected one; constant time."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _keys(request: Request) -> tuple[bytes, bytes]:
    secret = request.app.state.settings.secret_key
    return purpose_key(secret, "session cookie"), purpose_key(secret, "csrf")


async def submitted_csrf(request: Request) -> str | None:
    """The CSRF token a request carries: the X-CSRF-Token header, else the form field `csrf_token`."""
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    if request.headers.get("content-type", "").startswith(_FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)  # Starlette keeps the parsed form for the route
        return value if isinstance(value, str) else None
    return None


async def session_principal(request: Request, *, check_csrf: bool) -> Principal | None:
    """The user whose live session the cookie names; None without a valid one. With `check_csrf`, a 403
    unless the request carries the session's CSRF token."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    cookie_key, csrf_key = _keys(request)
    session_id = unsign(raw, cookie_key)
    if session_id is None:
        return None
    db: Database = request.app.state.db
    session = await session_store.find_active(db, session_id, datetime.now(UTC))
    user = await users.find_by_id(db, session.user_id) if session else None
    if user is None:
        return None
    request.state.session_id = session_id
    if check_csrf and not csrf_matches(await submitted_csrf(request), csrf_for(session_id, csrf_key)):
        raise HTTPException(
            status_code=403,
            detail="the CSRF token is missing or wrong: reload the page and try again "
            f"(scripts send the page's csrf-token in {CSRF_HEADER.title()})",
        )
    return Principal(kind="user", id=user.id, name=user.email, role=Role.parse(user.role))


def csrf_token(request: Request) -> str:
    """The token to put in this page's forms: the session's, or on the login page the login form's."""
    _, csrf_key = _keys(request)
    session_id = getattr(request.state, "session_id", None)
    if session_id:
        return csrf_for(session_id, csrf_key)
    nonce = login_nonce(request)
    return csrf_for(f"login:{nonce}", csrf_key) if nonce else ""


def login_nonce(request: Request) -> str | None:
    """The login form's nonce: the one this response is setting, else the signed one of the cookie."""
    fresh = getattr(request.state, "login_nonce", None)
    if fresh:
        return str(fresh)
    raw = request.cookies.get(LOGIN_CSRF_COOKIE)
    return unsign(raw, _keys(request)[0]) if raw else None


def prepare_login_nonce(request: Request) -> None:
    """Give this login page a nonce (keeping the cookie's when it has a valid one), so `csrf_token` can sign it."""
    if login_nonce(request) is None:
        request.state.login_nonce = secrets.token_urlsafe(24)


def set_login_nonce_cookie(request: Request, response: Response) -> None:
    """Send the login page's nonce (see `prepare_login_nonce`) in its cookie, for the form's double submit."""
    nonce = login_nonce(request)
    if nonce:
        _set_cookie(request, response, LOGIN_CSRF_COOKIE, sign(nonce, _keys(request)[0]), LOGIN_CSRF_MINUTES * 60)


def login_csrf_ok(request: Request, given: str | None) -> bool:
    """True when the login form carries the token of the nonce in its cookie."""
    nonce = login_nonce(request)
    return nonce is not None and csrf_matches(given, csrf_for(f"login:{nonce}", _keys(request)[1]))


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    # Secure whenever the browser came over https (uvicorn takes the scheme from the proxy's X-Forwarded-Proto).
    secure = request.url.scheme == "https"
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax", secure=secure)


async def start_session(request: Request, response: Response, user_id: str, now: datetime) -> str:
    """Create a session for the user, set its cookie on `response`; the session id."""
    hours: float = request.app.state.settings.session_hours
    session_id = secrets.token_urlsafe(32)
    await session_store.create(request.app.state.db, session_id, user_id, now, now + timedelta(hours=hours))
    _set_cookie(request, response, SESSION_COOKIE, sign(session_id, _keys(request)[0]), int(hours * 3600))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    request.state.session_id = session_id
    return session_id


async def end_session(request: Request, response: Response) -> bool:
    """Delete the request's session from the database and its cookie from the browser; True when one ended."""
    session_id = getattr(request.state, "session_id", None)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    if not session_id:
        return False
    return await session_store.delete(request.app.state.db, session_id)
