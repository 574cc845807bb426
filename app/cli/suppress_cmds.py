"""`outbound suppress add|remove|list|import`: the addresses and @domains never to be mailed, by hand.

The dispatcher checks every recipient against this list before every send; values are normalised the way
that check compares them (`app/domain/suppression_entries.py`). Bad input changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from app.cli.common import (
    JSON_OPTION,
    YES_OPTION,
    confirm,
    console,
    err_console,
    fail,
    fmt_time,
    now_utc,
    print_json,
    print_table,
    run_db,
    settings_of,
)
from app.domain.suppression_entries import (
    BadLine,
    InvalidEntry,
    ParsedFile,
    SuppressionFileError,
    check_reason,
    decode_file,
    display_value,
    parse_file,
    suppression_value,
)
from app.ops.suppressions import suppress_address
from app.store import schema, suppressions
from app.store.client import Database

suppress_app = typer.Typer(
    help="The suppression list: addresses and @domains never to be mailed, in any campaign.", no_args_is_help=True
)

VALUE_ARGUMENT = typer.Argument(..., help="An address (ann@example.com) or a whole domain (@example.com).")
REASON_OPTION = typer.Option("manual", "--reason", help="Why: recorded with the entry, shown when a send is skipped.")
SHOWN_BAD_LINES = 10  # bad lines listed in an error or a --skip-invalid report
WRITE_CHUNK = 1000  # entries per bulk write


@dataclass(frozen=True)
class Added:
    """What an add or an import wrote: new entries, and values that were on the list already."""

    added: int
    already: int


def _value(raw: str) -> str:
    try:
        return suppression_value(raw)
    except InvalidEntry as exc:
        fail(f"{exc}; nothing was changed", code=2)


def _reason(raw: str) -> str:
    try:
        return check_reason(raw)
    except InvalidEntry as exc:
        fail(f"{exc}; nothing was changed", code=2)


async def _add(db: Database, values: list[str], reason: str, detail: str) -> Added:
    coll = db[schema.SUPPRESSIONS]
    added = 0
    for start in range(0, len(values), WRITE_CHUNK):
        chunk = values[start : start + WRITE_CHUNK]
        added += await suppressions.add(coll, [(value, reason, detail) for value in chunk], now_utc())
    return Added(added, len(values) - added)


def add_cmd(ctx: typer.Context, value: str = VALUE_ARGUMENT, reason: str = REASON_OPTION) -> None:
    """Suppress one address or domain: it is never mailed again, in any campaign.

    Example: outbound suppress add @competitor.example --reason competitor
    """
    _value(value)  # refused here, before connecting, with the exit code of bad input
    why = _reason(reason)
    result = run_db(settings_of(ctx), lambda db: suppress_address(db, value, why, now_utc(), detail="suppress add"))
    shown = result.value
    if result.added:
        console.print(f"Suppressed {shown} (reason: {why}); added 1, already suppressed 0", markup=False)
    else:
        console.print(f"{shown} was already suppressed (kept as it was); added 0, already suppressed 1", markup=False)


async def _remove(db: Database, value: str, yes: bool) -> list[str]:
    """Remove `value`; the broader entries that still block it (its domain) are returned."""
    coll = db[schema.SUPPRESSIONS]
    keys = {value, value.rpartition("@")[2]}
    entries = await suppressions.find(coll, keys)
    entry = entries.get(value)
    if entry is None:
        fail(f"{display_value(value)} is not on the suppression list; nothing was changed")
    since = fmt_time(entry.get("created_at")) if entry.get("created_at") else "?"
    confirm(
        f"Remove {display_value(value)} (suppressed since {since} UTC, reason: {entry.get('reason', '?')}) "
        "from the suppression list, so it can be mailed again?",
        yes,
    )
    await suppressions.remove(coll, [value])
    return [display_value(key) for key in entries if key != value]


def remove_cmd(ctx: typer.Context, value: str = VALUE_ARGUMENT, yes: bool = YES_OPTION) -> None:
    """Take an address or domain off the suppression list (it may be mailed again).

    Example: outbound suppress remove ann@example.com --yes
    """
    stored = _value(value)
    still = run_db(settings_of(ctx), lambda db: _remove(db, stored, yes))
    console.print(f"Removed {display_value(stored)} from the suppression list", markup=False)
    for broader in still:
        note = f"note: {broader} is still suppressed, so {display_value(stored)} stays blocked"
        err_console.print(note, markup=False)


async def _list(db: Database, limit: int) -> tuple[int, list[dict[str, Any]]]:
    coll = db[schema.SUPPRESSIONS]
    return await suppressions.count(coll), await suppressions.list_entries(coll, limit=limit)


def _entry_json(doc: dict[str, Any]) -> dict[str, Any]:
    value = str(doc["value"])
    return {
        "value": display_value(value),
        "kind": "address" if "@" in value else "domain",
        "reason": doc.get("reason"),
        "detail": doc.get("detail"),
        "created_at": doc.get("created_at"),
    }


def list_cmd(
    ctx: typer.Context,
    limit: int = typer.Option(100, "--limit", min=1, max=suppressions.MAX_LIST, help="Show at most N entries."),
    json_: bool = JSON_OPTION,
) -> None:
    """The suppression list in alphabetical order: addresses, and domains as @domain.

    Example: outbound suppress list --limit 500 --json
    """
    total, docs = run_db(settings_of(ctx), lambda db: _list(db, limit), read_only=True)
    entries = [_entry_json(doc) for doc in docs]
    if json_:
        print_json({"total": total, "shown": len(entries), "suppressions": entries})
        return
    rows = [(e["value"], e["reason"], e["detail"], fmt_time(e["created_at"])) for e in entries]
    print_table(f"Suppressions ({len(entries)} of {total})", ("value", "reason", "detail", "since (UTC)"), rows)
    if len(entries) < total:
        console.print(f"{total - len(entries)} more: raise --limit to see them")


def _read(path: Path) -> ParsedFile:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except IsADirectoryError:
        fail(f"{path} is a directory: give the file of addresses to import")
    except OSError as exc:
        fail(f"{path} cannot be read: {exc.strerror or exc}")
    try:
        return parse_file(decode_file(data))
    except SuppressionFileError as exc:
        fail(f"{path}: {exc}; nothing was imported", code=2)


def _bad_lines(bad: list[BadLine]) -> str:
    shown = [f"  line {b.line}: {b.text!r}: {b.reason}" for b in bad[:SHOWN_BAD_LINES]]
    more = [f"  ... and {len(bad) - SHOWN_BAD_LINES} more"] if len(bad) > SHOWN_BAD_LINES else []
    return "\n".join([*shown, *more])


def import_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="One address or @domain a line (# comments), or a CSV with an email column."),
    reason: str = REASON_OPTION,
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Report invalid lines and add the rest (default: refuse the whole file)."
    ),
    json_: bool = JSON_OPTION,
) -> None:
    """Suppress every address and domain of a file: a plain list, or a CSV (comma or semicolon separated,
    UTF-8 or Windows-1252) with an `email` or `Email Address` column.

    Example: outbound suppress import unsubscribes.csv --reason unsubscribed
    """
    why = _reason(reason)
    parsed = _read(file)
    if parsed.bad and not skip_invalid:
        fail(
            f"{file}: {len(parsed.bad)} invalid lines; nothing was imported "
            f"(fix them, or pass --skip-invalid to add the rest):\n{_bad_lines(parsed.bad)}",
            code=2,
        )
    if not parsed.values and not parsed.bad:
        fail(f"{file} holds no address or @domain; nothing was imported")
    detail = f"suppress import {file.name}"
    result = run_db(settings_of(ctx), lambda db: _add(db, parsed.values, why, detail))
    _report_import(file, parsed, result, json_)


def _report_import(file: Path, parsed: ParsedFile, result: Added, json_: bool) -> None:
    if json_:
        skipped = [{"line": b.line, "value": b.text, "reason": b.reason} for b in parsed.bad]
        print_json(
            {
                "file": str(file),
                "format": parsed.format,
                "added": result.added,
                "already_suppressed": result.already,
                "duplicates_in_file": parsed.duplicates,
                "invalid_skipped": skipped,
            }
        )
        return
    console.print(
        f"Imported {file} ({parsed.format}): added {result.added}, already suppressed {result.already}, "
        f"duplicates in the file {parsed.duplicates}, invalid lines skipped {len(parsed.bad)}",
        markup=False,
    )
    if parsed.bad:
        err_console.print(f"Skipped invalid lines:\n{_bad_lines(parsed.bad)}", markup=False)


suppress_app.command("add")(add_cmd)
suppress_app.command("remove")(remove_cmd)
suppress_app.command("list")(list_cmd)
suppress_app.command("import")(import_cmd)


def register(app: typer.Typer) -> None:
    """Add the `suppress` group."""
    app.add_typer(suppress_app, name="suppress")
