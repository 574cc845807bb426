"""`test-imap`: check that Outbound can read an account's mailbox, step by step, changing nothing in it."""

from __future__ import annotations

import typer
from rich.markup import escape

from app.cli.common import console, fail, run_db, settings_of
from app.config import Settings
from app.credentials import CredentialsError, credentials_for
from app.domain.accounts import DEFAULT_IMAP_TIMEOUT
from app.domain.models import EmailAccount
from app.store import schema
from app.store.documents import get_model
from app.transport.imap import CheckStep, check


def _print_step(step: CheckStep) -> None:
    console.print(f"  {'✓' if step.ok else '✗'} {step.name}: {step.detail}", markup=False)


def test_imap(
    ctx: typer.Context,
    account_id: str = typer.Argument(..., help="The email account's id."),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0.1, help=f"Seconds for connecting and each command (default {DEFAULT_IMAP_TIMEOUT:g})."
    ),
) -> None:
    """Connect to an account's IMAP server, secure the connection, log in, list the folders and open each folder
    the account reads (read-only), reporting each step and what to fix.

    Reads no message and changes nothing. Example: outbound test-imap 665f0e...
    """
    settings = settings_of(ctx)
    account = run_db(
        settings,
        lambda db: get_model(db[schema.EMAIL_ACCOUNTS], "email account", account_id, EmailAccount.from_doc),
        read_only=True,
    )
    if not account.reads_inbox:
        fail(
            escape(
                f"account {account.email} ({account.id}) has no imap_host, so its inbox is not read: "
                "set imap_host (and imap_port, imap_security) on the account"
            )
        )
    if account.status != "active":
        console.print(f"note: the account's status is {account.status}; the dispatcher does not use it", markup=False)
    problem = check_imap(settings, account, timeout)
    if problem is not None:
        fail(escape(problem))
    console.print("IMAP check passed: Outbound can read the account's mailbox (nothing in it was changed).")


def check_imap(settings: Settings, account: EmailAccount, timeout: float | None = None) -> str | None:
    """Connect, secure, log in, list and examine the folders of an account with imap_host (its password revealed
    just for this), printing each step; None when it passed, else the failed step and its fix. Changes nothing."""
    imap = account.imap_settings(timeout or DEFAULT_IMAP_TIMEOUT)
    console.print(
        f"Testing {account.email} ({account.id}) via IMAP {imap.address}, security {imap.security}, "
        f"folders {', '.join(imap.folders)}",
        markup=False,
    )
    try:
        imap = credentials_for(settings).for_imap(account, imap.timeout)
    except CredentialsError as exc:
        return f"IMAP check failed before connecting: {exc}"
    steps = check(imap, on_step=_print_step)
    failed = next((step for step in steps if not step.ok), None)
    if failed is not None:
        return f"IMAP check failed at {failed.name}: {failed.detail}\nhint: {failed.hint}"
    return None


def register(app: typer.Typer) -> None:
    """Add `test-imap`."""
    app.command("test-imap")(test_imap)
