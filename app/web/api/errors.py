"""How the API answers a refused operation: OpError kinds as HTTP statuses, and every action audited.

`not_found` is 404, `conflict` 409, `invalid` 422; the detail is the operation's own message (it names the id
or the field). An action is audited whatever its outcome: ok, refused (the operation said no) or failed (the
database did not answer), so the audit log shows what was tried as well as what was done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from pymongo.errors import PyMongoError

from app.domain.models import InvalidDocument
from app.logging import get_logger
from app.ops.errors import OpError
from app.store.documents import NotFound
from app.web.auth import Principal, audit

T = TypeVar("T")

STATUS_OF = {"not_found": 404, "conflict": 409, "invalid": 422}


def http_error(exc: OpError) -> HTTPException:
    """The HTTP answer to a refused operation."""
    return HTTPException(status_code=STATUS_OF[exc.kind], detail=exc.message)


def log_invalid(exc: InvalidDocument) -> None:
    """A malformed document met while listing: logged and left out, so one bad document never hides the rest."""
    get_logger().warning("store.invalid_document", collection=exc.collection, doc_id=str(exc.doc_id), reason=str(exc))


async def read(work: Awaitable[T]) -> T:
    """Await a read view: an unknown id is 404 naming it; a malformed stored document a 500 that says which."""
    try:
        return await work
    except NotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except OpError as exc:
        raise http_error(exc) from None
    except InvalidDocument as exc:
        raise HTTPException(status_code=500, detail=f"malformed document: {exc}") from None


async def audited(
    request: Request,
    principal: Principal,
    action: str,
    target: dict[str, str],
    work: Callable[[], Awaitable[T]],
    details: Callable[[T], Mapping[str, Any]] | None = None,
) -> T:
    """Run an operation and audit it: ok with `details(result)`, refused with the error, or failed."""
    try:
        result = await work()
    except OpError as exc:
        await audit(request, principal, action, target, outcome="refused", details={"error": exc.message})
        raise http_error(exc) from None
    except PyMongoError as exc:
        await _audit_failure(request, principal, action, target, exc)
        raise HTTPException(status_code=503, detail=f"the database did not answer: {exc}; try again") from None
    extra = dict(details(result)) if details is not None else None
    await audit(request, principal, action, target, details=extra)
    return result


async def _audit_failure(
    request: Request, principal: Principal, action: str, target: dict[str, str], exc: Exception
) -> None:
    # The database that failed the action may fail the audit write too; the refusal still reaches the client.
    try:
        await audit(request, principal, action, target, outcome="failed", details={"error": type(exc).__name__})
    except PyMongoError:
        get_logger().error("audit.write_failed", action=action, target=target)
