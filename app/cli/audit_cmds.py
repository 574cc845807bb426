"""`outbound audit list`: the audit log, newest first; and how the admin commands write to it.

Commands that change who may do what (tokens, users) are audited like the API's actions, with the actor
`cli` and the operating-system user who ran them.
"""

from __future__ import annotations

import getpass
import socket
from datetime import datetime
from typing import Any

import typer

from app.cli.common import JSON_OPTION, console, fmt_time, print_json, print_table, run_db, settings_of
from app.store import audit
from app.store.client import Database

audit_app = typer.Typer(help="The audit log: who did what, when and from where.", no_args_is_help=True)


def cli_actor() -> audit.Actor:
    """The actor of a command: `cli`, named after the OS user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return audit.Actor(kind="cli", id=user, name=user)


async def record_cli(
    db: Database, action: str, target: dict[str, str], now: datetime, *, details: dict[str, Any] | None = None
) -> None:
    """Audit one action of a command, from this host."""
    entry = audit.Entry(
        actor=cli_actor(),
        action=action,
        target=target,
        outcome="ok",
        at=now,
        client_address=socket.gethostname(),
        user_agent="outbound-cli",
        details=details,
    )
    await audit.record(db, entry)


def _row(doc: dict[str, Any]) -> list[Any]:
    actor = doc.get("actor", {})
    target = ", ".join(f"{k}={v}" for k, v in doc.get("target", {}).items())
    return [
        fmt_time(doc.get("at")),
        f"{actor.get('kind')}:{actor.get('name')}",
        doc.get("action"),
        target or "-",
        doc.get("outcome"),
        doc.get("client", {}).get("address"),
    ]


def list_cmd(
    ctx: typer.Context,
    limit: int = typer.Option(50, "--limit", min=1, max=audit.MAX_PAGE, help="Show at most this many entries."),
    actor: str | None = typer.Option(None, "--actor", help="Only this actor (token or user name, OS user, id)."),
    action: str | None = typer.Option(None, "--action", help="Only this action (e.g. login, token.create)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The newest audit entries.

    Example: outbound audit list --action login --limit 20
    """

    async def work(db: Database) -> list[dict[str, Any]]:
        return await audit.list_entries(db, limit=limit, actor=actor, action=action)

    docs = run_db(settings_of(ctx), work, read_only=True)
    if as_json:
        print_json([audit.entry_json(doc) for doc in docs])
        return
    if not docs:
        console.print("No audit entries match.")
        return
    print_table(
        "Audit log (newest first)", ["at (UTC)", "actor", "action", "target", "outcome", "from"], map(_row, docs)
    )


def register(app: typer.Typer) -> None:
    """Add the `audit` group."""
    audit_app.command("list")(list_cmd)
    app.add_typer(audit_app, name="audit")
