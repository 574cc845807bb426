"""`outbound account encrypt-passwords` and `account rotate-key`: the stored passwords' encryption.

Both read every account's `smtp_password` and `imap_password` and write each changed value with a filter on the
value read, so an `account edit` racing with them is never overwritten (its account is counted as changed
meanwhile and left as the edit made it). Keys are never printed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from cryptography.fernet import InvalidToken
from rich.markup import escape

from app.cli.account_input import sealing
from app.cli.common import YES_OPTION, confirm, console, err_console, fail, run_db, settings_of
from app.config import Settings
from app.credentials import (
    ENV_VARIABLE,
    Credentials,
    CredentialsError,
    check_key,
    credentials_for,
    generate_key,
    is_sealed,
    key_file_path,
    read_key_file,
    write_key_file,
)
from app.store import schema
from app.store.client import Database

PASSWORD_FIELDS = ("smtp_password", "imap_password")


@dataclass
class Conversion:
    """What a pass over the accounts' passwords did."""

    changed: int = 0  # passwords written
    accounts: int = 0  # accounts with a password written
    untouched: int = 0  # passwords left as they were (already in the wanted form)
    raced: list[str] = field(default_factory=list)  # accounts edited meanwhile
    unreadable: list[str] = field(default_factory=list)  # accounts whose sealed password no key reads


Convert = Callable[[str], str | None]  # stored value -> new value (None: leave it); InvalidToken: unreadable


async def _convert_all(
    db: Database,
    convert: Convert,
    question: Callable[[int, int], str],
    yes: bool,
    prepare: Callable[[], None] | None = None,
) -> Conversion:
    """Apply `convert` to every stored password, after confirming `question(passwords, accounts)` and then
    calling `prepare` (nothing is done when no password would change)."""
    coll = db[schema.EMAIL_ACCOUNTS]
    done = Conversion()
    planned: list[tuple[dict[str, Any], dict[str, str]]] = []
    async for doc in coll.find({}, {"email": 1, **dict.fromkeys(PASSWORD_FIELDS, 1)}):
        new = _converted(doc, convert, done)
        if new:
            planned.append((doc, new))
    if not planned:
        return done
    confirm(question(sum(len(new) for _, new in planned), len(planned)), yes)
    if prepare is not None:
        prepare()
    for doc, new in planned:
        fenced = {"_id": doc["_id"], **{name: doc[name] for name in new}}
        result = await coll.update_one(fenced, {"$set": new})
        if result.matched_count == 0:
            done.raced.append(_name(doc))
            continue
        done.changed += len(new)
        done.accounts += 1
    return done


def _converted(doc: dict[str, Any], convert: Convert, done: Conversion) -> dict[str, str]:
    new: dict[str, str] = {}
    for name in PASSWORD_FIELDS:
        stored = doc.get(name)
        if not isinstance(stored, str) or not stored:
            continue
        try:
            value = convert(stored)
        except InvalidToken:
            done.unreadable.append(f"{_name(doc)} {name}")
            continue
        if value is None:
            done.untouched += 1
        else:
            new[name] = value
    return new


def _name(doc: dict[str, Any]) -> str:
    return f"{doc.get('email')} ({doc['_id']})"


def _report_leftovers(done: Conversion) -> None:
    if done.raced:
        err_console.print(
            f"changed while this ran, left as they are (run again): {', '.join(done.raced)}", markup=False
        )
    if done.unreadable:
        err_console.print(
            "no configured key reads these, left as they are (set them again with `outbound account edit <id> "
            f"--password-prompt`): {', '.join(done.unreadable)}",
            markup=False,
        )


def encrypt_passwords_cmd(ctx: typer.Context, yes: bool = YES_OPTION) -> None:
    """Encrypt every plain-text password (SMTP and IMAP) stored by other tools, with the credentials key
    (OUTBOUND_CREDENTIALS_KEY, or the key file under OUTBOUND_HOME, created now if missing).

    Every machine that runs Outbound needs that key before this runs, or its dispatchers can no longer log in.
    Example: outbound account encrypt-passwords --yes
    """
    settings = settings_of(ctx)
    credentials = sealing(settings)

    def seal(stored: str) -> str | None:
        return None if is_sealed(stored) else credentials.seal(stored)

    def question(passwords: int, accounts: int) -> str:
        return (
            f"Encrypt {passwords} plain-text passwords of {accounts} accounts with the key from "
            f"{credentials.origin}? Every dispatcher must have this key."
        )

    done = run_db(settings, lambda db: _convert_all(db, seal, question, yes))
    console.print(
        f"Encrypted {done.changed} passwords of {done.accounts} accounts with the key from {credentials.origin}; "
        f"{done.untouched} were encrypted already",
        markup=False,
    )
    _report_leftovers(done)


