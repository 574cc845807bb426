"""`outbound db status|stop`: the embedded local database."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from app.cli.common import JSON_OPTION, console, fail, print_json, settings_of
from app.config import Settings
from app.store import embedded, schema
from app.store.client import make_client

db_app = typer.Typer(help="Inspect or stop the embedded local database.", no_args_is_help=True)


async def _counts(uri: str, db_name: str) -> dict[str, int]:
    client = make_client(uri, serverSelectionTimeoutMS=5000)
    try:
        db = client[db_name]
        return {name: await db[name].estimated_document_count() for name in schema.ALL_COLLECTIONS}
    finally:
        await client.close()


def _status(settings: Settings) -> dict[str, Any]:
    if not settings.uses_embedded:
        return {"mode": "external", "mongo_uri_set": True, "db_name": settings.db_name}
    info = embedded.status(settings.home)
    result: dict[str, Any] = {"mode": "embedded", "home": str(settings.home), "running": info is not None}
    if info is not None:
        result.update(pid=info.pid, address=f"{info.host}:{info.port}", uri=info.uri)
        result.update(storage_path=info.storage_path, log_path=info.log_path, db_name=settings.db_name)
        result["collections"] = asyncio.run(_counts(info.uri, settings.db_name))
    return result


@db_app.command("status")
def db_status(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """Say where the database is and what it holds.

    Example: outbound db status --json
    """
    settings = settings_of(ctx)
    try:
        result = _status(settings)
    except Exception as exc:  # a status command reports, it does not crash
        fail(f"could not read the database status: {exc}")
    if json_:
        print_json(result)
        return
    if result["mode"] == "external":
        console.print(f"Using MONGO_URI (database [bold]{settings.db_name}[/]); no local server is managed.")
        return
    if not result["running"]:
        console.print(f"Embedded database: not running (home {settings.home}). Any command starts it.")
        return
    console.print(f"Embedded database running: pid {result['pid']} at {result['address']}")
    console.print(f"  data: {result['storage_path']}\n  log:  {result['log_path']}")
    console.print(f"  database {settings.db_name}:")
    for name, count in result["collections"].items():
        console.print(f"    {name:<26} {count:>10,}")


@db_app.command("stop")
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded database server (data is kept; the next command starts it again).

    Example: outbound db stop
    """
    settings = settings_of(ctx)
    if not settings.uses_embedded:
        fail("MONGO_URI is set: Outbound does not manage that server, so there is nothing to stop")
    info = embedded.stop(settings.home)
    if info is None:
        console.print("Embedded database was not running.")
    else:
        console.print(f"Stopped embedded database (pid {info.pid}, {info.host}:{info.port}).")


def register(app: typer.Typer) -> None:
    """Add the `db` group."""
    app.add_typer(db_app, name="db")
