"""The API's opaque cursors and in-memory pages: positions survive the round trip, anything else is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from bson import ObjectId
from fastapi import HTTPException

from app.web.api.pagination import BadCursor, cursor_values, decode_cursor, encode_cursor, page_in_memory


@pytest.mark.parametrize(
    "values",
    [
        ["665f1c2e9b1e8a3d4c5b6a70"],
        [datetime(2025, 1, 31, 9, 30, 0, 123000, tzinfo=UTC), ObjectId("665f1c2e9b1e8a3d4c5b6a70")],
        [datetime(2025, 3, 30, 1, 0, tzinfo=timezone(timedelta(hours=2))), "lead:1:0"],
        ["ünïcode@exämple.com", 7, None],
    ],
)
def test_a_position_comes_back_as_it_was(values: list[object]) -> None:
    cursor = encode_cursor(values)
    assert decode_cursor(cursor, len(values)) == values
    assert all(c.isalnum() or c in "-_" for c in cursor), "a cursor goes into a URL unescaped"


def test_an_object_id_and_its_string_form_stay_apart() -> None:
    oid = ObjectId()
    (back,) = decode_cursor(encode_cursor([oid]), 1)
    assert isinstance(back, ObjectId)
    (text,) = decode_cursor(encode_cursor([str(oid)]), 1)
    assert text == str(oid) and isinstance(text, str)


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "%%%",
        encode_cursor(["a", "b"]),  # another list's arity
        "eyJhIjogMX0",  # {"a": 1}: not a list
        "W3sieCI6ICJ5In1d",  # [{"x": "y"}]: an unknown tag
        "W3RydWVd",  # [true]
        "W3siZCI6ICJ5ZXN0ZXJkYXkifV0",  # [{"d": "yesterday"}]
    ],
)
def test_anything_else_is_a_bad_cursor(cursor: str) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(cursor, 1)


def test_a_bad_cursor_in_a_request_is_422_naming_the_field() -> None:
    with pytest.raises(HTTPException) as refused:
        cursor_values("garbage", 1)
    assert refused.value.status_code == 422 and str(refused.value.detail).startswith("cursor:")
    assert cursor_values(None, 1) is None


def test_in_memory_pages_list_each_item_once_in_key_order() -> None:
    items = [f"id{n:02d}" for n in (5, 1, 9, 3, 7, 2)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page, cursor = page_in_memory(items, str, cursor, 4)
        seen.extend(page)
        if cursor is None:
            break
    assert seen == sorted(items)


def test_items_added_or_removed_between_pages_shift_nothing() -> None:
    first, cursor = page_in_memory(["b", "d", "f", "h"], str, None, 2)
    assert first == ["b", "d"]
    # "a" arrives before the cursor (it belongs to a page already read), "d" goes, "e" arrives after it.
    rest, end = page_in_memory(["a", "b", "e", "f", "h"], str, cursor, 5)
    assert rest == ["e", "f", "h"] and end is None
