"""`outbound account edit`: change what the options give on a sending account; the rest stays as it is.

Separate from `account add` (account_admin_cmds.py) because an edit is checked as part of the stored account and
writes only the fields it changes, creating a settings document the account lacks; `account add` builds all
three documents from nothing. The options and their checks are shared (account_input.py, account_checks.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from app.cli.account_checks import email_owner, run_checks
from app.cli.account_input import (
    ACCOUNT_FIELDS,
    CONNECTION_FIELDS,
    DAILY_LIMIT,
    GENERAL_FIELDS,
    IMAP_FIELDS,
    IMAP_FOLDER,
    IMAP_HOST,
    IMAP_PASSWORD_ENV,
    IMAP_PASSWORD_STDIN,
    IMAP_PORT,
    IMAP_SECURITY,
    IMAP_USERNAME,
    LIMIT_FIELDS,
    MAX_DAILY_SENDS,
    MIN_WAIT,
    NO_TEST,
    PASSWORD_ENV,
    PASSWORD_PROMPT,
    PASSWORD_STDIN,
    PROVIDER,
    SENDER_NAME,
    SIGNATURE_FILE,
    SMTP_PORT,
    SMTP_SECURITY,
    SMTP_USERNAME,
    Documents,
    Given,
    PasswordSources,
    check_given,
    read_passwords,
    read_signature,
    refuse,
    seal_passwords,
    validate,
)
from app.cli.common import console, fail, run_db, settings_of
from app.domain.models import EmailAccount
from app.store import schema
from app.store.client import Database
from app.store.documents import get_doc, id_values

ACCOUNT_ARGUMENT = typer.Argument(..., help="The account's _id.")


def _changes_text(stored: dict[str, Any], changes: Documents) -> list[str]:
    lines = [
        f"  {name}: {stored.get(name)!r} -> {value!r}"
        for name, value in changes.account.items()
        if not name.endswith("_password")
    ]
    lines += [f"  {name} replaced (encrypted)" for name in changes.account if name.endswith("_password")]
    lines += [f"  {name} -> {value!r}" for name, value in {**changes.general, **changes.limits}.items()]
    return [line if not line.startswith("  signature ->") else "  signature replaced" for line in lines]


async def _settings_update(db: Database, collection: str, email_id: str, changes: dict[str, Any]) -> None:
    """Set `changes` on the account's settings documents, creating one when it has none."""
    if not changes:
        return
    result = await db[collection].update_many({"email_id": {"$in": id_values(email_id)}}, {"$set": changes})
    if result.matched_count == 0:
        await db[collection].insert_one({"email_id": email_id, **changes})


async def _apply_edit(db: Database, stored: dict[str, Any], changes: Documents) -> None:
    email = changes.account.get("email")
    if email is not None:
        clash = await email_owner(db, str(email))
        if clash is not None and clash != str(stored["_id"]):
            refuse(f"--email: another account sends as {email} already ({clash})")
    key = str(stored["_id"])
    await _settings_update(db, schema.EMAIL_CAMPAIGN_SETTINGS, key, changes.limits)
    await _settings_update(db, schema.EMAIL_GENERAL_SETTINGS, key, changes.general)
    if changes.account:
        await db[schema.EMAIL_ACCOUNTS].update_one({"_id": stored["_id"]}, {"$set": changes.account})


def _checked_edit(stored: dict[str, Any], given: Given) -> tuple[EmailAccount, Documents]:
    """The changes the options make, checked as part of the stored account."""
    key = str(stored["_id"])
    changes = Documents(
        {**given.part(ACCOUNT_FIELDS), **given.part(IMAP_FIELDS)}, given.part(GENERAL_FIELDS), given.part(LIMIT_FIELDS)
    )
    merged = Documents(
        {**stored, **changes.account}, {"email_id": key, **changes.general}, {"email_id": key, **changes.limits}
    )
    account = validate(merged)
    if "email" in changes.account:
        changes.account["email"] = account.email
    return account, changes


def edit_cmd(
    ctx: typer.Context,
    account_id: str = ACCOUNT_ARGUMENT,
    email: str | None = typer.Option(None, "--email", help="A new sending address."),
    smtp_host: str | None = typer.Option(None, "--smtp-host", help="SMTP server host name."),
    smtp_port: int | None = SMTP_PORT,
    smtp_security: str | None = SMTP_SECURITY,
    smtp_username: str | None = SMTP_USERNAME,
    imap_host: str | None = IMAP_HOST,
    imap_port: int | None = IMAP_PORT,
    imap_security: str | None = IMAP_SECURITY,
    imap_username: str | None = IMAP_USERNAME,
    imap_folder: list[str] | None = IMAP_FOLDER,
    sender_name: str | None = SENDER_NAME,
    signature_file: Path | None = SIGNATURE_FILE,
    max_daily_sends: int | None = MAX_DAILY_SENDS,
    daily_limit: int | None = DAILY_LIMIT,
    min_wait: float | None = MIN_WAIT,
    provider: str | None = PROVIDER,
    password_prompt: bool = PASSWORD_PROMPT,
    password_stdin: bool = PASSWORD_STDIN,
    password_env: str | None = PASSWORD_ENV,
    imap_password_stdin: bool = IMAP_PASSWORD_STDIN,
    imap_password_env: str | None = IMAP_PASSWORD_ENV,
    no_test: bool = NO_TEST,
) -> None:
    """Change what the options give; the rest stays as it is. A new password comes from --password-prompt,
    --password-stdin or --password-env. When the server, login or password changed, the checks run again
    unless --no-test.

    Example: outbound account edit 665f0e... --max-daily-sends 80 --imap-folder INBOX --imap-folder Junk
    """
    settings = settings_of(ctx)
    given = Given(
        email=email,
        smtp_host=smtp_host,
        smtp_port=smtp_port,
        smtp_security=smtp_security,
        smtp_username=smtp_username,
        provider=provider,
        imap_host=imap_host,
        imap_port=imap_port,
        imap_security=imap_security,
        imap_username=imap_username,
        imap_folders=imap_folder or None,
        sender_name=sender_name,
        signature=read_signature(signature_file),
        max_daily_sends=max_daily_sends,
        daily_limit=daily_limit,
        min_wait_time=min_wait,
    )
    check_given(given)
    sources = PasswordSources(password_prompt, password_stdin, password_env, imap_password_stdin, imap_password_env)
    if not given.names() and not (sources.smtp_given or sources.imap_given):
        fail("nothing to change: give the options to change (see `outbound account edit --help`)", code=2)
    stored = run_db(settings, lambda db: get_doc(db[schema.EMAIL_ACCOUNTS], "email account", account_id))
    account, changes = _checked_edit(stored, given)
    smtp, imap = read_passwords(sources, account.email, smtp_required=False)
    changes.account.update(seal_passwords(settings, smtp, imap))
    run_db(settings, lambda db: _apply_edit(db, stored, changes))
    console.print(f"Updated account {account.email} ({account.id}):", markup=False)
    for line in _changes_text(stored, changes):
        console.print(line, markup=False)
    reconnects = bool(CONNECTION_FIELDS & set(changes.account)) or any(k.endswith("_password") for k in changes.account)
    if reconnects and not no_test:
        run_checks(settings, EmailAccount.from_doc({**stored, **changes.account}))


def register(account_app: typer.Typer) -> None:
    """Add `edit` to the `account` group."""
    account_app.command("edit")(edit_cmd)
