"""`outbound account add`: sending accounts set up from the command line (the `account` group).

An account is seed 001's three documents: `email_accounts` (server, login, status), `email_general_settings`
(sender name, signature) and `email_campaign_settings` (limits). `add` and `edit` build them from the options and
write only once the dispatcher's own typed views accept them (account_input.py); passwords are stored encrypted
(app/credentials.py). `edit` is in account_edit_cmds.py and the checks both run in account_checks.py; `pause`,
`resume`, `disable` and `remove` are in account_status_cmds.py, `encrypt-passwords` and `rotate-key` in
account_key_cmds.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from bson import ObjectId

from app.cli import account_edit_cmds, account_key_cmds, account_status_cmds

# The account's checks and the `edit` command have modules of their own; re-exported for existing callers.
from app.cli.account_checks import email_owner as email_owner
from app.cli.account_checks import run_checks as run_checks
from app.cli.account_edit_cmds import ACCOUNT_ARGUMENT as ACCOUNT_ARGUMENT
from app.cli.account_edit_cmds import edit_cmd as edit_cmd
from app.cli.account_input import (
    ACCOUNT_FIELDS,
    DAILY_LIMIT,
    DEFAULT_MAX_DAILY_SENDS,
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
from app.cli.common import console, run_db, settings_of
from app.domain.models import EmailAccount
from app.store import schema
from app.store.client import Database

account_app = typer.Typer(
    help="Sending accounts: add, edit, pause, resume, disable, remove; encrypt and re-key their passwords.",
    no_args_is_help=True,
)


def _describe(account: EmailAccount, docs: Documents) -> list[str]:
    login = account.smtp_username or "no login"
    secured = "password encrypted" if "smtp_password" in docs.account else "no password"
    inbox = (
        f"{account.imap_host}:{account.imap_port} ({account.imap_security}), folders {', '.join(account.imap_folders)}"
        if account.reads_inbox
        else "not read (no --imap-host)"
    )
    limits = docs.limits
    return [
        f"  smtp    {account.smtp_host}:{account.smtp_port} ({docs.account.get('smtp_security')}), {login}, {secured}",
        f"  inbox   {inbox}",
        f"  limits  max_daily_sends {limits.get('max_daily_sends', '-')}, "
        f"daily_limit {limits.get('daily_limit', '-')}, min_wait_time {limits.get('min_wait_time', 0)} min",
        f"  sender  {docs.general.get('sender_name') or '-'}"
        f"{', with a signature' if docs.general.get('signature') else ', no signature'}",
    ]


def _add_documents(given: Given, account_id: ObjectId, no_auth: bool) -> Documents:
    port = given.smtp_port or 587
    account: dict[str, Any] = {
        "_id": account_id,
        "smtp_port": port,
        "smtp_security": given.smtp_security or ("tls" if port == 465 else "starttls"),
        **given.part(ACCOUNT_FIELDS),
        **given.part(IMAP_FIELDS),
        "status": "active",
    }
    if no_auth:
        account.pop("smtp_username", None)
    else:
        account.setdefault("smtp_username", given.email)
    email_id = str(account_id)
    general = {"email_id": email_id, **given.part(GENERAL_FIELDS)}
    limits = {"email_id": email_id, "max_daily_sends": DEFAULT_MAX_DAILY_SENDS, **given.part(LIMIT_FIELDS)}
    return Documents(account, general, limits)


async def _insert(db: Database, docs: Documents) -> None:
    email = str(docs.account["email"])
    clash = await email_owner(db, email)
    if clash is not None:
        refuse(f"--email: an account sending as {email} exists already ({clash}); change it with `account edit`")
    # Settings first: an account found without its limits document would have no limits at all.
    await db[schema.EMAIL_GENERAL_SETTINGS].insert_one(docs.general)
    await db[schema.EMAIL_CAMPAIGN_SETTINGS].insert_one(docs.limits)
    await db[schema.EMAIL_ACCOUNTS].insert_one(docs.account)


def add_cmd(
    ctx: typer.Context,
    email: str = typer.Option(..., "--email", help="The sending address."),
    smtp_host: str = typer.Option(..., "--smtp-host", help="SMTP server host name."),
    smtp_port: int | None = SMTP_PORT,
    smtp_security: str | None = SMTP_SECURITY,
    smtp_username: str | None = SMTP_USERNAME,
    no_auth: bool = typer.Option(False, "--no-auth", help="The server takes mail without a login (a local relay)."),
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
    """Add a sending account (server, login, limits, sender name, signature), then check that it can log in
    (test-smtp, and test-imap with --imap-host) unless --no-test.

    The password is asked for (hidden, twice) unless --password-stdin or --password-env gives it, and stored
    encrypted; the IMAP login defaults to the SMTP one. A failed check keeps the account and exits 1.

    Example: printf '%s\\n' "$PW" | outbound account add --email ann@example.com --smtp-host smtp.example.com
    --imap-host imap.example.com --sender-name "Ann Lee" --max-daily-sends 40 --password-stdin
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
    docs = _add_documents(given, ObjectId(), no_auth)
    account = validate(docs)
    docs.account["email"] = account.email  # stored normalised, as the dispatcher compares it
    sources = PasswordSources(password_prompt, password_stdin, password_env, imap_password_stdin, imap_password_env)
    smtp, imap = read_passwords(sources, account.email, smtp_required=not no_auth)
    docs.account.update(seal_passwords(settings, None if no_auth else smtp, imap))
    account = validate(docs)
    run_db(settings, lambda db: _insert(db, docs))
    console.print(f"Added account {account.email} with id {account.id}", markup=False)
    for line in _describe(account, docs):
        console.print(line, markup=False)
    if not no_test:
        run_checks(settings, account)


account_app.command("add")(add_cmd)
account_edit_cmds.register(account_app)
account_status_cmds.register(account_app)
account_key_cmds.register(account_app)


def register(app: typer.Typer) -> None:
    """Add the `account` group."""
    app.add_typer(account_app, name="account")
