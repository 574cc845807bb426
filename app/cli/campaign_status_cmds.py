"""`outbound campaign pause/resume/archive`: a campaign's status, fenced on the status read, and who paused it."""

from __future__ import annotations

from datetime import datetime

import typer

from app.cli.admin_runs import run_admin
from app.cli.audit_cmds import cli_actor
from app.cli.common import CAMPAIGN_ARGUMENT, YES_OPTION, confirm, console, fail, now_utc
from app.ops import campaigns
from app.store import campaign_admin
from app.store.client import Database


def pause(ctx: typer.Context, campaign_id: str = CAMPAIGN_ARGUMENT) -> None:
    """Stop sending for an active campaign now; its leads wait where they are until `campaign resume`.

    Example: outbound campaign pause 665f1c2e9b1e8a3d4c5b6a70
    """
    now = now_utc()
    who = cli_actor()
    run_admin(
        ctx, lambda db: campaigns.pause_campaign(db, campaign_id, None, now, campaigns.pauser(who.kind, who.name))
    )
    console.print(f"campaign {campaign_id} paused: nothing more is sent for it until `outbound campaign resume`")


def resume(ctx: typer.Context, campaign_id: str = CAMPAIGN_ARGUMENT, yes: bool = YES_OPTION) -> None:
    """Make a paused or draft campaign active. After an automatic pause it shows why first, asks, and clears it.

    Example: outbound campaign resume 665f1c2e9b1e8a3d4c5b6a70 --yes
    """
    doc = run_admin(ctx, lambda db: campaigns.resumable(db, campaign_id))
    reason = doc.get("paused_reason")
    if reason:
        by = campaigns.paused_by_label(doc.get("paused_by"))
        console.print(
            f"campaign {campaign_id} was paused{_when(doc.get('paused_at'))}{f' by {by}' if by else ''}: {reason}"
        )
        confirm(f"Resume campaign {campaign_id}?", yes)
    now = now_utc()
    run_admin(ctx, lambda db: campaigns.resume_campaign(db, campaign_id, now))
    console.print(f"campaign {campaign_id} is active: due leads are sent by the dispatcher")


def _when(value: object) -> str:
    return f" at {value:%Y-%m-%d %H:%M:%S} UTC" if isinstance(value, datetime) else ""


def archive(ctx: typer.Context, campaign_id: str = CAMPAIGN_ARGUMENT, yes: bool = YES_OPTION) -> None:
    """Mark a campaign completed: nothing more is sent for it (its leads and history are kept).

    Example: outbound campaign archive 665f1c2e9b1e8a3d4c5b6a70 --yes
    """
    doc = run_admin(ctx, lambda db: campaign_admin.campaign_doc(db, campaign_id))
    if doc.get("status") == "completed":
        fail(f"campaign {campaign_id} is archived (completed) already")
    confirm(f"Archive campaign {campaign_id} ({doc.get('name')}): its leads will receive nothing more?", yes)

    async def write(db: Database) -> None:
        expect = {"status": doc.get("status")}
        if not await campaign_admin.update_campaign(db, campaign_id, {"status": "completed"}, (), expect=expect):
            raise campaign_admin.AdminError(f"campaign {campaign_id} changed status meanwhile: run the command again")

    run_admin(ctx, write)
    console.print(f"campaign {campaign_id} archived (status completed)")
