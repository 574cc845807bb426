"""`outbound demo seed`: demo campaigns, accounts and leads for trying Outbound against a local SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from app.cli.common import JSON_OPTION, console, print_json, print_table, run_db, settings_of
from app.demo_data import DEMO_SMTP_PORT
from app.demo_seed import seed_demo
from app.store.client import Database

demo_app = typer.Typer(help="Demo data for trying Outbound locally.", no_args_is_help=True)


@demo_app.command("seed")
def demo_seed(
    ctx: typer.Context,
    reset: bool = typer.Option(False, "--reset", help="Delete the demo's documents (and their sends) first."),
    smtp_port: int = typer.Option(
        DEMO_SMTP_PORT, "--smtp-port", min=1, max=65535, help="Port of the local SMTP server the accounts use."
    ),
    json_: bool = JSON_OPTION,
) -> None:
    """Create (or restore) 3 demo campaigns, 5 accounts on 127.0.0.1 and ~40 leads. Safe to run again.

    Example: outbound demo seed --reset --smtp-port 2525
    """
    settings = settings_of(ctx)

    async def work(db: Database) -> dict[str, Any]:
        return await seed_demo(db, datetime.now(UTC), smtp_port=smtp_port, reset=reset)

    result = run_db(settings, work)
    if json_:
        print_json(result)
        return
    if reset:
        console.print(f"Reset: deleted {sum(result['deleted'].values())} demo documents.")
    print_table(
        "Demo campaigns",
        ("id", "name", "status", "steps", "leads", "recipients"),
        ((c["id"], c["name"], c["status"], c["steps"], c["leads"], c["recipients"]) for c in result["campaigns"]),
    )
    print_table(
        f"Demo accounts (SMTP {result['smtp']}, no TLS)",
        ("id", "email"),
        ((a["id"], a["email"]) for a in result["accounts"]),
    )
    new = sum(result["created"].values())
    console.print(f"{new} documents created, {sum(result['documents'].values()) - new} already present.")


def register(app: typer.Typer) -> None:
    """Add the `demo` group."""
    app.add_typer(demo_app, name="demo")
