"""`outbound account add|edit`: sending accounts set up from the command line (the `account` group).

An account is seed 001's three documents: `email_accounts` (server, login, status), `email_general_settings`
(sender name, signature) and `email_campaign_settings` (limits). `add` and `edit` build them from the options and
write only once the dispatcher's own typed views accept them (account_input.py); passwords are stored encrypted
(app/credentials.py). `pause`, `resume`, `disable` and `remove` are in account_status_cmds.py, `encrypt-passwords`
and `rotate-key` in account_key_cmds.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from bson import ObjectId
from rich.markup import escape

from app.cli import account_key_cmds, account_status_cmds
from app.cli.account_input import (
    ACCOUNT_FIELDS,
    CONNECTION_FIELDS,
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
from app.cli.common import console, err_console, fail, run_db, settings_of
from app.cli.imap_cmds import check_imap
from app.cli.send_cmds import check_smtp
from app.config import Settings
from app.domain.addresses import InvalidAddress, normalize_email
from app.domain.models import EmailAccount
from app.store import schema
from app.store.client import Database
from app.store.documents import get_doc, id_values

account_app = typer.Typer(
    help="Sending accounts: add, edit, pause, resume, disable, remove; encrypt and re-key their passwords.",
    no_args_is_help=True,
)

ACCOUNT_ARGUMENT = typer.Argument(..., help="The account's _id.")


async def email_owner(db: Database, email: str) -> str | None:
    """The id of the account already sending as `email` (compared normalised), if any."""
    async for doc in db[schema.EMAIL_ACCOUNTS].find({}, {"email": 1}):
        try:
            stored = normalize_email(doc.get("email"))
        except InvalidAddress:
            stored = str(doc.get("email"))
        if stored.lower() == email.lower():
            return str(doc["_id"])
    return None


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


def run_checks(settings: Settings, account: EmailAccount) -> None:
    """test-smtp, then test-imap where the mailbox is read, reporting each; exit 1 saying what to fix if one fails."""
    problems = []
    smtp = check_smtp(settings, account)
    console.print("SMTP check passed." if smtp is None else "SMTP check failed (details on stderr).")
    problems += [smtp] if smtp is not None else []
    if account.reads_inbox:
        imap = check_imap(settings, account)
        console.print("IMAP check passed." if imap is None else "IMAP check failed (details on stderr).")
        problems += [imap] if imap is not None else []
    if not problems:
        return
    for problem in problems:
        err_console.print(problem, markup=False)
    again = f"`outbound test-smtp {account.id}`" + (
        f", `outbound test-imap {account.id}`" if account.reads_inbox else ""
    )
    fail(
        escape(
            f"the account is saved, but a check failed: fix it with `outbound account edit {account.id} ...`, then "
            f"run {again}; `outbound account pause {account.id}` keeps the dispatcher off it meanwhile"
        )
    )


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


account_app.command("add")(add_cmd)
account_app.command("edit")(edit_cmd)
account_status_cmds.register(account_app)
account_key_cmds.register(account_app)


def register(app: typer.Typer) -> None:
    """Add the `account` group."""
    app.add_typer(account_app, name="account")
