"""Small store helpers shared by the domain and the CLI: id lookups and validated reads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.asynchronous.collection import AsyncCollection

from app.domain.models import InvalidDocument
from app.logging import get_logger

T = TypeVar("T")
Collection = AsyncCollection[dict[str, Any]]


class NotFound(LookupError):
    """No document with that id; the message names the collection and the id."""

    def __init__(self, what: str, doc_id: object) -> None:
        super().__init__(f"{what} {doc_id!s} not found")
        self.what = what
        self.doc_id = doc_id


def id_values(raw: object) -> list[Any]:
    """The stored forms an id may take: seed 001 mixes ObjectIds and their string form."""
    values: list[Any] = [raw]
    if isinstance(raw, str):
        with contextlib.suppress(InvalidId, TypeError):
            values.insert(0, ObjectId(raw))
    elif isinstance(raw, ObjectId):
        values.append(str(raw))
    return values


def id_filter(raw: object, field: str = "_id") -> dict[str, Any]:
    """A filter matching `field` equal to `raw` as an ObjectId or as a string."""
    values = id_values(raw)
    return {field: values[0]} if len(values) == 1 else {field: {"$in": values}}


async def get_doc(coll: Collection, what: str, raw_id: object) -> dict[str, Any]:
    """Fetch one document by id or raise NotFound."""
    doc = await coll.find_one(id_filter(raw_id))
    if doc is None:
        raise NotFound(what, raw_id)
    return doc


async def get_model(coll: Collection, what: str, raw_id: object, model: Callable[[Mapping[str, Any]], T]) -> T:
    """Fetch and validate one document; raise NotFound or InvalidDocument."""
    return model(await get_doc(coll, what, raw_id))


async def iter_valid(
    coll: Collection,
    flt: Mapping[str, Any],
    model: Callable[[Mapping[str, Any]], T],
    *,
    sort: list[tuple[str, int]] | None = None,
    limit: int = 0,
    on_invalid: Callable[[InvalidDocument], None] | None = None,
) -> AsyncIterator[T]:
    """Yield validated views; a malformed document is reported (logged, or passed to `on_invalid`) and skipped."""
    cursor = coll.find(dict(flt), sort=sort, limit=limit)
    async for doc in cursor:
        try:
            yield model(doc)
        except InvalidDocument as exc:
            if on_invalid is not None:
                on_invalid(exc)
            else:
                get_logger().warning(
                    "store.invalid_document",
                    collection=exc.collection,
                    doc_id=str(exc.doc_id),
                    field=exc.field,
                    reason=exc.reason,
                )
