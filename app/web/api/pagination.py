"""Opaque page cursors: `?cursor=...&limit=...` (default 50, at most 200), `next_cursor` in every page.

A cursor is the position where a page ended (the sort key of its last item: ids, times), as URL-safe base64 of
a small JSON list, so a client passes it back unchanged and never builds one. A cursor that does not decode to
the shape a route expects is bad input: 422 naming the field `cursor`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from bson import ObjectId
from fastapi import HTTPException, Query

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_CHARS = 1000

T = TypeVar("T")
Value = str | int | datetime | ObjectId | None

LIMIT_QUERY = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}.")
CURSOR_QUERY = Query(None, max_length=MAX_CURSOR_CHARS, description="The `next_cursor` of the page before.")


class BadCursor(ValueError):
    """A cursor this API did not hand out (or one for another list)."""


def _tagged(value: Value) -> Any:
    # Times and ObjectIds are tagged so they come back as what they were, not as look-alike strings.
    if isinstance(value, datetime):
        return {"d": value.isoformat()}
    if isinstance(value, ObjectId):
        return {"o": str(value)}
    return value


def _untagged(value: Any) -> Value:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        if tag == "d" and isinstance(text, str):
            return datetime.fromisoformat(text)
        if tag == "o" and isinstance(text, str) and ObjectId.is_valid(text):
            return ObjectId(text)
        raise BadCursor(f"unknown value {value!r}")
    if value is None or (isinstance(value, str | int) and not isinstance(value, bool)):
        return value
    raise BadCursor(f"unexpected value {value!r}")


def encode_cursor(values: Sequence[Value]) -> str:
    """The cursor of a position (the sort key of a page's last item)."""
    text = json.dumps([_tagged(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Value]:
    """The position `encode_cursor` made, with `arity` values; BadCursor otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw.decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCursor("not a cursor of this API") from None
    if not isinstance(values, list) or len(values) != arity:
        raise BadCursor("not a cursor of this list")
    try:
        return [_untagged(v) for v in values]
    except ValueError as exc:
        raise BadCursor(str(exc)) from None


def bad_cursor(exc: BadCursor) -> HTTPException:
    """The 422 answer for a bad cursor, naming the field."""
    return HTTPException(
        status_code=422, detail=f"cursor: {exc}; pass back the next_cursor of the page before, unchanged"
    )


def cursor_values(cursor: str | None, arity: int) -> list[Value] | None:
    """The position a request's `cursor` names (None on a first page); HTTP 422 naming `cursor` if it is bad."""
    if cursor is None:
        return None
    try:
        return decode_cursor(cursor, arity)
    except BadCursor as exc:
        raise bad_cursor(exc) from None


def page_in_memory(
    items: Sequence[T], key: Callable[[T], str], cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """A page of a short list (campaigns, accounts) in ascending `key` order, after the cursor's key: a stable
    order, so items added or removed between pages never shift one onto two pages or off every page."""
    after = cursor_values(cursor, 1)
    start = after[0] if after is not None else None
    if start is not None and not isinstance(start, str):
        raise bad_cursor(BadCursor("not a cursor of this list"))
    ordered = sorted(items, key=key)
    rest = [item for item in ordered if start is None or key(item) > start]
    page = rest[:limit]
    return page, encode_cursor([key(page[-1])]) if len(rest) > limit else None
