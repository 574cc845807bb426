"""Reading seed 001's documents field by field, and the error a malformed one raises.

`X.from_doc(doc)` (in campaigns.py and accounts.py) reads through a DocumentReader: it either returns a view
or raises InvalidDocument naming the collection, the `_id`, the field and why, so a command can report a
malformed document and skip it instead of crashing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


class InvalidDocument(ValueError):
    """A stored document does not fit the data contract."""

    def __init__(self, collection: str, doc_id: object, field_name: str, reason: str) -> None:
        super().__init__(f"{collection} {doc_id}: field '{field_name}' {reason}")
        self.collection = collection
        self.doc_id = doc_id
        self.field = field_name
        self.reason = reason


class DocumentReader:
    """Field accessors that raise InvalidDocument with the document's context.

    `get` follows a dotted path (None when a part is absent); `string`, `number`, `integer`, `boolean`, `when`,
    `choice` and `mapping` return the field as that type, or the default when it is absent, and raise
    `fail(name, reason)` when it is malformed.
    """

    def __init__(self, collection: str, doc: Mapping[str, Any]) -> None:
        if not isinstance(doc, Mapping):
            raise InvalidDocument(collection, None, "_id", "document is not an object")
        self.collection = collection
        self.doc = doc
        self.id = doc.get("_id")

    def fail(self, name: str, reason: str) -> InvalidDocument:
        return InvalidDocument(self.collection, self.id, name, reason)

    def get(self, name: str) -> Any:
        value: Any = self.doc
        for part in name.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    def string(self, name: str, required: bool = True, value: Any = None) -> str | None:
        value = self.get(name) if value is None else value
        if value is None or value == "":
            if required:
                raise self.fail(name, "is required")
            return None
        if not isinstance(value, str):
            if hasattr(value, "binary"):  # ObjectId used where seed 001 stores a string id
                return str(value)
            raise self.fail(name, f"must be a string, got {type(value).__name__}")
        return value

    def req_string(self, name: str) -> str:
        value = self.string(name)
        assert value is not None
        return value

    def number(self, name: str, *, default: float | None = None, minimum: float = 0.0) -> float | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(name, f"must be a number, got {value!r}")
        if value < minimum:
            raise self.fail(name, f"must be >= {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, name: str, *, default: int | None = None, minimum: int = 0) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be a whole number, got {value!r}")
        if value < minimum:
            raise self.fail(name, f"must be >= {minimum}, got {value!r}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, got {value!r}")
        return value

    def when(self, name: str) -> datetime | None:
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise self.fail(name, f"must be a date, got {value!r}")
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.get(name)
        if value is None and default is not None:
            return default
        if value not in choices:
            raise self.fail(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def mapping(self, name: str) -> Mapping[str, Any]:
        value = self.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(name, f"must be an object, got {type(value).__name__}")
        return value


def id_str(value: object) -> str:
    """Ids are stored as ObjectId or string; Outbound compares them as strings."""
    return str(value)
