"""`outbound import-leads`: add leads to a campaign from a CSV (any delimiter), JSON, JSON Lines or .xlsx file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import typer

from app.cli.common import JSON_OPTION, console, fail, print_json, run_db, settings_of
from app.domain.importing import (
    FORMATS,
    REPORTED_REJECTIONS,
    ColumnMapping,
    ImportFileError,
    ImportOptions,
    ImportReport,
    RowStream,
    open_file,
    parse_delimiter,
    parse_map_options,
    resolve_column,
)
from app.store.client import Database
from app.store.lead_import import DEFAULT_BATCH_SIZE, ImportConflict, import_leads

_HOW = {
    "field": "",
    "alias": "(recognised heading)",
    "--map": "(--map)",
    "custom": "(custom field)",
    "reserved": "ignored: set by the dispatcher",
    "replaced": "ignored: --map stores another column under its name",
    "unnamed": "ignored: no usable name",
}


def open_lead_file(path: Path) -> IO[bytes]:
    """Open an import file in binary: the import decides its format and encoding from its bytes."""
    try:
        return path.open("rb")
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except IsADirectoryError:
        fail(f"{path} is a directory: give the CSV, JSON or .xlsx file to import")
    except OSError as exc:
        fail(f"{path} cannot be read: {exc.strerror or exc}")


def import_leads_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV (header row required), JSON array, JSON Lines or .xlsx file."),
    campaign_id: str = typer.Option(..., "--campaign-id", help="The campaign the leads join."),
    fmt: str = typer.Option("auto", "--format", help=f"File format: {', '.join(FORMATS)} (auto: by name/content)."),
    delimiter: str | None = typer.Option(
        None, "--delimiter", help="Cell separator of a CSV: , ; tab | (default: detected from the header)."
    ),
    encoding: str | None = typer.Option(
        None, "--encoding", help="Text encoding, e.g. cp1252 or latin-1 (default: UTF-8 or UTF-16 by its BOM)."
    ),
    mapping: list[str] = typer.Option(
        [], "--map", help='FIELD=COLUMN: store the column under the field, e.g. --map email="Work Email" (repeatable).'
    ),
    sheet: str | None = typer.Option(None, "--sheet", help="The .xlsx sheet to read (default: the first)."),
    group_by: str | None = typer.Option(
        None, "--group-by", help="Rows sharing this column become one lead (default: website, else company_name)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the mapping, first rows, grouping and every rejection; write nothing."
    ),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Rows written per batch."),
    json_: bool = JSON_OPTION,
) -> None:
    """Import leads: rows sharing a website or company become one lead with several recipients.

    Headers such as Email Address, Company or First Name are recognised; other columns are kept as custom
    fields. Importing the same file again adds nothing: an address already in the campaign is skipped. Exits 1
    when every row was rejected.
    Example: outbound import-leads --campaign-id 64f1... export.csv --encoding cp1252 --dry-run
    """
    settings = settings_of(ctx)
    options = _options(fmt, delimiter, encoding, mapping, sheet)
    with open_lead_file(file) as handle:
        try:
            stream = open_file(handle, file.name, options)
        except ImportFileError as exc:
            fail(f"{file}: {exc}; nothing was imported")
        group_column = _group_column(group_by, stream)

        async def work(db: Database) -> ImportReport:
            return await import_leads(
                db,
                campaign_id,
                stream,
                now=datetime.now(UTC),
                group_by=group_column,
                dry_run=dry_run,
                batch_size=batch_size,
                keep_rejections=None if json_ or dry_run else REPORTED_REJECTIONS,
            )

        try:
            report = run_db(settings, work, read_only=dry_run)
        except ImportConflict as exc:
            fail(str(exc))
    if json_:
        print_json({"file": str(file), **report.to_dict()})
    else:
        _print_report(file, report)
    if report.all_rejected:
        raise typer.Exit(1)


def _options(
    fmt: str, delimiter: str | None, encoding: str | None, mapping: list[str], sheet: str | None
) -> ImportOptions:
    if fmt.lower() not in FORMATS:
        fail(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        return ImportOptions(
            format=fmt.lower(),
            encoding=encoding,
            delimiter=parse_delimiter(delimiter) if delimiter is not None else None,
            sheet=sheet,
            mapping=parse_map_options(mapping),
        )
    except ImportFileError as exc:
        fail(str(exc))


def _group_column(group_by: str | None, stream: RowStream) -> str | None:
    if group_by is None:
        return None
    if not group_by.strip():
        fail("--group-by needs a column name")
    column = resolve_column(group_by, stream.header)
    if column is None:
        fail(f"--group-by {group_by!r}: the file has no such column (columns: {', '.join(_stored(stream.header))})")
    return column


def _stored(mappings: Sequence[ColumnMapping] | None) -> list[str]:
    return [m.field for m in mappings or () if m.field]


def _print_report(file: Path, report: ImportReport) -> None:
    title = "Dry run (nothing written)" if report.dry_run else "Imported"
    console.print(f"{title}: {file} into campaign {report.campaign_id}", markup=False)
    read = [report.format]
    if report.delimiter is not None:
        read.append(f"delimiter {'tab' if report.delimiter == chr(9) else repr(report.delimiter)}")
    if report.encoding is not None:
        read.append(f"encoding {report.encoding}")
    console.print(f"  read as {', '.join(read)}", markup=False)
    _print_columns(report)
    if report.dry_run:
        _print_preview(report)
    if report.rejections:
        shown = len(report.rejections)
        more = f" (first {shown} of {report.rejected}; --json lists all)" if shown < report.rejected else ""
        console.print(f"Rejected rows{more}:")
        for rejection in report.rejections:
            console.print(f"  row {rejection.row}: {rejection.reason}", markup=False)
    _print_counts(report)


def _print_columns(report: ImportReport) -> None:
    if not report.columns:
        return
    console.print("Columns:")
    width = min(max(len(m.source) for m in report.columns), 30)
    for m in report.columns:
        target = f"-> {m.field} {_HOW[m.how]}" if m.field else f"   {_HOW[m.how]}"
        console.print(f"  {m.source:<{width}}  {target}".rstrip(), markup=False)


def _print_preview(report: ImportReport) -> None:
    by = ", else ".join(report.group_by)
    console.print(f"Leads (rows sharing {by} become one lead; otherwise one lead per address):")
    for lead in report.preview.leads.values():
        state = "new lead" if lead.new else "existing lead"
        more = f" (+{lead.recipients - len(lead.emails)} more)" if lead.recipients > len(lead.emails) else ""
        rows = ("row " if len(lead.rows) == 1 else "rows ") + ", ".join(str(r) for r in lead.rows)
        console.print(f"  {lead.key} ({state}): {rows}: {', '.join(lead.emails)}{more}", markup=False)
    if report.preview.rows:
        console.print("First rows as they would be stored:")
    for candidate in report.preview.rows:
        stored = json.dumps(dict(candidate.recipient), ensure_ascii=False, default=str)
        console.print(f"  row {candidate.row} -> {candidate.lead_key}: {stored}", markup=False)


def _print_counts(report: ImportReport) -> None:
    for label, value in (
        ("rows read", report.rows_read),
        ("leads created", report.leads_created),
        ("leads updated", report.leads_updated),
        ("recipients added", report.recipients_added),
        ("duplicates skipped", report.duplicates_skipped),
        ("rejected", report.rejected),
    ):
        console.print(f"  {label:<20}{value:>10,}")
    if report.all_rejected:
        console.print("Every row was rejected: nothing was imported.")


def register(app: typer.Typer) -> None:
    """Add `import-leads`."""
    app.command("import-leads")(import_leads_cmd)
