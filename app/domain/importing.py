"""Lead import: validate parsed rows and group them into leads, one bounded batch at a time.

Everything here is pure. The rest of the import's domain side, which this module re-exports:
- `import_stream`: opening a file (format, encoding and delimiter detection, lazy rows);
- `import_encoding`: byte-order marks, --encoding and where a file stops decoding;
- `import_csv` (delimited text), `import_xlsx` (workbooks), `import_table` (their rows of cells) and
  `import_json` (arrays, JSON Lines, flattening) parse;
- `import_headers`: which column becomes which field (aliases, --map, custom fields);
- `import_rows`: rows, candidates, rejections and file errors; `import_columns`: names, addresses, lead keys;
- `import_report`: the outcome for the operator, with a dry run's preview.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, TypeVar

from app.domain.import_columns import DEFAULT_GROUP_COLUMNS as DEFAULT_GROUP_COLUMNS
from app.domain.import_columns import EMAIL_COLUMN as EMAIL_COLUMN
from app.domain.import_columns import RESERVED_FIELDS as RESERVED_FIELDS
from app.domain.import_columns import import_email as import_email
from app.domain.import_columns import lead_key_for as lead_key_for
from app.domain.import_columns import normalize_column as normalize_column
from app.domain.import_columns import normalize_group_value as normalize_group_value
from app.domain.import_columns import normalize_website as normalize_website
from app.domain.import_csv import parse_delimiter as parse_delimiter
from app.domain.import_csv import sniff_delimiter as sniff_delimiter
from app.domain.import_encoding import choose_encoding as choose_encoding
from app.domain.import_encoding import codec_name as codec_name
from app.domain.import_encoding import first_undecodable as first_undecodable
from app.domain.import_headers import ColumnMapping as ColumnMapping
from app.domain.import_headers import header_key as header_key
from app.domain.import_headers import map_columns as map_columns
from app.domain.import_headers import parse_map_options as parse_map_options
from app.domain.import_headers import resolve_column as resolve_column
from app.domain.import_json import MAX_JSON_ITEM_CHARS as MAX_JSON_ITEM_CHARS
from app.domain.import_json import json_row as json_row
from app.domain.import_report import REPORTED_REJECTIONS as REPORTED_REJECTIONS
from app.domain.import_report import ImportPreview as ImportPreview
from app.domain.import_report import ImportReport as ImportReport
from app.domain.import_rows import Candidate as Candidate
from app.domain.import_rows import ImportFileError as ImportFileError
from app.domain.import_rows import RawRow as RawRow
from app.domain.import_rows import Rejection as Rejection
from app.domain.import_stream import FORMATS as FORMATS
from app.domain.import_stream import READ_CHUNK_CHARS as READ_CHUNK_CHARS
from app.domain.import_stream import ImportOptions as ImportOptions
from app.domain.import_stream import RowStream as RowStream
from app.domain.import_stream import TextSource as TextSource
from app.domain.import_stream import detect_format as detect_format
from app.domain.import_stream import open_file as open_file
from app.domain.import_stream import open_stream as open_stream
from app.domain.import_xlsx import cell_text as cell_text
from app.domain.models import InvalidAddress

T = TypeVar("T")


@dataclass
class BatchPlan:
    """What one batch adds: new recipients (their rows) grouped by lead key, and the rows skipped as duplicates."""

    groups: dict[str, list[Candidate]] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def emails(self) -> list[str]:
        """Every address this plan adds."""
        return [c.email for candidates in self.groups.values() for c in candidates]


def to_candidate(raw: RawRow, group_by: str | None = None) -> Candidate | Rejection:
    """Validate one row's address and build its recipient (status not_contacted) and lead key."""
    address = raw.fields.get(EMAIL_COLUMN)
    if address is None:
        return Rejection(raw.row, "has no email")
    try:
        email = import_email(address if isinstance(address, str) else str(address))
    except InvalidAddress as exc:
        return Rejection(raw.row, f"invalid email: {exc}")
    recipient: dict[str, Any] = {k: v for k, v in raw.fields.items() if k not in RESERVED_FIELDS}
    recipient[EMAIL_COLUMN] = email
    recipient["status"] = "not_contacted"
    return Candidate(raw.row, email, lead_key_for(raw.fields, email, group_by), recipient)


def plan_batch(candidates: Iterable[Candidate], existing: Iterable[str]) -> BatchPlan:
    """Group a batch's new recipients by lead key; an address already stored or seen earlier is a duplicate."""
    plan = BatchPlan()
    seen = set(existing)
    for candidate in candidates:
        if candidate.email in seen:
            plan.duplicates += 1
            continue
        seen.add(candidate.email)
        plan.groups.setdefault(candidate.lead_key, []).append(candidate)
    return plan


def lost_race(candidate: Candidate, stored_in: str | None) -> Rejection | None:
    """A row whose address another import stored while this one ran, in the lead keyed `stored_in`.

    None when that is the lead this row was going to (the same row imported twice: a duplicate, as on a re-run);
    otherwise the row is rejected, naming the lead that has the address, because a person is in one lead only.
    """
    if stored_in == candidate.lead_key:
        return None
    where = f"lead {stored_in!r}" if stored_in else "another lead"
    return Rejection(
        candidate.row,
        f"{candidate.email} was added to {where} of this campaign by another import while this one ran; "
        f"not added to lead {candidate.lead_key!r}",
    )


def new_lead_fields(now: datetime, next_due_at: datetime) -> dict[str, Any]:
    """The fields a new lead gets besides its campaign, key and recipients: seed 001's fresh progress."""
    return {
        "created_at": now,
        "progress": {
            "current_step_order": 1,
            "stopped": False,
            "processed_recipients": {},
            "next_due_at": next_due_at,
        },
    }


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
