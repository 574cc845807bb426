"""`outbound campaign create/edit` (pause, resume and archive: campaign_status_cmds): campaigns without writing
documents by hand.

Documents keep seed 001's shape (`campaigns` with `sequence_id` and `settings`) and are checked by the model
before anything is written. Status changes are fenced by the status read, so a concurrent automatic pause is
never overwritten unseen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import typer

from app.cli.admin_runs import run_admin as run_admin
from app.cli.campaign_status_cmds import archive, pause, resume
from app.cli.common import (
    CAMPAIGN_ARGUMENT,
    JSON_OPTION,
    console,
    fail,
    now_utc,
    print_json,
)
from app.domain.campaign_plan import show_value
from app.domain.campaign_specs import SCHEDULE_KEYS
from app.domain.campaigns import Campaign
from app.domain.models import InvalidDocument
from app.domain.stop_policy import STOP_ON_REPLY
from app.store import campaign_admin
from app.store.client import Database

campaign_app = typer.Typer(help="Create, edit, pause, resume and archive campaigns.", no_args_is_help=True)

NAME_OPTION = typer.Option(None, "--name", help="The campaign's name (unique: campaign files find it by name).")
DAILY_LIMIT_OPTION = typer.Option(None, "--daily-limit", min=0, help="Sends per account per day for this campaign.")
MIN_WAIT_OPTION = typer.Option(None, "--min-wait", min=0, help="Minutes between two sends of one account.")
BATCH_OPTION = typer.Option(None, "--batch-size", min=1, help="Leads fetched per due-leads query.")
ACCOUNTS_OPTION = typer.Option(
    None, "--accounts", help="Account ids or emails, comma-separated (empty: every active account)."
)
STOP_OPTION = typer.Option(None, "--stop-on-reply", help=f"Who a reply stops: {', '.join(STOP_ON_REPLY)}.")
HOURLY_OPTION = typer.Option(None, "--hourly-limit", min=0, help="Sends per account per hour for this campaign.")
JITTER_OPTION = typer.Option(
    None, "--wait-jitter", min=0, help="Extra random minutes (0 to M) added to each wait between sends."
)
TIMEZONE_OPTION = typer.Option(
    None, "--schedule-timezone", help="The sending window's IANA zone, e.g. America/New_York (see Sending windows)."
)
DAYS_OPTION = typer.Option(
    None, "--schedule-days", help="Days the window opens on, comma-separated: mon,tue,... (default mon to fri)."
)
START_OPTION = typer.Option(None, "--schedule-start", help="Local time the window opens, HH:MM.")
END_OPTION = typer.Option(None, "--schedule-end", help="Local time it closes, HH:MM (at or before start: next day).")
BLACKOUT_OPTION = typer.Option(
    None, "--schedule-blackout", help="A local date (YYYY-MM-DD) with no window; repeatable (edit: replaces them)."
)
RECIPIENT_TZ_OPTION = typer.Option(
    None,
    "--recipient-timezone/--no-recipient-timezone",
    help="Open each recipient's window in their own `timezone` field when it is a valid zone.",
)

# The option that sets each field the model may refuse, so an error names what to type.
_OPTION_OF = {
    "settings.hourly_limit": "--hourly-limit",
    "settings.wait_jitter": "--wait-jitter",
    "settings.schedule": "--schedule-timezone",
    "settings.schedule.timezone": "--schedule-timezone",
    "settings.schedule.days": "--schedule-days",
    "settings.schedule.start": "--schedule-start",
    "settings.schedule.end": "--schedule-end",
    "settings.schedule.blackout_dates": "--schedule-blackout",
    "settings.schedule.recipient_timezone": "--recipient-timezone",
}


@dataclass(frozen=True)
class ScheduleOptions:
    """The `--schedule-*` options as given (None: not given)."""

    timezone: str | None = None
    days: str | None = None
    start: str | None = None
    end: str | None = None
    blackout: list[str] | None = None
    recipient_timezone: bool | None = None

    def fields(self) -> dict[str, Any]:
        """The schedule fields given, as `settings.schedule` stores them."""
        days = None if self.days is None else [d.strip().lower() for d in self.days.split(",") if d.strip()]
        given = {
            "timezone": self.timezone,
            "days": days,
            "start": self.start,
            "end": self.end,
            "blackout_dates": [d.strip() for d in self.blackout] if self.blackout else None,
            "recipient_timezone": self.recipient_timezone,
        }
        return {k: v for k, v in given.items() if v is not None}

    def schedule(self, current: object = None) -> dict[str, Any]:
        """The whole schedule to store: the given fields over `current` (the stored one, if any)."""
        merged = {**(current if isinstance(current, Mapping) else {}), **self.fields()}
        return {k: merged[k] for k in (*SCHEDULE_KEYS, *(k for k in merged if k not in SCHEDULE_KEYS)) if k in merged}


def _accounts(raw: str | None) -> list[str] | None:
    return None if raw is None else [a.strip() for a in raw.split(",") if a.strip()]


def _check_stop(stop_on_reply: str | None) -> None:
    if stop_on_reply is not None and stop_on_reply not in STOP_ON_REPLY:
        fail(f"--stop-on-reply {stop_on_reply!r}: use one of {', '.join(STOP_ON_REPLY)}", code=2)


async def _settings(db: Database, options: dict[str, Any], accounts: list[str] | None) -> dict[str, Any]:
    given = {f"settings.{k}": v for k, v in options.items() if v is not None}
    if accounts is not None:
        given["settings.account_ids"] = await campaign_admin.resolve_accounts(db, accounts) or None
    return given


def _checked(read: Callable[[], Campaign]) -> Campaign:
    """The campaign `read` builds, checked by the model; a refused field names the option that set it."""
    try:
        return read()
    except InvalidDocument as exc:
        option = _OPTION_OF.get(exc.field)
        if option is None:
            raise
        raise campaign_admin.AdminError(f"{option}: {exc.reason} (nothing was written)") from None


def create(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="The campaign's name (unique: campaign files find it by name)."),
    daily_limit: int | None = DAILY_LIMIT_OPTION,
    min_wait: float | None = MIN_WAIT_OPTION,
    batch_size: int | None = BATCH_OPTION,
    accounts: str | None = ACCOUNTS_OPTION,
    stop_on_reply: str | None = STOP_OPTION,
    hourly_limit: int | None = HOURLY_OPTION,
    wait_jitter: float | None = JITTER_OPTION,
    schedule_timezone: str | None = TIMEZONE_OPTION,
    schedule_days: str | None = DAYS_OPTION,
    schedule_start: str | None = START_OPTION,
    schedule_end: str | None = END_OPTION,
    schedule_blackout: list[str] | None = BLACKOUT_OPTION,
    recipient_timezone: bool | None = RECIPIENT_TZ_OPTION,
    status: str = typer.Option("draft", "--status", help="draft (default) or active."),
    json_: bool = JSON_OPTION,
) -> None:
    """Create a campaign (no steps yet: add them with `step add`, then `campaign resume` if it is a draft).

    Example: outbound campaign create --name "Spring outreach" --daily-limit 40 --min-wait 4 --accounts a@x.example
    --schedule-timezone America/New_York --schedule-days mon,tue,wed,thu,fri --schedule-start 09:00 --schedule-end 17:00
    """
    _check_stop(stop_on_reply)
    if status not in ("draft", "active"):
        fail(f"--status {status!r}: a new campaign is draft or active", code=2)
    window = ScheduleOptions(
        schedule_timezone, schedule_days, schedule_start, schedule_end, schedule_blackout, recipient_timezone
    )
    options: dict[str, Any] = {"daily_limit": daily_limit, "min_wait_time": min_wait, "batch_size": batch_size}
    options.update(stop_on_reply=stop_on_reply, hourly_limit=hourly_limit, wait_jitter=wait_jitter)
    options["schedule"] = window.schedule() if window.fields() else None
    now = now_utc()

    async def work(db: Database) -> dict[str, Any]:
        if await campaign_admin.campaigns_named(db, name):
            raise campaign_admin.AdminError(f"a campaign named {name!r} exists already: choose another name")
        sets = await _settings(db, options, _accounts(accounts))
        settings = {k.partition(".")[2]: v for k, v in sets.items() if v is not None}
        doc = {"name": name, "status": status, "created_at": now, "sequence_id": campaign_admin.new_sequence_id()}
        doc["settings"] = settings
        _checked(lambda: Campaign.from_doc({"_id": "new", **doc}))
        doc["_id"] = await campaign_admin.insert_campaign(db, doc)
        return doc

    doc = run_admin(ctx, work)
    if json_:
        print_json(doc)
        return
    console.print(f"created campaign {doc['_id']} ({name}), status {status}")
    console.print(f"next: outbound step add --campaign-id {doc['_id']} --template <template id or name>")


def edit(
    ctx: typer.Context,
    campaign_id: str = CAMPAIGN_ARGUMENT,
    name: str | None = NAME_OPTION,
    daily_limit: int | None = DAILY_LIMIT_OPTION,
    min_wait: float | None = MIN_WAIT_OPTION,
    batch_size: int | None = BATCH_OPTION,
    accounts: str | None = ACCOUNTS_OPTION,
    stop_on_reply: str | None = STOP_OPTION,
    uncertain_after_hours: float | None = typer.Option(
        None, "--uncertain-after-hours", min=0, help="An unresolved uncertain send counts as sent after this long."
    ),
    hourly_limit: int | None = HOURLY_OPTION,
    wait_jitter: float | None = JITTER_OPTION,
    schedule_timezone: str | None = TIMEZONE_OPTION,
    schedule_days: str | None = DAYS_OPTION,
    schedule_start: str | None = START_OPTION,
    schedule_end: str | None = END_OPTION,
    schedule_blackout: list[str] | None = BLACKOUT_OPTION,
    recipient_timezone: bool | None = RECIPIENT_TZ_OPTION,
    no_schedule: bool = typer.Option(False, "--no-schedule", help="Remove the sending window (send at any time)."),
) -> None:
    """Change a campaign's name or settings (it takes effect within seconds for a running dispatcher).

    `--schedule-*` options change those fields of the sending window and keep the others.

    Example: outbound campaign edit 665f1c2e9b1e8a3d4c5b6a70 --daily-limit 60 --accounts "" --schedule-end 18:00
    """
    _check_stop(stop_on_reply)
    window = ScheduleOptions(
        schedule_timezone, schedule_days, schedule_start, schedule_end, schedule_blackout, recipient_timezone
    )
    options: dict[str, Any] = {"daily_limit": daily_limit, "min_wait_time": min_wait, "batch_size": batch_size}
    options.update(stop_on_reply=stop_on_reply, uncertain_after_hours=uncertain_after_hours)
    options.update(hourly_limit=hourly_limit, wait_jitter=wait_jitter)
    if no_schedule and window.fields():
        fail("--no-schedule removes the sending window: give it without --schedule-* options", code=2)

    async def work(db: Database) -> list[str]:
        doc = await campaign_admin.campaign_doc(db, campaign_id)
        given = await _settings(db, options, _accounts(accounts))
        if no_schedule or window.fields():
            current = (doc.get("settings") or {}).get("schedule")
            given["settings.schedule"] = None if no_schedule else window.schedule(current)
        if name is not None and name != doc.get("name"):
            if await campaign_admin.campaigns_named(db, name):
                raise campaign_admin.AdminError(f"a campaign named {name!r} exists already: choose another name")
            given["name"] = name
        settings = doc.get("settings") or {}
        changed = {k: v for k, v in given.items() if (doc.get(k) if "." not in k else settings.get(k[9:])) != v}
        sets = {k: v for k, v in changed.items() if v is not None}
        unsets = [k for k, v in changed.items() if v is None]
        _checked(lambda: campaign_admin.checked_campaign(doc, sets, unsets))
        await campaign_admin.update_campaign(db, campaign_id, sets, unsets, expect={})
        old = {k: doc.get(k) if "." not in k else settings.get(k[9:]) for k in changed}
        return [f"{k}: {show_value(old[k])} -> {show_value(v)}" for k, v in changed.items()]

    lines = run_admin(ctx, work)
    console.print("\n".join(lines) if lines else "no change")


campaign_app.command("create")(create)
campaign_app.command("edit")(edit)
campaign_app.command("pause")(pause)
campaign_app.command("resume")(resume)
campaign_app.command("archive")(archive)


def register(app: typer.Typer) -> None:
    """Add the `campaign` commands to `app`."""
    app.add_typer(campaign_app, name="campaign")
