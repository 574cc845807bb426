"""Builders for seed-001-shaped documents used by dispatcher tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import monitoring

from app.store import schema
from app.store.client import Database


async def add_campaign(
    db: Database,
    *,
    name: str = "Campaign",
    steps: list[dict[str, Any]] | None = None,
    daily_limit: int | None = 100,
    min_wait_time: float = 0.0,
    status: str = "active",
    account_ids: list[str] | None = None,
) -> str:
    """A campaign with its sequence; `steps` items: {subject, body_text, body_html?, delay_minutes}."""
    sequence_id = f"seq-{ObjectId()}"
    settings: dict[str, Any] = {"min_wait_time": min_wait_time, "batch_size": 20}
    if daily_limit is not None:
        settings["daily_limit"] = daily_limit
    if account_ids:
        settings["account_ids"] = account_ids
    result = await db[schema.CAMPAIGNS].insert_one(
        {
            "name": name,
            "status": status,
            "created_at": datetime.now(UTC),
            "sequence_id": sequence_id,
            "settings": settings,
        }
    )
    default_steps = [{"subject": "Hello {{ first_name | default('there') }}", "body_text": "Step one for {{ email }}"}]
    for order, step in enumerate(steps or default_steps, start=1):
        template = {k: v for k, v in step.items() if k in ("subject", "body_text", "body_html")}
        template["name"] = f"{name} step {order}"
        tid = (await db[schema.TEMPLATES].insert_one(template)).inserted_id
        await db[schema.SEQUENCE_STEPS].insert_one(
            {
                "sequence_id": sequence_id,
                "step_order": order,
                "template_id": str(tid),
                "delay_minutes": step.get("delay_minutes", 0),
            }
        )
    return str(result.inserted_id)


async def add_account(
    db: Database,
    port: int,
    *,
    email: str,
    max_daily_sends: int | None = 100,
    min_wait_time: float = 0.0,
    daily_limit: int | None = None,
    status: str = "active",
    signature: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> str:
    """An SMTP account on the loopback test server (no TLS), with its limits and general settings."""
    doc: dict[str, Any] = {
        "email": email,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "status": status,
        "provider": "Test",
    }
    if username:
        doc.update(smtp_username=username, smtp_password=password)
    account_id = str((await db[schema.EMAIL_ACCOUNTS].insert_one(doc)).inserted_id)
    limits: dict[str, Any] = {"email_id": account_id, "min_wait_time": min_wait_time}
    if max_daily_sends is not None:
        limits["max_daily_sends"] = max_daily_sends
    if daily_limit is not None:
        limits["daily_limit"] = daily_limit
    await db[schema.EMAIL_CAMPAIGN_SETTINGS].insert_one(limits)
    await db[schema.EMAIL_GENERAL_SETTINGS].insert_one(
        {"email_id": account_id, "signature": signature, "sender_name": f"Sender {email.split('@')[0]}"}
    )
    return account_id


async def add_lead(
    db: Database,
    campaign_id: str,
    recipients: list[dict[str, Any]],
    *,
    due: datetime | None = None,
) -> ObjectId:
    """A lead with `recipients` (each needs an email), due now unless `due` is given."""
    lead_data = [{"status": "not_contacted", **r} for r in recipients]
    doc = {
        "campaign_id": campaign_id,
        "lead_key": f"email:{recipients[0]['email']}",
        "lead_data": lead_data,
        "progress": {
            "current_step_order": 1,
            "stopped": False,
            "processed_recipients": {},
            "next_due_at": due or datetime.now(UTC),
        },
    }
    result = await db[schema.CAMPAIGN_LEADS].insert_one(doc)
    return ObjectId(result.inserted_id)


class CommandCounter(monitoring.CommandListener):
    """Counts the commands a client sends: `names` by command, `targets` by command and collection."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.targets: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)
        target = event.command.get(event.command_name)
        self.targets.append(f"{event.command_name} {target}" if isinstance(target, str) else event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
