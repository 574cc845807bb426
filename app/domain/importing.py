"""Lead import: parse CSV / JSON / JSON Lines rows, validate them and group them into leads.

Everything here is pure and lazy: parsers read an already open text source (a file opened with encoding
"utf-8-sig", errors="surrogateescape" and newline="", or io.StringIO) and yield one row at a time, so a file of
any size is read with memory bounded by one batch. Undecodable bytes arrive as lone surrogates and reject
their row.

Row numbers are what an operator can find in an editor: for CSV and JSON Lines the line on which the row
starts (a CSV header is line 1); for a JSON array, the item's position in the array (1-based).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, islice
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from app.domain.models import InvalidAddress, normalize_email

FORMATS = ("auto", "csv", "json")
EMAIL_COLUMN = "email"
DEFAULT_GROUP_COLUMNS = ("website", "company_name")
# Fields the dispatcher owns on a recipient; an imported column must not pre-set them.
RESERVED_FIELDS = frozenset({"status", "last_contacted_at", "last_step"})
MAX_JSON_ITEM_CHARS = 1_000_000
READ_CHUNK_CHARS = 65_536
REPORTED_REJECTIONS = 20

_SURROGATE = re.compile("[\udc80-\udcff]")
_SPACES = re.compile(r"\s+")
_LINE = re.compile(r".*?(?:\r\n|\r|\n)|.+\Z", re.DOTALL)
T = TypeVar("T")


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


@dataclass
class RowStream:
    """An opened import: the detected format, the CSV header (None for JSON) and the lazy rows."""

    format: str
    columns: tuple[str, ...] | None
    rows: Iterator[RawRow | Rejection]


@dataclass
class BatchPlan:
    """What one batch adds: new recipients (their rows) grouped by lead key, and the rows skipped as duplicates."""

    groups: dict[str, list[Candidate]] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def emails(self) -> list[str]:
        """Every address this plan adds."""
        return [c.email for candidates in self.groups.values() for c in candidates]


@dataclass
class ImportReport:
    """The outcome of an import, for the operator."""

    campaign_id: str
    format: str = "csv"
    dry_run: bool = False
    rows_read: int = 0
    leads_created: int = 0
    leads_updated: int = 0
    recipients_added: int = 0
    duplicates_skipped: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    ignored_columns: set[str] = field(default_factory=set)
    keep_rejections: int | None = REPORTED_REJECTIONS

    def reject(self, rejection: Rejection) -> None:
        """Count a rejected row, keeping its details while under the reporting limit."""
        self.rejected += 1
        if self.keep_rejections is None or len(self.rejections) < self.keep_rejections:
            self.rejections.append(rejection)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "campaign_id": self.campaign_id,
            "format": self.format,
            "dry_run": self.dry_run,
            "rows_read": self.rows_read,
            "leads_created": self.leads_created,
            "leads_updated": self.leads_updated,
            "recipients_added": self.recipients_added,
            "duplicates_skipped": self.duplicates_skipped,
            "rejected": self.rejected,
            "rejections": [{"row": r.row, "reason": r.reason} for r in self.rejections],
            "ignored_columns": sorted(self.ignored_columns),
        }


# --- names and values -------------------------------------------------------------------------------------


def normalize_column(name: str) -> str:
    """A header as a document field: stripped, lower-case, spaces to `_`; `.` and a leading `$` are unsafe."""
    text = _SPACES.sub("_", name.strip().lstrip("\ufeff").strip().lower())
    return text.replace(".", "_").lstrip("$")


def normalize_website(raw: str) -> str | None:
    """A website's host without `www.`, lower-case (`https://www.Acme.com/about` -> `acme.com`)."""
    text = raw.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text if "//" in text else f"//{text}")
        host = parts.hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.rstrip(".")
    return host[4:] if host.startswith("www.") else host or None


def normalize_group_value(column: str, raw: object) -> str | None:
    """The comparable form of a grouping value: a website's host, otherwise case- and space-insensitive text."""
    if raw is None or isinstance(raw, bool):
        return None
    text = str(raw)
    if column == "website":
        return normalize_website(text)
    value = _SPACES.sub(" ", text).strip().casefold()
    return value or None


def import_email(raw: object) -> str:
    """The address as stored and compared by the import; raise InvalidAddress.

    Lower-cased as a whole: mailbox names are case-insensitive in practice, and a person must never be mailed
    twice because two spreadsheets capitalised their address differently.
    """
    return normalize_email(raw).lower()


def lead_key_for(fields: Mapping[str, Any], email: str, group_by: str | None = None) -> str:
    """`<column>:<normalised value>` of the grouping column, or `email:<address>` when the row has none."""
    columns = (group_by,) if group_by else DEFAULT_GROUP_COLUMNS
    for column in columns:
        value = normalize_group_value(column, fields.get(column))
        if value:
            return f"{column}:{value}"
    return f"{EMAIL_COLUMN}:{email}"


# --- parsing ----------------------------------------------------------------------------------------------


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


class TextSource(Protocol):
    """What the parsers read from: an open text file (or io.StringIO in tests)."""

    def read(self, size: int = -1, /) -> str: ...

    def readline(self, size: int = -1, /) -> str: ...


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
        return RowStream(fmt, None, _json_array_rows(chain([head], iter(lambda: source.read(READ_CHUNK_CHARS), ""))))
    # Split only where a file read would (\n, \r, \r\n): a quoted CSV cell may hold other line separators.
    lines = chain(_LINE.findall(head + source.readline()), iter(source.readline, ""))
    if fmt == "csv":
        columns, rows = _open_csv(lines)
        return RowStream(fmt, columns, rows)
    return RowStream(fmt, None, _json_lines_rows(lines))


def _open_csv(lines: Iterator[str]) -> tuple[tuple[str, ...], Iterator[RawRow | Rejection]]:
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
    if any(_SURROGATE.search(name) for name in header):
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
    if any(_SURROGATE.search(cell) for cell in cells):
        return Rejection(row, "is not valid UTF-8 text")
    fields = {column: cell.strip() for column, cell in zip(columns, cells, strict=True) if column and cell.strip()}
    return RawRow(row, fields)


def _json_lines_rows(lines: Iterable[str]) -> Iterator[RawRow | Rejection]:
    for number, line in enumerate(lines, start=1):
        text = line.strip().lstrip("\ufeff")
        if not text:
            continue
        if _SURROGATE.search(text):
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
            if _SURROGATE.search(value) or _SURROGATE.search(str(key)):
                return Rejection(number, "is not valid UTF-8 text")
            value = value.strip()
        if not column or value is None or value == "":
            continue
        if column in fields:
            return Rejection(number, f"fields {originals[column]!r} and {key!r} are the same column {column!r}")
        fields[column], originals[column] = value, str(key)
    return RawRow(number, fields)


def _json_array_rows(chunks: Iterable[str]) -> Iterator[RawRow | Rejection]:
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


# --- validation and grouping ------------------------------------------------------------------------------


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


def ignored_fields(raw: RawRow) -> set[str]:
    """The row's columns the import drops because the dispatcher owns them."""
    return set(RESERVED_FIELDS.intersection(raw.fields))


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