def _new_key(settings: Settings, new_key_file: Path | None, generate: bool) -> str:
    if generate == (new_key_file is not None):
        fail("give exactly one of --new-key-file F and --generate", code=2)
    if new_key_file is None:
        if settings.credentials_key:
            fail(
                f"--generate writes the new key to the key file, but this machine reads {ENV_VARIABLE}: put a new "
                "key in a file (mode 0600), list it first in that variable on every machine, and pass "
                "--new-key-file",
                code=2,
            )
        return generate_key()
    try:
        return check_key(read_key_file(new_key_file)[0], str(new_key_file))
    except FileNotFoundError:
        fail(f"--new-key-file: {escape(str(new_key_file))}: no such file", code=2)
    except CredentialsError as exc:
        fail(escape(f"--new-key-file: {exc}"), code=2)


def _next_steps(settings: Settings, current: Credentials, old_keys: int) -> str:
    if current.origin == ENV_VARIABLE:
        return (
            f"{ENV_VARIABLE} must list the new key first on every machine (new,old while any process may still "
            "hold only the old key); once every dispatcher has restarted with it, remove the old key."
        )
    return (
        f"{key_file_path(settings)} now holds the new key first and the {old_keys} old one(s) after it; processes "
        "on this machine read it again at their next login. Copy it to every other machine running Outbound; "
        "once all have it, delete the old lines."
    )


def rotate_key_cmd(
    ctx: typer.Context,
    new_key_file: Path | None = typer.Option(
        None, "--new-key-file", help="A file (mode 0600) holding the new Fernet key on its first line."
    ),
    generate: bool = typer.Option(False, "--generate", help="Make the new key and put it first in the key file."),
    yes: bool = YES_OPTION,
) -> None:
    """Re-encrypt every stored password with a new key; the old keys still read them meanwhile (MultiFernet).

    Roll the new key out first: on every machine running Outbound, list it first and keep the old one
    (OUTBOUND_CREDENTIALS_KEY=<new>,<old>, or the key file with the new key on its first line), restart the
    dispatchers, then run this once; remove the old key everywhere afterwards. A dispatcher without the new key
    takes the accounts out of rotation (`account resume` brings them back). --generate suits one machine with
    the key file. Example: outbound account rotate-key --new-key-file /etc/outbound/new.key --yes
    """
    settings = settings_of(ctx)
    current = credentials_for(settings)
    if not current.keys:
        fail(escape(f"no current key to rotate from: {current.problem}"), code=2)
    new = _new_key(settings, new_key_file, generate)
    old = [key for key in current.keys if key != new]
    rotating = Credentials([new, *old], origin=current.origin)

    def reseal(stored: str) -> str | None:
        return rotating.reseal(stored) if is_sealed(stored) else None

    def question(passwords: int, accounts: int) -> str:
        return (
            f"Re-encrypt {passwords} passwords of {accounts} accounts with the new key? Every dispatcher must "
            "have the new key already, or it takes these accounts out of rotation."
        )

    def install() -> None:
        # Before any password needs the new key, so a crash midway leaves every password readable.
        if current.origin != ENV_VARIABLE:
            write_key_file(key_file_path(settings), [new, *old])

    done = run_db(settings, lambda db: _convert_all(db, reseal, question, yes, install))
    if not done.changed and not done.unreadable and not done.raced:
        console.print("No encrypted password is stored: nothing to re-encrypt, and the key is unchanged.")
        return
    console.print(
        f"Re-encrypted {done.changed} passwords of {done.accounts} accounts with the new key; "
        f"{done.untouched} plain-text passwords left (`outbound account encrypt-passwords` encrypts them)",
        markup=False,
    )
    _report_leftovers(done)
    console.print(_next_steps(settings, current, len(old)), markup=False)


def register(account_app: typer.Typer) -> None:
    """Add `encrypt-passwords` and `rotate-key` to the `account` group."""
    account_app.command("encrypt-passwords")(encrypt_passwords_cmd)
    account_app.command("rotate-key")(rotate_key_cmd)
