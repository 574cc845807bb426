"""Lead import from a table of cells (a CSV file or a spreadsheet): the header row, then one row per line.

The header is mapped to fields (`import_headers`) and checked before anything is written. Rows may be ragged:
a row that stops early has its missing trailing cells empty; cells beyond the header are fine when empty (a
spreadsheet's padding) and reject their row otherwise, since the header cannot say what they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.domain.import_headers import ColumnMapping, map_columns, require_email
from app.domain.import_rows import UNDECODABLE, ImportFileError, RawRow, Rejection


def header_mappings(
    header: Sequence[str], overrides: Mapping[str, str], delimiter: str | None = None
) -> list[ColumnMapping]:
    """The checked column mapping of a header row; raise ImportFileError when it cannot be imported."""
    if any(UNDECODABLE.search(name) for name in header):
        raise ImportFileError("the header row is not valid text in the file's encoding: pass --encoding")
    mappings = map_columns(header, overrides)
    require_email(mappings, delimiter)
    return mappings


def cells_row(row: int, cells: Sequence[str], columns: Sequence[str], hint: str = "") -> RawRow | Rejection:
    """One row of cells as fields: stripped, empty cells omitted, missing trailing cells empty."""
    if len(cells) > len(columns):
        extra = [cell.strip() for cell in cells[len(columns) :] if cell.strip()]
        if extra:
            return Rejection(
                row, f"has {len(cells)} cells but the header has {len(columns)} columns (extra: {extra[0]!r}){hint}"
            )
    if any(UNDECODABLE.search(cell) for cell in cells):
        return Rejection(row, "is not valid text in the file's encoding")
    fields = {column: cell.strip() for column, cell in zip(columns, cells, strict=False) if column and cell.strip()}
    return RawRow(row, fields)
