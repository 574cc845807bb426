"""`list-uncertain` and `resolve-send`: the sends nobody can vouch for, and how an operator settles them."""

from __future__ import annotations

from typing import Any

import typer

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
from app.ops import sends
from app.ops.errors import OpError
from app.store.client import Database


async def _resolve(db: Database, send_id: str, sent: bool) -> dict[str, Any]:
    try:
        done = await sends.resolve_send(db, send_id, "sent" if sent else "resend", now_utc())
    except OpError as exc:
        fail(exc.message)
    return {"send_id": done.send_key, "state": done.state, "lead_id": done.lead_id, "email": done.email}


def register(app: typer.Typer) -> None:
    """Add `list-uncertain` and `resolve-send`."""

    @app.command("list-uncertain")
    def list_uncertain(
        ctx: typer.Context,
        campaign_id: str | None = typer.Option(None, "--campaign-id", help="Only this campaign."),
        limit: int = typer.Option(200, "--limit", min=1, help="At most this many."),
        json_: bool = JSON_OPTION,
    ) -> None:
        """List sends that may or may not have been delivered (a crash or a dropped connection after DATA).

        They count against limits and are never retried automatically; settle each with resolve-send.

        Example: outbound list-uncertain --campaign-id 665f1c...
        """
        docs = run_db(settings_of(ctx), lambda db: sends.list_uncertain(db, campaign_id, limit))
        if json_:
            print_json(docs)
            return
        console.print(f"Found {len(docs)} uncertain sends")
        print_table(
            "Uncertain sends (resolve with: outbound resolve-send <send> --sent | --resend)",
            ["send", "email", "account", "message-id", "since (UTC)", "why"],
            [
                (
                    d["_id"],
                    d.get("email"),
                    d.get("account_id"),
                    d.get("message_id"),
                    fmt_time(d.get("updated_at")),
                    d.get("last_error"),
                )
                for d in docs
            ],
        )

    @app.command("resolve-send")
    def resolve_send(
        ctx: typer.Context,
        send_id: str = typer.Argument(..., help="The send's id, as list-uncertain prints it."),
        sent: bool = typer.Option(False, "--sent", help="It was delivered: record it as sent."),
        resend: bool = typer.Option(False, "--resend", help="It was not delivered: send it again."),
        yes: bool = YES_OPTION,
        json_: bool = JSON_OPTION,
    ) -> None:
        """Settle an uncertain send: --sent records it as delivered, --resend queues it to be sent again.

        Example: outbound resolve-send 665f1c...:1:0 --sent
        """
        if sent == resend:
            fail("say what happened: pass exactly one of --sent or --resend")
        action = "record it as delivered" if sent else "send it again (the recipient may get it twice)"
        confirm(f"Resolve send {send_id}: {action}?", yes)
        result = run_db(settings_of(ctx), lambda db: _resolve(db, send_id, sent))
        if json_:
            print_json(result)
        else:
            console.print(f"Send {send_id} to {result['email']} is now {result['state']}.")
