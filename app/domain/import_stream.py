"""Opening a lead file: detect its format, read a CSV header at once, and yield its rows lazily.

The parsers read an already open text source (a file opened with encoding "utf-8-sig",
errors="surrogateescape" and newline="", or io.StringIO) and yield one row at a time, so a file of any size
is read with memory bounded by one batch. Undecodable bytes arrive as lone surrogates and reject their row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Protocol

from app.domain.import_csv import open_csv
from app.domain.import_json import json_array_rows, json_lines_rows
from app.domain.import_rows import ImportFileError, RawRow, Rejection

FORMATS = ("auto", "csv", "json")
READ_CHUNK_CHARS = 65_536

_LINE = re.compile(r".*?(?:\r\n|\r|\n)|.+\Z", re.DOTALL)


@dataclass
class RowStream:
    """An opened import: the detected format, the CSV header (None for JSON) and the lazy rows."""

    format: str
    columns: tuple[str, ...] | None
    rows: Iterator[RawRow | Rejection]


class TextSource(Protocol):
    """What the parsers read from: an open text file (or io.StringIO in tests)."""

    def read(self, size: int = -1, /) -> str: ...

    def readline(self, size: int = -1, /) -> str: ...


def detect_format(requested: str, filename: str, first_text: str) -> str:
    """`csv`, `json` (an array) or `jsonl`, from --format, the file name and the first non-blank character."""
    if requested not in FORMATS:
        raise ImportFileError(f"unknown format {requested!r}: use one of {', '.join(FORMATS)}")
    name = filename.lower()
    looks_json = first_text[:1] in ("[", "{")
    if requested == "csv" or (requested == "auto" and name.endswith(".csv")):
        return "csv"
    if requested == "json" or name.endswith((".json", ".jsonl", ".ndjson")) or looks_json:
        return "json" if first_text[:1] == "[" else "jsonl"
    return "csv"


def open_stream(source: TextSource, requested: str = "auto", filename: str = "") -> RowStream:
    """Detect the format and read the CSV header now (so header errors come before any write); rows stay lazy.

    CSV and JSON Lines are read line by line; a JSON array in fixed-size chunks, so even a file written on one
    line never has to fit in memory.
    """
    head = ""
    while not head.lstrip("\ufeff \t\r\n"):
        chunk = source.read(READ_CHUNK_CHARS)
        if not chunk:
            raise ImportFileError(f"{filename or 'the file'} is empty: expected a header row or JSON")
        head += chunk
    fmt = detect_format(requested, filename, head.lstrip("\ufeff \t\r\n"))
    if fmt == "json":
        return RowStream(fmt, None, json_array_rows(chain([head], iter(lambda: source.read(READ_CHUNK_CHARS), ""))))
    # Split only where a file read would (\n, \r, \r\n): a quoted CSV cell may hold other line separators.
    lines = chain(_LINE.findall(head + source.readline()), iter(source.readline, ""))
    if fmt == "csv":
        columns, rows = open_csv(lines)
        return RowStream(fmt, columns, rows)
    return RowStream(fmt, None, json_lines_rows(lines))
