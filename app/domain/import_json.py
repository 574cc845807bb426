"""Lead import from JSON: one object per line (JSON Lines) or an array of objects decoded item by item.

An array is read in chunks, so even a file written on one line never has to fit in memory. Nested objects are
flattened: `{"address": {"city": "Lyon"}}` is the column `address.city`, stored as the field `address_city`
(a template writes `{{ address_city }}`). A list of text, numbers and booleans is kept as a list
(`{{ tags | join(", ") }}`); a list of objects is rejected, since one row is one person.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from app.domain.import_headers import ColumnMapping, map_columns
from app.domain.import_rows import UNDECODABLE, RawRow, Rejection

MAX_JSON_ITEM_CHARS = 1_000_000
MAX_JSON_DEPTH = 8


def json_lines_rows(lines: Iterable[str], mapper: KeyMapper | None = None) -> Iterator[RawRow | Rejection]:
    """One row per non-blank line, numbered by its line."""
    mapper = mapper or KeyMapper()
    for number, line in enumerate(lines, start=1):
        text = line.strip().lstrip("\ufeff")
        if not text:
            continue
        if UNDECODABLE.search(text):
            yield Rejection(number, "is not valid text in the file's encoding")
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Rejection(number, f"is not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        except RecursionError:
            yield Rejection(number, f"is nested too deeply (more than {MAX_JSON_DEPTH} levels are not imported)")
            continue
        yield json_row(number, item, mapper)


def json_row(number: int, item: Any, mapper: KeyMapper | None = None) -> RawRow | Rejection:
    """One JSON item as a row: an object whose nested objects are flattened (`address.city`) and whose lists of
    text, numbers and booleans are kept as lists; keys are mapped like a header (`import_headers`)."""
    if not isinstance(item, dict):
        return Rejection(number, f"is a JSON {type(item).__name__}, expected an object")
    pairs: list[tuple[str, Any]] = []
    problem = _flatten(item, "", pairs, 1)
    if problem:
        return Rejection(number, problem)
    mappings = (mapper or KeyMapper()).map_keys(tuple(path for path, _ in pairs))
    fields: dict[str, Any] = {}
    originals: dict[str, str] = {}
    for (path, value), mapping in zip(pairs, mappings, strict=True):
        if isinstance(value, str):
            if UNDECODABLE.search(value) or UNDECODABLE.search(path):
                return Rejection(number, "is not valid text in the file's encoding")
            value = value.strip()
        if not mapping.field or value is None or value == "" or value == []:
            continue
        if mapping.field in fields:
            return Rejection(
                number, f"fields {originals[mapping.field]!r} and {path!r} are the same column {mapping.field!r}"
            )
        fields[mapping.field], originals[mapping.field] = value, path
    return RawRow(number, fields)


def _flatten(item: Mapping[str, Any], prefix: str, out: list[tuple[str, Any]], depth: int) -> str | None:
    """Append `item`'s leaves to `out` as (dotted path, value); return why the item cannot be imported, if so."""
    for key, value in item.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            if depth >= MAX_JSON_DEPTH:
                return f"field {path!r} is nested more than {MAX_JSON_DEPTH} levels deep"
            problem = _flatten(value, f"{path}.", out, depth + 1)
            if problem:
                return problem
        elif isinstance(value, list):
            if any(isinstance(v, dict | list) for v in value):
                return (
                    f"field {path!r} is a list of objects or lists; "
                    "only lists of text, numbers and true/false are imported"
                )
            out.append((path, [v.strip() if isinstance(v, str) else v for v in value if _present(v)]))
        else:
            out.append((path, value))
    return None


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


class KeyMapper:
    """Maps JSON keys to fields as a header would be, remembering each key set's answer and every key seen."""

    CACHED_KEY_SETS = 1024
    REMEMBERED_KEYS = 200

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.cache: dict[tuple[str, ...], list[ColumnMapping]] = {}
        self.seen: dict[str, ColumnMapping] = {}

    def map_keys(self, keys: tuple[str, ...]) -> list[ColumnMapping]:
        """The mapping of one object's keys (the same rules as a header's, `--map` included)."""
        found = self.cache.get(keys)
        if found is None:
            if len(self.cache) >= self.CACHED_KEY_SETS:
                self.cache.clear()
            found = self.cache[keys] = map_columns(keys, self.overrides, strict=False)
            for mapping in found:
                if mapping.source not in self.seen and len(self.seen) < self.REMEMBERED_KEYS:
                    self.seen[mapping.source] = mapping
        return found


def json_array_rows(chunks: Iterable[str], mapper: KeyMapper | None = None) -> Iterator[RawRow | Rejection]:
    """Items of a top-level JSON array, decoded one at a time so the file is never held in memory."""
    mapper = mapper or KeyMapper()
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
        yield json_row(number, item, mapper)
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
            except RecursionError:
                raise ValueError(f"an item nested too deeply at character {self.pos}") from None
            except json.JSONDecodeError as exc:
                if len(self.buf) - self.pos > MAX_JSON_ITEM_CHARS or not self._fill():
                    raise ValueError(f"{exc.msg} in item starting at character {self.pos}") from None
                continue
            # A number cut at a chunk boundary decodes early: only trust a value followed by more text.
            if end < len(self.buf) or not self._fill():
                self.pos = end
                return item
