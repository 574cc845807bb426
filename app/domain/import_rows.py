"""What a lead import reads and decides per row: parsed rows, valid candidates, rejections, file errors.

Row numbers are what an operator can find in an editor: for CSV and JSON Lines the line on which the row
starts (a CSV header is line 1); for a JSON array, the item's position in the array (1-based).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Undecodable bytes arrive as lone surrogates (the file is read with errors="surrogateescape").
UNDECODABLE = re.compile("[\udc80-\udcff]")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (empty, missing column, unknown format); nothing was changed."""


@dataclass(frozen=True)
class Rejection:
    """A row that was not imported, and why."""

    row: int
    reason: str


@dataclass(frozen=True)
class RawRow:
    """One parsed row: normalised column names to non-empty values."""

    row: int
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Candidate:
    """A valid row, ready to become a recipient of the lead named by `lead_key`."""

    row: int
    email: str
    lead_key: str
    recipient: Mapping[str, Any]
