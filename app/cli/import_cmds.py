"""`outbound import-leads`: add leads to a campaign from a CSV, JSON or JSON Lines file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import typer

from app.cli.common import JSON_OPTION, console, fail, print_json, run_db, settings_of
from app.domain.importing import (
    FORMATS,
    REPORTED_REJECTIONS,
    ImportFileError,
    ImportReport,
    normalize_column,
    open_stream,
)
from app.store.client import Database
from app.store.lead_import import DEFAULT_BATCH_SIZE, ImportConflict, import_leads


def open_lead_file(path: Path) -> IO[str]:
    """Open an import file as the parsers expect: UTF-8 (BOM or not), bad bytes kept so their row is rejected."""
    try:
        return path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="")
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except IsADirectoryError:
        fail(f"{path} is a directory: give the CSV or JSON file to import")
    except OSError as exc:
        fail(f"{path} cannot be read: {exc.strerror or exc}")


def import_leads_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="CSV (header row required), JSON array or JSON Lines file."),
    campaign_id: str = typer.Option(..., "--campaign-id", help="The campaign the leads join."),
    fmt: str = typer.Option("auto", "--format", help=f"File format: {', '.join(FORMATS)} (auto: by name/content)."),
    group_by: str | None = typer.Option(
        None, "--group-by", help="Rows sharing this column become one lead (default: website, else company_name)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Validate and count; write nothing (keeps seen addresses in memory)."
    ),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Rows written per batch."),
    json_: bool = JSON_OPTION,
) -> None:
    """Import leads: rows sharing a website or company become one lead with several recipients.

    Importing the same file again adds nothing: an address already in the campaign is skipped.
    Example: outbound import-leads --campaign-id 64f1... leads.csv --dry-run
    """
    settings = settings_of(ctx)
    if fmt.lower() not in FORMATS:
        fail(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")
    group_column = _group_column(group_by)
    with open_lead_file(file) as handle:
        try:
            stream = open_stream(handle, fmt.lower(), file.name)
        except ImportFileError as exc:
            fail(f"{file}: {exc}; nothing was imported")
        if group_column and stream.columns is not None and group_column not in stream.columns:
            fail(f"--group-by {group_by!r}: the file has no such column (columns: {', '.join(stream.columns)})")

        async def work(db: Database) -> ImportReport:
            return await import_leads(
                db,
                campaign_id,
                stream,
                now=datetime.now(UTC),
                group_by=group_column,
                dry_run=dry_run,
                batch_size=batch_size,
                keep_rejections=None if json_ else REPORTED_REJECTIONS,
            )

        try:
            report = run_db(settings, work)
        except ImportConflict as exc:
            fail(str(exc))
    if json_:
        print_json({"file": str(file), **report.to_dict()})
    else:
        _print_report(file, report)


def _group_column(group_by: str | None) -> str | None:
    if group_by is None:
        return None
    column = normalize_column(group_by)
    if not column:
        fail("--group-by needs a column name")
    return column


def _print_report(file: Path, report: ImportReport) -> None:
    title = "Dry run (nothing written)" if report.dry_run else "Imported"
    console.print(f"{title}: {file} ({report.format}) into campaign {report.campaign_id}", markup=False)
    for label, value in (
        ("rows read", report.rows_read),
        ("leads created", report.leads_created),
        ("leads updated", report.leads_updated),
        ("recipients added", report.recipients_added),
        ("duplicates skipped", report.duplicates_skipped),
        ("rejected", report.rejected),
    ):
        console.print(f"  {label:<20}{value:>10,}")
    if report.ignored_columns:
        names = ", ".join(sorted(report.ignored_columns))
        console.print(f"  ignored columns: {names} (set by the dispatcher, not by an import)")
    if report.rejections:
        shown = len(report.rejections)
        more = f" (first {shown} of {report.rejected}; --json lists all)" if shown < report.rejected else ""
        console.print(f"Rejected rows{more}:")
        for rejection in report.rejections:
            console.print(f"  row {rejection.row}: {rejection.reason}", markup=False)


def register(app: typer.Typer) -> None:
    """Add `import-leads`."""
    app.command("import-leads")(import_leads_cmd)
