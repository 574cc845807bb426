"""The checks `outbound account add` and `account edit` share: the address is no other account's, the login works.

Separate from the commands because both use them: `email_owner` refuses a second account sending as the same
address before anything is written, and `run_checks` tries the servers (test-smtp, test-imap) once the account
is saved, saying what to run to fix it.
"""

from __future__ import annotations

from rich.markup import escape

from app.cli.common import console, err_console, fail
from app.cli.imap_cmds import check_imap
from app.cli.send_cmds import check_smtp
from app.config import Settings
from app.domain.addresses import InvalidAddress, normalize_email
from app.domain.models import EmailAccount
from app.store import schema
from app.store.client import Database


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
