"""`outbound token create|list|revoke`: API tokens for scripts and the JSON API (`Authorization: Bearer`).

A token is printed once, at creation; only its hash is stored, so a lost token is revoked and replaced.
"""

from __future__ import annotations

import typer

from app.cli.audit_cmds import record_cli
from app.cli.common import (
    JSON_OPTION,
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
from app.store import api_tokens
from app.store.api_tokens import ApiToken, DuplicateTokenName
from app.store.client import Database
from app.web.auth import Role

token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)

ROLE_HELP = "What the token may do: viewer (read), operator (act on campaigns, leads, sends), admin (everything)."
NAME_MAX = 100


def parse_role(text: str) -> Role:
    """The role named on the command line; exit 2 naming the choices otherwise."""
    try:
        return Role.parse(text)
    except ValueError as exc:
        fail(f"--role: {exc}; nothing was changed", code=2)


def _name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > NAME_MAX or any(c.isspace() and c != " " for c in name):
        fail(f"--name must be 1-{NAME_MAX} characters on one line (e.g. ci-deploy); nothing was changed", code=2)
    return name


def create_cmd(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="A unique name saying who or what uses it (e.g. ci-deploy)."),
    role: str = typer.Option(..., "--role", help=ROLE_HELP),
) -> None:
    """Create an API token and print it once: store it now, it cannot be shown again.

    Example: outbound token create --name ci-deploy --role operator
    """
    chosen, label = parse_role(role), _name(name)

    async def work(db: Database) -> tuple[ApiToken, str]:
        now = now_utc()
        try:
            made = await api_tokens.create(db, label, chosen.value, now)
        except DuplicateTokenName as exc:
            fail(f"{exc}; nothing was changed")
        await record_cli(
            db, "token.create", {"token_id": made[0].id, "name": label}, now, details={"role": chosen.value}
        )
        return made

    record, token = run_db(settings_of(ctx), work)
    err_console.print(f"Created token {record.name} ({record.role}, id {record.id}). It is shown once, now:")
    console.print(token, markup=False)


def _row(t: ApiToken) -> list[str]:
    return [
        t.id,
        t.name,
        t.role,
        f"{t.prefix}...",
        fmt_time(t.created_at),
        fmt_time(t.last_used_at),
        fmt_time(t.revoked_at),
    ]


def list_cmd(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Every token with its role, prefix, last use and revocation (never the token itself).

    Example: outbound token list --json
    """
    tokens = run_db(settings_of(ctx), api_tokens.list_tokens, read_only=True)
    if as_json:
        print_json([token.to_json() for token in tokens])
        return
    if not tokens:
        console.print("No API tokens. Create one: outbound token create --name NAME --role viewer|operator|admin")
        return
    print_table("API tokens", ["id", "name", "role", "prefix", "created", "last used", "revoked"], map(_row, tokens))


def revoke_cmd(
    ctx: typer.Context, token: str = typer.Argument(..., help="The token's id or name (see `outbound token list`).")
) -> None:
    """Revoke a token: every request with it is refused from now on.

    Example: outbound token revoke ci-deploy
    """

    async def work(db: Database) -> ApiToken:
        found = await api_tokens.find(db, token)
        if found is None:
            fail(f"no token has the id or name {token!r} (see `outbound token list`); nothing was changed")
        if found.revoked_at is not None:
            fail(f"token {found.name} was revoked already, at {fmt_time(found.revoked_at)} UTC; nothing was changed")
        now = now_utc()
        revoked = await api_tokens.revoke(db, found.id, now)
        if revoked is None:  # revoked by someone else in between
            fail(f"token {found.name} was revoked already; nothing was changed")
        await record_cli(db, "token.revoke", {"token_id": revoked.id, "name": revoked.name}, now)
        return revoked

    revoked = run_db(settings_of(ctx), work)
    console.print(f"Revoked token {revoked.name} (id {revoked.id}, {revoked.role}).", markup=False)


def register(app: typer.Typer) -> None:
    """Add the `token` group."""
    token_app.command("create")(create_cmd)
    token_app.command("list")(list_cmd)
    token_app.command("revoke")(revoke_cmd)
    app.add_typer(token_app, name="token")
