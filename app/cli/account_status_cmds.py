"""`outbound account pause|resume|disable|remove`: an account's status, and taking it away.

Status changes are written only if the status is still the one read, so a dispatcher taking the account out of
rotation meanwhile is never silently overwritten. `remove` is refused while the account has reservations open
in `account_usage` or `uncertain` sends in the ledger (they still need it to be settled), unless --force.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import typer
from rich.markup import escape

from app.cli.common import YES_OPTION, confirm, console, err_console, fail, now_utc, run_db, settings_of
from app.ops.accounts import AccountStatusChange, set_account_status
from app.ops.errors import OpError
from app.store import schema
from app.store.client import Database
from app.store.documents import get_doc, id_values
from app.store.reclaim import records

ACCOUNT_ARGUMENT = typer.Argument(..., help="The account's _id.")


async def _set_status(db: Database, account_id: str, status: str) -> AccountStatusChange:
    try:
        return await set_account_status(db, account_id, status, now_utc())
    except OpError as exc:
        fail(exc.message)


def _status_cmd(ctx: typer.Context, account_id: str, status: str, verb: str) -> None:
    change = run_db(settings_of(ctx), lambda db: _set_status(db, account_id, status))
    name = f"{change.email} ({change.account_id})"
    if change.before == "auth_failed":
        console.print(
            f"It was out of rotation after a failed login: {change.disabled_reason or 'no reason recorded'}",
            markup=False,
        )
    if not change.changed:
        console.print(f"Account {name} is {status} already; nothing changed", markup=False)
        return
    console.print(f"Account {name} {verb}: status {change.before} -> {status}", markup=False)


def pause_cmd(ctx: typer.Context, account_id: str = ACCOUNT_ARGUMENT) -> None:
    """Stop sending from an account for now (status paused); `account resume` sends again.

    Example: outbound account pause 665f0e...
    """
    _status_cmd(ctx, account_id, "paused", "paused")


def resume_cmd(ctx: typer.Context, account_id: str = ACCOUNT_ARGUMENT) -> None:
    """Send from an account again (status active), also after a failed login took it out of rotation: the
    reason is shown first, so fix that (`account edit`) before resuming.

    Example: outbound account resume 665f0e...
    """
    _status_cmd(ctx, account_id, "active", "resumed")


def disable_cmd(ctx: typer.Context, account_id: str = ACCOUNT_ARGUMENT) -> None:
    """Stop using an account for good (status disabled); its history stays. `account resume` undoes it.

    Example: outbound account disable 665f0e...
    """
    _status_cmd(ctx, account_id, "disabled", "disabled")


@dataclass(frozen=True)
class InUse:
    """What still depends on an account: reservations not yet committed or returned, and uncertain sends."""

    open_reservations: int
    uncertain_sends: int

    def __bool__(self) -> bool:
        return bool(self.open_reservations or self.uncertain_sends)


async def in_use(db: Database, account_id: str) -> InUse:
    """Count the account's open reservations (`account_usage.open.*`) and its `uncertain` sends."""
    ids = id_values(account_id)
    opened = 0
    async for usage in db[schema.ACCOUNT_USAGE].find({"account_id": {"$in": ids}}, {"open": 1}):
        opened += len(records(usage))
    uncertain = await db[schema.SENDS].count_documents({"state": "uncertain", "account_id": {"$in": ids}})
    return InUse(opened, uncertain)


async def _remove(db: Database, account_id: str, force: bool, yes: bool) -> tuple[dict[str, Any], list[str]]:
    doc = await get_doc(db[schema.EMAIL_ACCOUNTS], "email account", account_id)
    key = str(doc["_id"])
    name = f"{doc.get('email')} ({key})"
    using = await in_use(db, key)
    if using and not force:
        fail(
            escape(
                f"account {name} has {using.open_reservations} open reservations and {using.uncertain_sends} "
                "uncertain sends: wait for the dispatchers to commit or return the reservations (a stopped one's "
                "are returned within a lease period), settle uncertain sends (`outbound list-uncertain`, "
                "`outbound resolve-send`), or pass --force; nothing was removed"
            )
        )
    confirm(f"Remove account {name} with its sender settings and limits?", yes)
    ids = id_values(key)
    await db[schema.EMAIL_ACCOUNTS].delete_one({"_id": doc["_id"]})
    await db[schema.EMAIL_GENERAL_SETTINGS].delete_many({"email_id": {"$in": ids}})
    await db[schema.EMAIL_CAMPAIGN_SETTINGS].delete_many({"email_id": {"$in": ids}})
    naming = db[schema.CAMPAIGNS].find({"settings.account_ids": {"$in": ids}}, {"name": 1})
    return doc, [f"{c.get('name')} ({c['_id']})" async for c in naming]


def remove_cmd(
    ctx: typer.Context,
    account_id: str = ACCOUNT_ARGUMENT,
    force: bool = typer.Option(False, "--force", help="Remove it even with open reservations or uncertain sends."),
    yes: bool = YES_OPTION,
) -> None:
    """Remove an account with its email_general_settings and email_campaign_settings. Refused while it has open
    reservations or uncertain sends, unless --force. Its send history (sends, activities, usage) stays.

    Example: outbound account remove 665f0e... --yes
    """
    doc, campaigns = run_db(settings_of(ctx), lambda db: _remove(db, account_id, force, yes))
    console.print(f"Removed account {doc.get('email')} ({doc['_id']}) and its settings", markup=False)
    if campaigns:
        err_console.print(
            f"note: campaigns still list it in settings.account_ids: {', '.join(campaigns)}", markup=False
        )


def register(account_app: typer.Typer) -> None:
    """Add `pause`, `resume`, `disable` and `remove` to the `account` group."""
    account_app.command("pause")(pause_cmd)
    account_app.command("resume")(resume_cmd)
    account_app.command("disable")(disable_cmd)
    account_app.command("remove")(remove_cmd)
