"""Lead import from an Excel workbook (.xlsx): the first sheet (or the one named), read as a stream of rows.

openpyxl reads the sheet in read-only mode, one row at a time, with the values Excel last calculated
(`data_only`), so a formula gives its result. Cells become the text a person sees in Excel: dates in ISO form
(`2024-03-01`, with the time when it is not midnight), whole numbers without `.0` (a phone number stored as a
number stays `4915112345678`), TRUE and FALSE. Row numbers are the sheet's.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from datetime import date, datetime, time
from typing import IO, Any

from app.domain.import_headers import ColumnMapping
from app.domain.import_rows import ImportFileError, RawRow, Rejection
from app.domain.import_table import cells_row, header_mappings


def cell_text(value: Any) -> str:
    """A cell's value as the text a person expects to see."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds" if not value.microsecond else "auto")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def open_xlsx(
    handle: IO[bytes], sheet: str | None = None, overrides: Mapping[str, str] | None = None
) -> tuple[list[ColumnMapping], Iterator[RawRow | Rejection]]:
    """The checked header mapping of the sheet's first non-empty row, and its rows, read lazily."""
    # Imported here: openpyxl costs every other import (CSV, JSON) about 25 MiB and 0.1 s to load.
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(handle, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError) as exc:
        raise ImportFileError(f"not a readable .xlsx workbook ({exc}): save it again from Excel as .xlsx") from None
    try:
        names = list(book.sheetnames)
        if sheet is not None and sheet not in names:
            raise ImportFileError(f"--sheet {sheet!r}: the workbook has no such sheet (sheets: {', '.join(names)})")
        worksheet = book[sheet] if sheet is not None else book.worksheets[0]
        # A workbook may declare far more columns than it fills; without them every row is only as long as it is.
        worksheet.reset_dimensions()
        rows = enumerate(worksheet.iter_rows(values_only=True), start=1)
        header = next(
            ([cell_text(v) for v in cells] for _number, cells in rows if any(v is not None for v in cells)), None
        )
        if header is None:
            raise ImportFileError(f"sheet {worksheet.title!r} is empty: expected a header row")
        mappings = header_mappings(header, overrides or {})
    except BaseException:
        book.close()
        raise
    return mappings, _sheet_rows(book, rows, tuple(m.field for m in mappings))


def _sheet_rows(book: Any, rows: Iterator[tuple[int, Any]], columns: tuple[str, ...]) -> Iterator[RawRow | Rejection]:
    try:
        for number, values in rows:
            cells = [cell_text(v) for v in values]
            if "".join(cells).strip():
                yield cells_row(number, cells, columns)
    finally:
        book.close()
