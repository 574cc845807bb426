"""Lead import from delimited text (CSV, semicolon, tab or pipe separated): the delimiter, the header row (checked
before any write) and lazy rows numbered by their first line.

The delimiter is taken from the header and the rows after it: each candidate splits the sample with the CSV
rules (so a quoted `"Acme; Inc"` stays one cell), and the one that gives a header of several columns and the
most rows of that same width wins; then the one leaving fewer quote characters inside cells (the right one
consumes them), then the wider header, then comma, semicolon, tab, pipe. A file of one column is comma-separated.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from app.domain.import_headers import ColumnMapping
from app.domain.import_rows import ImportFileError, RawRow, Rejection
from app.domain.import_table import cells_row, header_mappings

DELIMITERS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}
SNIFF_ROWS = 50


def parse_delimiter(value: str) -> str:
    """`--delimiter` as one character: `,` `;` `|`, a tab (`tab`, `\\t` or the character) or a name."""
    text = value if value == "\t" else value.strip().lower()
    if text in DELIMITERS:
        return DELIMITERS[text]
    if text == "\\t":
        return "\t"
    if text in DELIMITERS.values():
        return text
    raise ImportFileError(f"unknown --delimiter {value!r}: use one of , ; tab |")


def sniff_delimiter(sample: Sequence[str]) -> str:
    """The delimiter of the sample lines (the header first); comma when none splits the header."""
    best, best_score = ",", (-1, 0, 0)
    for delimiter in DELIMITERS.values():
        records = [r for r in islice(csv.reader(iter(sample), delimiter=delimiter), SNIFF_ROWS + 1) if r]
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        stray_quotes = sum(cell.count('"') for r in records for cell in r)
        score = (sum(1 for r in records[1:] if len(r) == width), -stray_quotes, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def open_csv(
    lines: Iterator[str], delimiter: str = ",", overrides: Mapping[str, str] | None = None
) -> tuple[list[ColumnMapping], Iterator[RawRow | Rejection]]:
    """The checked header mapping and the lazy rows; raise ImportFileError for a header that cannot be imported."""
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    header: list[str] = []
    try:
        while not header:
            header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise ImportFileError(f"the header row cannot be read: {exc}") from None
    mappings = header_mappings(header, overrides or {}, delimiter)
    hint = f"; quote a value that holds {_named(delimiter)}"
    return mappings, _csv_rows(reader, tuple(m.field for m in mappings), hint)


def _named(delimiter: str) -> str:
    return "a tab" if delimiter == "\t" else f"{delimiter!r}"


def _csv_rows(reader: Any, columns: tuple[str, ...], hint: str) -> Iterator[RawRow | Rejection]:
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
        if not "".join(cells).strip():
            continue  # a blank line (or one of delimiters only, as spreadsheets export them) is not a row
        yield cells_row(row, cells, columns, hint)
