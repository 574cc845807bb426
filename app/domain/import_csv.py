"""Lead import from CSV: the header row (checked before any write) and lazy rows numbered by their first line."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from app.domain.import_columns import EMAIL_COLUMN, normalize_column
from app.domain.import_rows import UNDECODABLE, ImportFileError, RawRow, Rejection


def open_csv(lines: Iterator[str]) -> tuple[tuple[str, ...], Iterator[RawRow | Rejection]]:
    """The checked header and the lazy rows; raise ImportFileError for an unreadable, duplicate or email-less header."""
    reader = csv.reader(lines, strict=True)
    header: list[str] = []
    try:
        while not header:
            header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise ImportFileError(f"the CSV header row cannot be read: {exc}") from None
    columns = tuple(normalize_column(name) for name in header)
    _check_header(header, columns)
    return columns, _csv_rows(reader, columns)


def _check_header(header: list[str], columns: tuple[str, ...]) -> None:
    if any(UNDECODABLE.search(name) for name in header):
        raise ImportFileError("the CSV header row is not valid UTF-8: save the file as UTF-8 and retry")
    seen: dict[str, int] = {}
    for position, column in enumerate(columns, start=1):
        if column and column in seen:
            raise ImportFileError(f"columns {seen[column]} and {position} are both named {column!r}: rename one")
        seen[column] = position
    if EMAIL_COLUMN not in seen:
        found = ", ".join(repr(c) for c in columns if c) or "none"
        raise ImportFileError(f"the required column 'email' is missing (columns found: {found})")


def _csv_rows(reader: Any, columns: tuple[str, ...]) -> Iterator[RawRow | Rejection]:
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Rejection(start, f"malformed CSV: {exc}")
            start = reader.line_num + 1
            continue
        row, start = start, reader.line_num + 1
        if not cells:
            continue  # a blank line is not a row
        yield _csv_row(row, cells, columns)


def _csv_row(row: int, cells: list[str], columns: tuple[str, ...]) -> RawRow | Rejection:
    if len(cells) != len(columns):
        return Rejection(row, f"has {len(cells)} fields but the header has {len(columns)}")
    if any(UNDECODABLE.search(cell) for cell in cells):
        return Rejection(row, "is not valid UTF-8 text")
    fields = {column: cell.strip() for column, cell in zip(columns, cells, strict=True) if column and cell.strip()}
    return RawRow(row, fields)
