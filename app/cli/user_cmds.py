"""`outbound user add|list|role|remove|passwd`: who may sign in to the dashboard, and with which role.

Passwords are asked twice without echo, or read from standard input with `--password-stdin` (scripts), and
stored only as argon2 hashes. Removing a user or changing a password ends that user's sessions at once.
"""

from __future__ import annotations

import sys

import typer

from app.cli.audit_cmds import record_cli
from app.cli.common import (
    JSON_OPTION,
    YES_OPTION,
    confirm,
    console,
    fail,
    fmt_time,
    now_utc,
    print_json,
    print_table,
    run_db,
    settings_of,
)
from app.cli.token_cmds import ROLE_HELP, parse_role
from app.domain.addresses import InvalidAddress, normalize_email
from app.store import sessions, users
from app.store.client import Database
from app.store.users import DuplicateUser, User
from app.web.passwords import WeakPassword, check_new, hash_password

user_app = typer.Typer(help="Dashboard users: add, list, role, remove, passwd.", no_args_is_help=True)

EMAIL_ARGUMENT = typer.Argument(..., help="The user's email (see `outbound user list`).")
STDIN_OPTION = typer.Option(
    False, "--password-stdin", help="Read the password from the first line of standard input instead of asking."
)


def _email(raw: str) -> str:
    try:
        return users.normalize_email(normalize_email(raw))
    except InvalidAddress as exc:
        fail(f"--email: {exc}; nothing was changed", code=2)


def read_password(from_stdin: bool) -> str:
    """A new password, checked: from stdin's first line, or asked twice without echo."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return check_new(password)
    except WeakPassword as exc:
        fail(f"{exc}; nothing was changed", code=2)


async def _user(db: Database, email: str) -> User:
    found = await users.find_by_email(db, email)
    if found is None:
        fail(f"no user {email} (see `outbound user list`); nothing was changed")
    return found


def add_cmd(
    ctx: typer.Context,
    email: str = typer.Option(..., "--email", help="The address the user signs in with."),
    role: str = typer.Option(..., "--role", help=ROLE_HELP),
    password_stdin: bool = STDIN_OPTION,
) -> None:
    """Add a dashboard user (the password is asked twice, at least 12 characters).

    Example: outbound user add --email ann@example.com --role operator
    """
    address, chosen = _email(email), parse_role(role)
    password_hash = hash_password(read_password(password_stdin))

    async def work(db: Database) -> User:
        now = now_utc()
        try:
            user = await users.add(db, address, chosen.value, password_hash, now)
        except DuplicateUser as exc:
            fail(f"{exc}; nothing was changed")
        await record_cli(db, "user.add", {"user_id": user.id, "email": user.email}, now, details={"role": chosen.value})
        return user

    user = run_db(settings_of(ctx), work)
    console.print(f"Added {user.email} ({user.role}); they can sign in at /login.", markup=False)


def list_cmd(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Every dashboard user with their role (never a password or its hash).

    Example: outbound user list --json
    """
    found = run_db(settings_of(ctx), users.list_users, read_only=True)
    if as_json:
        print_json([user.to_json() for user in found])
        return
    if not found:
        console.print("No users. Add one: outbound user add --email EMAIL --role viewer|operator|admin")
        return
    rows = ([u.email, u.role, fmt_time(u.created_at), fmt_time(u.password_changed_at), u.id] for u in found)
    print_table("Dashboard users", ["email", "role", "added", "password changed", "id"], rows)


def role_cmd(
    ctx: typer.Context, email: str = EMAIL_ARGUMENT, role: str = typer.Option(..., "--role", help=ROLE_HELP)
) -> None:
    """Change a user's role; it applies from their next request (their sessions stay open).

    Example: outbound user role ann@example.com --role viewer
    """
    address, chosen = _email(email), parse_role(role)

    async def work(db: Database) -> tuple[str, str]:
        user = await _user(db, address)
        if user.role == chosen.value:
            return user.role, user.role
        if not await users.set_role(db, user.id, chosen.value, expected=user.role):
            fail(f"{address} was changed or removed meanwhile (see `outbound user list`); nothing was changed")
        target = {"user_id": user.id, "email": user.email}
        await record_cli(db, "user.role", target, now_utc(), details={"before": user.role, "after": chosen.value})
        return user.role, chosen.value

    before, after = run_db(settings_of(ctx), work)
    if before == after:
        console.print(f"{address} is already {after}; nothing was changed.", markup=False)
    else:
        console.print(f"{address} is now {after} (was {before}), from their next request.", markup=False)


def remove_cmd(ctx: typer.Context, email: str = EMAIL_ARGUMENT, yes: bool = YES_OPTION) -> None:
    """Remove a user; their open sessions end at once.

    Example: outbound user remove ann@example.com --yes
    """
    address = _email(email)

    async def work(db: Database) -> int:
        user = await _user(db, address)
        confirm(f"Remove the dashboard user {user.email} ({user.role})?", yes)
        await users.remove(db, user.id)
        ended = await sessions.delete_for_user(db, user.id)
        await record_cli(db, "user.remove", {"user_id": user.id, "email": user.email}, now_utc())
        return ended

    ended = run_db(settings_of(ctx), work)
    console.print(f"Removed {address}; {ended} open session(s) ended.", markup=False)


def passwd_cmd(ctx: typer.Context, email: str = EMAIL_ARGUMENT, password_stdin: bool = STDIN_OPTION) -> None:
    """Set a user's password; their open sessions end, so they sign in again with the new one.

    Example: outbound user passwd ann@example.com
    """
    address = _email(email)

    # An unknown user fails before the password is asked for.
    run_db(settings_of(ctx), lambda db: _user(db, address), read_only=True)
    password_hash = hash_password(read_password(password_stdin))

    async def change(db: Database) -> int:
        user = await _user(db, address)
        now = now_utc()
        await users.set_password_hash(db, user.id, password_hash, now, changed=True)
        ended = await sessions.delete_for_user(db, user.id)
        await record_cli(db, "user.passwd", {"user_id": user.id, "email": user.email}, now)
        return ended

    ended = run_db(settings_of(ctx), change)
    console.print(f"Changed the password of {address}; {ended} open session(s) ended.", markup=False)


def register(app: typer.Typer) -> None:
    """Add the `user` group."""
    user_app.command("add")(add_cmd)
    user_app.command("list")(list_cmd)
    user_app.command("role")(role_cmd)
    user_app.command("remove")(remove_cmd)
    user_app.command("passwd")(passwd_cmd)
    app.add_typer(user_app, name="user")
