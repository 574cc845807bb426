"""Who may do what: roles, the principal behind a request, the `require` dependencies and the audit log.

A request is authenticated by an API token (`Authorization: Bearer obt_...`) or by the dashboard's session
cookie. A cookie rides along on any request the browser makes, cross-site ones included, so a request it
authenticates that changes something must also carry the session's CSRF token; a Bearer token is never sent
by a browser on its own and needs none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import quote

from fastapi import HTTPException, Request

from app.logging import get_logger
from app.store import api_tokens
from app.store import audit as audit_log
from app.store.client import Database

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BEARER = "bearer"


class Role(StrEnum):
    """What a principal may do; each role may do everything the ones before it may."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Its place in the order viewer < operator < admin."""
        return _RANKS[self]

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role named `text` (any case); ValueError naming the choices otherwise."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(role.value for role in cls)
            raise ValueError(f"unknown role {text!r}: choose one of {choices}") from None


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def _article(role: Role) -> str:
    return "an" if role.value[0] in "aeiou" else "a"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an API token or a dashboard user, with its role."""

    kind: Literal["token", "user"]
    id: str
    name: str
    role: Role

    def may(self, role: Role) -> bool:
        """True when this principal's role is `role` or above it."""
        return self.role.rank >= role.rank

    def describe(self) -> str:
        """How refusals name it: `token ci-deploy`, `user ann@example.com`."""
        return f"{self.kind} {self.name}"


def _unauthenticated(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header; None without one; 401 for another scheme."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != BEARER or not token.strip():
        raise _unauthenticated("the Authorization header must be `Bearer <token>` (make one: outbound token create)")
    return token.strip()


async def _token_principal(request: Request, token: str) -> Principal:
    db: Database = request.app.state.db
    found = await api_tokens.find_active(db, token)
    if found is None:
        get_logger().info("auth.token_refused", path=request.url.path)
        raise _unauthenticated("the API token is unknown or revoked")
    now = datetime.now(UTC)
    # The write is skipped while the recorded use is recent: most requests cost one read, not a write too.
    if found.last_used_at is None or now - found.last_used_at >= api_tokens.TOUCH_EVERY:
        await api_tokens.touch(db, found.id, now)
    return Principal(kind="token", id=found.id, name=found.name, role=Role.parse(found.role))


async def authenticate(request: Request) -> Principal | None:
    """The principal of a request: its Bearer token, else its session cookie (CSRF-checked on unsafe methods);
    None when it carries neither. A bad token, an expired session or a bad CSRF token is an HTTPException."""
    token = _bearer_token(request)
    if token is not None:
        return await _token_principal(request, token)
    # Imported here: the session machinery needs this module's Role and Principal.
    from app.web.sessions import session_principal

    return await session_principal(request, check_csrf=request.method in UNSAFE_METHODS)


async def _authorize(request: Request, principal: Principal, role: Role) -> Principal:
    if principal.may(role):
        request.state.principal = principal
        return principal
    detail = (
        f"{request.method} {request.url.path} needs the {role.value} role; "
        f"{principal.describe()} is {_article(principal.role)} {principal.role.value}"
    )
    if request.method in UNSAFE_METHODS:
        # The route never runs, so it cannot audit its own refusal.
        await audit(request, principal, "request.refused", {"path": request.url.path}, outcome="refused")
    raise HTTPException(status_code=403, detail=detail)


def require(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency admitting principals of `role` or above: 401 without credentials, 403 below it."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if principal is None:
            raise _unauthenticated(
                "sign in: send `Authorization: Bearer <token>` (outbound token create) or sign in at /login"
            )
        return await _authorize(request, principal, role)

    return dependency


def login_redirect(request: Request) -> HTTPException:
    """A 303 to the login page that comes back to this page (path and query) once signed in."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(status_code=303, detail="sign in first", headers={"Location": f"/login?next={quote(target)}"})


def require_page(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    """`require` for dashboard pages: without credentials (or with an expired session), a 303 to /login."""

    async def dependency(request: Request) -> Principal:
        try:
            principal = await authenticate(request)
        except HTTPException as exc:
            if exc.status_code != 401:
                raise
            principal = None
        if principal is None:
            raise login_redirect(request)
        return await _authorize(request, principal, role)

    return dependency


def client_address(request: Request) -> str | None:
    """The client's address (the proxy's X-Forwarded-For when uvicorn trusts it)."""
    return request.client.host if request.client else None


def actor_of(principal: Principal) -> audit_log.Actor:
    """The audit log's actor for a principal."""
    return audit_log.Actor(kind=principal.kind, id=principal.id, name=principal.name, role=principal.role.value)


async def audit(
    request: Request,
    principal: Principal,
    action: str,
    target: dict[str, str],
    *,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> None:
    """Write one audit document: `principal` did `action` on `target` with `outcome`, now, from this client."""
    await record_audit(request, actor_of(principal), action, target, outcome=outcome, details=details)


async def record_audit(
    request: Request,
    actor: audit_log.Actor,
    action: str,
    target: dict[str, str],
    *,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> None:
    """`audit` for any actor, including one that is not signed in (a failed login)."""
    entry = audit_log.Entry(
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        at=datetime.now(UTC),
        client_address=client_address(request),
        user_agent=request.headers.get("user-agent"),
        details=details,
    )
    await audit_log.record(request.app.state.db, entry)
    # Kinds only: names and targets may be people's addresses, which stay in the audit collection, not in logs.
    get_logger().info("audit.recorded", action=action, actor_kind=actor.kind, outcome=outcome)


def csrf_token(request: Request) -> str:
    """The CSRF token for this page's forms (`<input name="csrf_token">`) and its `<meta name="csrf-token">`."""
    from app.web.sessions import csrf_token as session_csrf_token

    return session_csrf_token(request)
