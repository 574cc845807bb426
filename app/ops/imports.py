"""Importing leads from an uploaded file: the rules, options and report of `outbound import-leads`.

Rows sharing a website or company become one lead with several recipients; recognised headings are mapped, other
columns kept as custom fields; an address the campaign already has is skipped, so uploading a file again adds
nothing. The bytes are read as `import-leads` reads a file (format and encoding from the content and the name).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.domain.importing import (
    FORMATS,
    ImportFileError,
    ImportOptions,
    ImportReport,
    RowStream,
    open_file,
    parse_delimiter,
    parse_map_options,
    resolve_column,
)
from app.ops.errors import OpError, not_found
from app.store.client import Database
from app.store.documents import NotFound
from app.store.lead_import import DEFAULT_BATCH_SIZE, ImportConflict, import_leads


@dataclass(frozen=True)
class UploadOptions:
    """`import-leads`' options: None (or `auto`) detects; `mapping` holds `FIELD=COLUMN` items as `--map` does."""

    format: str = "auto"
    delimiter: str | None = None
    encoding: str | None = None
    mapping: tuple[str, ...] = ()
    sheet: str | None = None
    group_by: str | None = None
    dry_run: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE


@dataclass(frozen=True)
class Imported:
    """The file's name and the import's report (counts, rejections with their rows, columns, a dry run's preview)."""

    filename: str
    report: ImportReport


def read_options(options: UploadOptions) -> ImportOptions:
    """How to read the file; OpError naming the option (format, delimiter, mapping) when one is not valid."""
    fmt = options.format.lower()
    if fmt not in FORMATS:
        raise OpError("invalid", f"format: unknown format {options.format!r}: use one of {', '.join(FORMATS)}")
    try:
        delimiter = parse_delimiter(options.delimiter) if options.delimiter is not None else None
    except ImportFileError as exc:
        raise OpError("invalid", f"delimiter: {exc}") from None
    try:
        mapping = parse_map_options(options.mapping)
    except ImportFileError as exc:
        raise OpError("invalid", f"mapping: {exc}") from None
    return ImportOptions(
        format=fmt, encoding=options.encoding, delimiter=delimiter, sheet=options.sheet, mapping=mapping
    )


def group_column(group_by: str | None, stream: RowStream) -> str | None:
    """The stored column `group_by` names; OpError naming `group_by` when the file has no such column."""
    if group_by is None:
        return None
    if not group_by.strip():
        raise OpError("invalid", "group_by: give a column name")
    column = resolve_column(group_by, stream.header)
    if column is None:
        names = ", ".join(m.field for m in stream.header or () if m.field)
        raise OpError("invalid", f"group_by: {group_by!r}: the file has no such column (columns: {names})")
    return column


async def import_csv(
    db: Database, campaign_id: str, data: bytes, filename: str, options: UploadOptions, now: datetime
) -> Imported:
    """Import the file's rows as leads of the campaign (a dry run writes nothing and previews); OpError when the
    campaign is unknown, the file or an option cannot be read, or other writers kept changing the same leads."""
    if options.batch_size < 1:
        raise OpError("invalid", f"batch_size: at least 1, got {options.batch_size}")
    how = read_options(options)
    try:
        stream = open_file(io.BytesIO(data), filename, how)
        group_by = group_column(options.group_by, stream)
        report = await import_leads(
            db,
            campaign_id,
            stream,
            now=now,
            group_by=group_by,
            dry_run=options.dry_run,
            batch_size=options.batch_size,
            keep_rejections=None,
        )
    except ImportFileError as exc:
        raise OpError("invalid", f"file: {filename}: {exc}; nothing was imported") from None
    except NotFound:
        raise not_found("campaign", campaign_id) from None
    except ImportConflict as exc:
        raise OpError("conflict", str(exc)) from None
    return Imported(filename, report)


def mapping_items(values: Sequence[str]) -> tuple[str, ...]:
    """`FIELD=COLUMN` items as given (blank ones dropped), for `UploadOptions.mapping`."""
    return tuple(v for v in values if v.strip())
