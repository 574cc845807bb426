"""What every command shares: settings from the context, running async work, the clock, errors and output."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import typer
from bson import ObjectId
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError
from rich.console import Console
from rich.table import Table

from app.config import ConfigError, Settings
from app.domain.models import InvalidDocument
from app.logging import get_logger, renders_json
from app.store.client import Database, connect, hosts_of, unreachable_reason
from app.store.documents import NotFound
from app.store.embedded import EmbeddedError
from app.store.schema import ensure_schema

T = TypeVar("T")

# Piped output (health checks, grep, log files) must not cut ids to fit an 80-column default.
_PIPE_WIDTH = None if sys.stdout.isatty() else 250
console = Console(highlight=False, soft_wrap=True, width=_PIPE_WIDTH)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=_PIPE_WIDTH)

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
CAMPAIGN_ARGUMENT = typer.Argument(..., help="Campaign _id.")
LEAD_ARGUMENT = typer.Argument(..., help="Lead _id.")


def now_utc() -> datetime:
    """The one clock read of a command: everything it does takes `now` from here."""
    return datetime.now(UTC)


def settings_of(ctx: typer.Context) -> Settings:
    """The settings loaded once by the root callback."""
    root = ctx.find_root()
    settings = root.obj
    if not isinstance(settings, Settings):
        raise RuntimeError("settings were not loaded by the root command")
    return settings


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an actionable error to stderr and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def unreachable(settings: Settings, exc: Exception) -> NoReturn:
    """One line saying which database could not be reached, why, and what to check (as a JSON log line when
    the logs are JSON); exit 1."""
    reason = unreachable_reason(str(exc))
    if settings.uses_embedded:
        where, check = "the embedded database", "run `outbound db status`, or `outbound db stop` and try again"
        hosts = "127.0.0.1"
    else:
        hosts = hosts_of(settings.mongo_uri or "")
        where = f"MongoDB at {hosts} (MONGO_URI)"
        check = (
            "check that the server is running and reachable from this machine, and MONGO_URI's host, port, TLS "
            "options and credentials (a cloud cluster may also need this machine's address on its access list)"
        )
    message = f"cannot reach {where} within {settings.db_timeout:g} s (OUTBOUND_DB_TIMEOUT): {reason}; {check}"
    if renders_json():
        get_logger().error("db.unreachable", hosts=hosts, error=reason, timeout_s=settings.db_timeout, hint=check)
        raise typer.Exit(1)
    fail(message)


def run_db(settings: Settings, work: Callable[[Database], Awaitable[T]], *, read_only: bool = False) -> T:
    """Connect (starting the embedded server when MONGO_URI is unset), ensure the schema, run `work`.

    A command that only reads passes `read_only=True`: the schema is then left as it is, so the database is not
    created and no collection or index is built (on a production database an index build is not harmless).
    `work` must then only read; a missing collection reads as empty, and `schema_checks.missing_indexes` says what a
    writing command would build.
    """

    async def main() -> T:
        async with connect(settings) as db:
            if not read_only:
                await ensure_schema(db)
            return await work(db)

    try:
        return asyncio.run(main())
    except NotFound as exc:
        fail(str(exc))
    except InvalidDocument as exc:
        fail(f"malformed document: {exc}")
    except (ConfigError, EmbeddedError) as exc:
        fail(str(exc), code=2)
    except ServerSelectionTimeoutError as exc:
        unreachable(settings, exc)
    except PyMongoError as exc:
        where = "the embedded database" if settings.uses_embedded else "MONGO_URI"
        fail(f"database error ({where}): {exc}")


def to_jsonable(value: Any) -> Any:
    """Convert BSON values (ObjectId, datetime) for --json output."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(data: Any) -> None:
    """Write `data` as JSON on stdout (one document, indented)."""
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def fmt_time(value: datetime | None) -> str:
    """A compact UTC time for tables."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, console: Console = console
) -> None:
    """Print a Rich table (on stdout, or the console given)."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    console.print(table)


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive change unless --yes; exit 1 on no (or when there is no terminal)."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Refusing without confirmation: pass --yes to proceed.")
    if not typer.confirm(question, default=False):
        fail("aborted; nothing was changed")


@dataclass
class Skipped:
    """Malformed documents met while reading: reported with the output instead of crashing the command."""

    problems: list[InvalidDocument] = field(default_factory=list)

    def add(self, exc: InvalidDocument) -> None:
        """Remember one malformed document (the `on_invalid` callback of store.iter_valid)."""
        self.problems.append(exc)

    def as_json(self) -> list[dict[str, str]]:
        """The problems as JSON objects: collection, id, field, reason."""
        return [
            {"collection": p.collection, "id": str(p.doc_id), "field": p.field, "reason": p.reason}
            for p in self.problems
        ]

    def report(self) -> None:
        """Print one warning line per malformed document on stderr."""
        for p in self.problems:
            err_console.print(
                f"[yellow]skipped malformed document[/] {p.collection} {p.doc_id}: field '{p.field}' {p.reason}"
            )


def emit(json_: bool, payload: Mapping[str, Any], skipped: Skipped, render: Callable[[], None]) -> None:
    """Print `payload` as JSON (with the skipped documents) or render tables and report skips on stderr."""
    if json_:
        print_json({**payload, "invalid_documents": skipped.as_json()})
        return
    render()
    skipped.report()
