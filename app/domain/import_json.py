"""Lead import from JSON: one object per line (JSON Lines) or an array of objects decoded item by item.

An array is read in chunks, so even a file written on one line never has to fit in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from app.domain.import_columns import normalize_column
from app.domain.import_rows import UNDECODABLE, RawRow, Rejection

MAX_JSON_ITEM_CHARS = 1_000_000


def json_lines_rows(lines: Iterable[str]) -> Iterator[RawRow | Rejection]:
    """One row per non-blank line, numbered by its line."""
    for number, line in enumerate(lines, start=1):
        text = line.strip().lstrip("\ufeff")
        if not text:
            continue
        if UNDECODABLE.search(text):
            yield Rejection(number, "is not valid UTF-8 text")
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Rejection(number, f"is not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        yield json_row(number, item)


def json_row(number: int, item: Any) -> RawRow | Rejection:
    """One JSON item as a row: an object of text, numbers and booleans; anything else is rejected."""
    if not isinstance(item, dict):
        return Rejection(number, f"is a JSON {type(item).__name__}, expected an object")
    fields: dict[str, Any] = {}
    originals: dict[str, str] = {}
    for key, value in item.items():
        column = normalize_column(str(key))
        if isinstance(value, dict | list):
            return Rejection(number, f"field {key!r} is nested; only text, numbers and true/false are imported")
        if isinstance(value, str):
            if UNDECODABLE.search(value) or UNDECODABLE.search(str(key)):
                return Rejection(number, "is not valid UTF-8 text")
            value = value.strip()
        if not column or value is None or value == "":
            continue
        if column in fields:
            return Rejection(number, f"fields {originals[column]!r} and {key!r} are the same column {column!r}")
        fields[column], originals[column] = value, str(key)
    return RawRow(number, fields)


def json_array_rows(chunks: Iterable[str]) -> Iterator[RawRow | Rejection]:
    """Items of a top-level JSON array, decoded one at a time so the file is never held in memory."""
    decoder = json.JSONDecoder()
    reader = _ChunkBuffer(iter(chunks))
    if reader.next_char() != "[":
        yield Rejection(1, "a JSON file must hold an array of objects (or one object per line)")
        return
    reader.pos += 1
    number = 0
    while True:
        ch = reader.next_char()
        if ch == "]" and number == 0:
            break
        number += 1
        try:
            item = reader.decode(decoder)
        except ValueError as exc:
            yield Rejection(number, f"invalid JSON, the rest of the array cannot be read: {exc}")
            return
        yield json_row(number, item)
        ch = reader.next_char()
        reader.pos += 1
        if ch == "]":
            break
        if ch != ",":
            yield Rejection(number + 1, f"invalid JSON after item {number}: expected ',' or ']', found {ch!r}")
            return


class _ChunkBuffer:
    """A sliding window over text chunks for incremental JSON decoding."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self.chunks = chunks
        self.buf = ""
        self.pos = 0
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = next(self.chunks, None)
        if chunk is None:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def next_char(self) -> str:
        """Skip whitespace and return the next character ('' at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n\ufeff":
                self.pos += 1
            if self.pos < len(self.buf) or not self._fill():
                return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def decode(self, decoder: json.JSONDecoder) -> Any:
        """Decode the value at the cursor, reading more text until it is complete and delimited."""
        while True:
            try:
                item, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos > MAX_JSON_ITEM_CHARS or not self._fill():
                    raise ValueError(f"{exc.msg} in item starting at character {self.pos}") from None
                continue
            # A number cut at a chunk boundary decodes early: only trust a value followed by more text.
            if end < len(self.buf) or not self._fill():
                self.pos = end
                return item
