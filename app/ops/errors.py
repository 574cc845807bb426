"""`OpError`: why a shared operation refused, as a kind the API maps to a status and a message for people."""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal["not_found", "conflict", "invalid"]


class OpError(Exception):
    """An operation refused: `not_found` (no such id), `conflict` (the state forbids it now), `invalid` (bad input).

    The message names the id or the field and says what to do; nothing was changed.
    """

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message


def not_found(what: str, doc_id: object) -> OpError:
    """The error for an unknown id, worded as the store's NotFound (`campaign <id> not found`)."""
    return OpError("not_found", f"{what} {doc_id!s} not found")
