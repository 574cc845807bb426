"""Where a job's recipients come from, resolved at each execution: a static list, a file, or a filter.

A file is read again at every run, so an address added between runs is mailed in the next one. It is read with
the lead import's readers (`import_stream`): format, encoding and delimiter detection, header aliases
(`E-mail` is `email`), JSON arrays or JSON Lines. Nothing falls back silently: a missing or unreadable file, a
file without an email column and rows that cannot be mailed are RecipientSourceErrors naming the file and the
lines, so the execution fails with the reason instead of mailing part of a list.

The only I/O in this module is reading the recipient file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from app.domain.addresses import InvalidAddress
from app.domain.import_columns import EMAIL_COLUMN, RESERVED_FIELDS, import_email, normalize_column
from app.domain.import_headers import known_field
from app.domain.import_rows import ImportFileError, RawRow, Rejection
from app.domain.import_stream import ImportOptions, open_file

SourceKind = Literal["static", "file", "filter"]
Filters = tuple[tuple[str, str], ...]

# A job's recipients are held in memory for one execution; a larger list belongs in a campaign import.
MAX_FILE_RECIPIENTS = 200_000
# Bad rows named in one error: enough to fix a file, short enough to read.
REPORTED_BAD_ROWS = 10


class RecipientSourceError(ValueError):
    """The recipients cannot be resolved (missing or unreadable file, no email column, bad rows); the reason
    names the file and, for rows, their lines."""


@dataclass(frozen=True)
class RecipientSource:
    """A job's recipients: `static` addresses, a `file` re-read at every run (optionally narrowed by `filters`),
    or a `filter` over the recipients already stored (resolved by the store, not here).

    `filters` are (field, value) pairs as `parse_filters` returns them; `encoding` is the file's, when it is not
    UTF-8 (a Windows export is usually cp1252).
    """

    kind: SourceKind
    addresses: tuple[str, ...] = ()
    path: str | None = None
    filters: Filters = ()
    encoding: str | None = None


@dataclass(frozen=True)
class Recipient:
    """One address to mail, and its other fields for the template (`first_name`, `company_name`, ...)."""

    email: str
    fields: Mapping[str, str] = field(default_factory=dict)


def filter_key(name: str) -> str:
    """A field name as filters compare it: case and punctuation ignored, header aliases known (`Company`)."""
    return known_field(name) or normalize_column(name)


def parse_filters(raw: Sequence[str]) -> Filters:
    """`--recipient-filter key=value` options as ((field, value), ...); raise RecipientSourceError naming one.

    Keys are case-insensitive and read like a file's header (`Lead Source=web` is `lead_source`); a key given
    twice with different values could never match and is refused.
    """
    found: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        name, wanted = filter_key(key), value.strip()
        if not sep or not name or not wanted:
            raise RecipientSourceError(
                f"--recipient-filter {item!r}: expected KEY=VALUE with both parts, e.g. --recipient-filter country=DE"
            )
        if found.get(name, wanted) != wanted:
            raise RecipientSourceError(
                f"--recipient-filter gives {name!r} twice ({found[name]!r} and {wanted!r}); no row can match both"
            )
        found[name] = wanted
    return tuple(found.items())


def select(rows: Iterable[Recipient], filters: Filters) -> list[Recipient]:
    """The rows whose fields equal every (key, value) of `filters`: keys case-insensitive, values exact.

    `email` compares the address (case-insensitively, as addresses are stored lower-case).
    """
    wanted = [(filter_key(key), value.strip()) for key, value in filters]
    chosen = []
    for row in rows:
        fields = {filter_key(k): v.strip() for k, v in row.fields.items()}
        fields[EMAIL_COLUMN] = row.email
        if all(_equal(fields.get(key), value, key) for key, value in wanted):
            chosen.append(row)
    return chosen


def _equal(actual: str | None, wanted: str, key: str) -> bool:
    if actual is None:
        return False
    return actual.casefold() == wanted.casefold() if key == EMAIL_COLUMN else actual == wanted


def resolve(source: RecipientSource, now: datetime) -> list[Recipient]:
    """The recipients of an execution starting at `now`: the static addresses, or the file as it is now
    (re-read), narrowed by the filters; raise RecipientSourceError when the file cannot be used.

    A `filter` source selects recipients already stored: the caller queries the store with `source.filters`.
    """
    if source.kind == "static":
        return [Recipient(address) for address in source.addresses]
    if source.kind == "file" and source.path:
        rows = read_recipient_file(source.path, encoding=source.encoding)
        return select(rows, source.filters) if source.filters else rows
    raise ValueError(
        f"a {source.kind!r} source without a file is resolved by the store (at {now.isoformat()}): "
        "query the stored recipients with its filters"
    )


def read_recipient_file(path: str | Path, *, encoding: str | None = None) -> list[Recipient]:
    """Every recipient of a CSV, JSON or XLSX file, once each (the first row of an address wins).

    Raise RecipientSourceError for a missing, unreadable or empty file, one without an email column, or rows
    that cannot be mailed (named by line, all of them refused: a list is sent whole or not at all).
    """
    where = Path(path)
    try:
        with where.open("rb") as handle:
            stream = open_file(handle, where.name, ImportOptions(encoding=encoding))
            # A JSON array's rows are numbered by their position in it, every other format's by line.
            return _recipients(where, stream.rows, "item" if stream.format == "json" else "line")
    except FileNotFoundError:
        raise RecipientSourceError(f"recipient file {where} does not exist") from None
    except IsADirectoryError:
        raise RecipientSourceError(f"recipient file {where} is a directory, not a file") from None
    except PermissionError:
        raise RecipientSourceError(f"recipient file {where} cannot be read: permission denied") from None
    except OSError as exc:
        raise RecipientSourceError(f"recipient file {where} cannot be read: {exc.strerror or exc}") from None
    except ImportFileError as exc:
        raise RecipientSourceError(f"recipient file {where}: {exc}") from None


def _recipients(where: Path, rows: Iterable[RawRow | Rejection], unit: str) -> list[Recipient]:
    found: dict[str, Recipient] = {}
    bad: list[Rejection] = []
    for row in rows:
        checked = row if isinstance(row, Rejection) else _recipient(row)
        if isinstance(checked, Rejection):
            bad.append(checked)
        elif checked.email not in found:
            if len(found) >= MAX_FILE_RECIPIENTS:
                raise RecipientSourceError(
                    f"recipient file {where} has more than {MAX_FILE_RECIPIENTS:,} recipients: "
                    "import them into a campaign instead"
                )
            found[checked.email] = checked
    if bad:
        raise RecipientSourceError(_bad_rows_message(where, bad, unit))
    return list(found.values())


def _recipient(row: RawRow) -> Recipient | Rejection:
    address = row.fields.get(EMAIL_COLUMN)
    if address is None:
        return Rejection(row.row, "has no email")
    try:
        email = import_email(address if isinstance(address, str) else str(address))
    except InvalidAddress as exc:
        return Rejection(row.row, f"invalid email: {exc}")
    fields = {k: _text(v) for k, v in row.fields.items() if k != EMAIL_COLUMN and k not in RESERVED_FIELDS}
    return Recipient(email, fields)


def _text(value: Any) -> str:
    """A field's value as a template sees it: JSON true/false as written, a list joined with commas."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _bad_rows_message(where: Path, bad: Sequence[Rejection], unit: str) -> str:
    shown = "; ".join(f"{unit} {r.row}: {r.reason}" for r in bad[:REPORTED_BAD_ROWS])
    more = f"; and {len(bad) - REPORTED_BAD_ROWS} more" if len(bad) > REPORTED_BAD_ROWS else ""
    rows = "row cannot" if len(bad) == 1 else "rows cannot"
    return f"recipient file {where}: {len(bad)} {rows} be mailed ({shown}{more}); fix or remove them"
