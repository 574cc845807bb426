"""`list-uncertain` and `resolve-send`: the sends nobody can vouch for, and how an operator settles them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from app.cli.common import (
    JSON_OPTION,
    YES_OPTION,
    confirm,
    console,
    fail,
    fmt_time,
    print_json,
    print_table,
    run_db,
    settings_of,
)
from app.domain import ledger_states as lstate
from app.domain.models import recipient_key
from app.store import schema
from app.store.client import Database
from app.store.documents import NotFound, id_filter


async def _uncertain(db: Database, campaign_id: str | None, limit: int) -> list[dict[str, Any]]:
    flt: dict[str, Any] = {"state": "uncertain"}
    if campaign_id is not None:
        flt.update(id_filter(campaign_id, "campaign_id"))
    return [doc async for doc in db[schema.SENDS].find(flt, sort=[("updated_at", 1)], limit=limit)]


def _lead_is_held(lead: dict[str, Any], now: datetime) -> bool:
    until = (lead.get("progress") or {}).get("lease_until")
    return isinstance(until, datetime) and until > now


async def _resolve(db: Database, send_id: str, sent: bool) -> dict[str, Any]:
    """Settle one uncertain send as delivered (`sent`) or as not delivered (send it again)."""
    sends, leads = db[schema.SENDS], db[schema.CAMPAIGN_LEADS]
    send = await sends.find_one({"_id": send_id})
    if send is None:
        raise NotFound("send", send_id)
    if send.get("state") != "uncertain":
        fail(f"send {send_id} is {send.get('state')}, not uncertain: only uncertain sends can be resolved")
    lead = await leads.find_one({"_id": send["lead_id"]})
    if lead is None:
        raise NotFound("lead", send["lead_id"])
    now = datetime.now(UTC)
    if _lead_is_held(lead, now):
        fail(f"lead {lead['_id']} is being processed by {lead['progress'].get('lease_owner')}; try again shortly")
    step, index = int(send["step_order"]), int(send["recipient_index"])
    key = f"progress.processed_recipients.{recipient_key(step, index)}"
    version = (lead.get("progress") or {}).get("version")
    if sent:
        values: dict[str, Any] = {f"{key}.status": "sent", f"lead_data.{index}.status": "contacted"}
        if not (lead.get("progress") or {}).get("completed") and not (lead.get("progress") or {}).get("stopped"):
            # A step held back by this uncertain send may go on now.
            values["progress.next_due_at"] = now
        lead_update: dict[str, Any] = {"$set": values}
    else:
        lead_update = {
            "$set": {"progress.current_step_order": step, "progress.next_due_at": now},
            "$unset": {key: "", "progress.completed": "", "progress.completed_at": ""},
        }
    # Compare-and-set on the lead's version so a dispatcher claiming it meanwhile makes this fail, not race.
    result = await leads.update_one({"_id": lead["_id"], "progress.version": version}, lead_update)
    if result.modified_count != 1:
        fail(f"lead {lead['_id']} changed while resolving; nothing was changed, run the command again")
    state = lstate.SENT if sent else lstate.RETRY_WAIT
    await sends.update_one(
        {"_id": send_id, "state": lstate.UNCERTAIN},
        {"$set": {**lstate.move(lstate.UNCERTAIN, state, now), "resolved_by_operator": True, "resolved_at": now}},
    )
    await db[schema.ACTIVITIES].insert_one(
        {
            "campaign_id": send.get("campaign_id"),
            "lead_id": send["lead_id"],
            "account_id": send.get("account_id"),
            "step_order": step,
            "recipient_index": index,
            "email": send.get("email"),
            "type": "resolved_sent" if sent else "resolved_resend",
            "message_id": send.get("message_id"),
            "created_at": now,
        }
    )
    return {"send_id": send_id, "state": state, "lead_id": str(lead["_id"]), "email": send.get("email")}


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
        docs = run_db(settings_of(ctx), lambda db: _uncertain(db, campaign_id, limit))
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
