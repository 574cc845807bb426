"""`list-campaigns`, `show-campaign` and `show-campaign-progress`: campaigns, their steps, accounts and leads.

`show-campaign` also names the accounts that cannot render the campaign's templates (a variable such as
sender_name they do not supply) and where to set what is missing.

Every document is read through its typed view; a malformed one is reported (collection, _id, field, why) and
skipped, so one bad document never hides the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import typer

from app.cli.common import (
    CAMPAIGN_ARGUMENT,
    JSON_OPTION,
    Skipped,
    console,
    emit,
    fail,
    now_utc,
    print_table,
    run_db,
    settings_of,
)
from app.domain import eligibility
from app.domain.models import CAMPAIGN_STATUSES
from app.ops import campaign_views


def _print_campaign(info: Mapping[str, Any], tail: str) -> None:
    console.print(f"[bold]{info['name']}[/] ({info['id']}) status {info['status']}{tail}")


def _print_lead_counts(info: Mapping[str, Any]) -> None:
    console.print("leads: " + ", ".join(f"{k} {v}" for k, v in info["leads"].items()))


def list_campaigns(
    ctx: typer.Context,
    json_: bool = JSON_OPTION,
    status: str | None = typer.Option(
        None, "--status", help=f"Only campaigns in this status: {', '.join(CAMPAIGN_STATUSES)}."
    ),
    jobs: bool = typer.Option(
        False, "--jobs", help="Also list the campaign of each job execution (outbound job list shows the jobs)."
    ),
) -> None:
    """List campaigns with their limits and lead counts ("due now" counts leads ready to send, even if paused).

    Job executions (a campaign each) are left out unless --jobs is given.

    Example: outbound list-campaigns --status active
    """
    if status is not None and status not in CAMPAIGN_STATUSES:
        fail(f"--status {status!r} is not a campaign status: use one of {', '.join(CAMPAIGN_STATUSES)}", code=2)
    now, skipped, kind = now_utc(), Skipped(), "all" if jobs else "sequence"
    rows = run_db(settings_of(ctx), lambda db: campaign_views.list_campaigns(db, status, now, skipped.add, kind))

    def render() -> None:
        columns = ["id", "name", "status", "sequence", "daily limit", "min wait (min)", "leads", "completed", "due now"]
        print_table(f"Campaigns ({len(rows)})", columns, [list(r.values()) for r in rows])

    emit(json_, {"campaigns": rows}, skipped, render)


def _print_ineligible(rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    console.print(f"not eligible: {len(rows)} account(s) cannot render this campaign's templates")
    for row in rows:
        console.print(f"  {row['email']} ({row['id']}): missing {', '.join(row['missing'])}")
        for variable in row["missing"]:
            console.print(f"    {eligibility.fix_hint(variable, row['email'])}")


def show_campaign(ctx: typer.Context, campaign_id: str = CAMPAIGN_ARGUMENT, json_: bool = JSON_OPTION) -> None:
    """Show a campaign's settings, its sequence steps, the accounts it may send from and its lead counts, then
    the accounts that cannot render its templates (the variables they lack and where to set them).

    Example: outbound show-campaign 665f1c2e9b1e8a3d4c5b6a70 --json
    """
    now, skipped = now_utc(), Skipped()
    info = run_db(settings_of(ctx), lambda db: campaign_views.campaign_details(db, campaign_id, now, skipped.add))

    def render() -> None:
        _print_campaign(info, f", sequence {info['sequence_id'] or '-'}")
        console.print("settings: " + ", ".join(f"{k}={v}" for k, v in info["settings"].items()))
        step_rows = [
            [s["step_order"], s["template_name"] or f"{s['template_id']} (missing)", s["delay_minutes"]]
            for s in info["steps"]
        ]
        print_table("Steps", ["step", "template", "delay (min)"], step_rows)
        account_rows = [[a["id"], a["email"], a["status"]] for a in info["accounts"]]
        print_table(f"Accounts ({info['account_scope']})", ["id", "email", "status"], account_rows)
        _print_lead_counts(info)
        _print_ineligible(info["ineligible_accounts"])

    emit(json_, info, skipped, render)


def _print_variants(steps: Sequence[Mapping[str, Any]]) -> None:
    rows = [
        [
            s["step_order"],
            v["variant"],
            v["sent"],
            v["replied"],
            "-" if v["reply_rate"] is None else f"{v['reply_rate']:.1%}",
        ]
        for s in steps
        for v in s["variants"]
    ]
    if rows:
        print_table("Variants", ["step", "variant", "sent", "replied", "reply rate"], rows)


def show_campaign_progress(ctx: typer.Context, campaign_id: str = CAMPAIGN_ARGUMENT, json_: bool = JSON_OPTION) -> None:
    """Show per step the leads at it, its sent/failed/uncertain recipients and the replies, bounces and
    unsubscribes its messages drew, sent and reply rate per template variant, then lead states and sends today.

    Example: outbound show-campaign-progress 665f1c2e9b1e8a3d4c5b6a70
    """
    now, skipped = now_utc(), Skipped()
    info = run_db(settings_of(ctx), lambda db: campaign_views.campaign_progress(db, campaign_id, now, skipped.add))

    def render() -> None:
        _print_campaign(info, f": {info['percent_complete']}% complete")
        rows = [
            [s[k] for k in ("step_order", "leads_at_step", "sent", "failed", "uncertain")]
            + [s[k] for k in ("replied", "auto_replies", "bounced", "unsubscribed")]
            for s in info["steps"]
        ]
        columns = ["step", "leads at step", "sent", "failed", "uncertain", "replied", "auto-replies", "bounced"]
        print_table("Steps", [*columns, "unsubscribed"], rows)
        _print_variants(info["steps"])
        _print_lead_counts(info)
        console.print(f"today (UTC): sent {info['sent_today']}, counted against limits {info['counted_today']}")

    emit(json_, info, skipped, render)


def register(app: typer.Typer) -> None:
    """Add the campaign commands to `app`."""
    app.command("list-campaigns")(list_campaigns)
    app.command("show-campaign")(show_campaign)
    app.command("show-campaign-progress")(show_campaign_progress)
