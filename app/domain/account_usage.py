"""Pure summaries of one sending account for the inspection commands: its limits, its usage on one of its days
and the arbiter's fields on its document.

Separate from reports.py (lead states and campaign progress) because it reads other documents, `account_usage`
and `email_accounts`, by the arbiter's rules. Nothing here does I/O or reads the clock: callers pass the
documents and `now`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.domain import collections as schema
from app.domain.limits import AccountLimits, account_day, effective_daily_limit, limits_for, merge_settings
from app.domain.models import AccountCampaignSettings, EmailAccount, InvalidDocument


def account_limits(settings: Iterable[AccountCampaignSettings], account: EmailAccount | None = None) -> AccountLimits:
    """An account's own limits (no campaign) from its settings documents, exactly as the arbiter combines them;
    `account` gives its time zone and ramp start."""
    return limits_for(merge_settings(settings), None, account)


def day_limit(limits: AccountLimits, day: str) -> int | None:
    """The daily limit for all campaigns on `day` (the account's own, "YYYY-MM-DD"): under a ramp, that day's."""
    return effective_daily_limit(limits, datetime.strptime(day, "%Y-%m-%d").date())


def today_of(account: EmailAccount, now: datetime) -> str:
    """The account's day of `now`, in its time zone: the day its counters are kept under."""
    return account_day(now, account.timezone)


@dataclass(frozen=True)
class AccountUsage:
    """One `account_usage` document: sends of one account on one of its days (its own time zone)."""

    account_id: str
    day: str
    sent: int = 0  # reserved + committed, all campaigns
    committed: int = 0
    campaigns: Mapping[str, int] = field(default_factory=dict)
    hours: Mapping[str, int] = field(default_factory=dict)  # "HH" (the account's clock) -> sent that hour
    # Open reservations whose message was not yet handed to SMTP (`open.<key>.flown` false): a crash of their
    # holder gives them back; they are part of `reserved`.
    reserved_unsent: int = 0

    @property
    def reserved(self) -> int:
        """Sends reserved but not (yet) committed; they count against the limit."""
        return max(self.sent - self.committed, 0)


def _count(doc: Mapping[str, Any], name: str, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidDocument(schema.ACCOUNT_USAGE, doc.get("_id"), name, f"must be a whole number >= 0, got {value!r}")
    return value


def usage_from_doc(doc: Mapping[str, Any]) -> AccountUsage:
    """Validate an `account_usage` document; raise InvalidDocument naming the field."""
    campaigns = doc.get("campaigns") or {}
    if not isinstance(campaigns, Mapping):
        raise InvalidDocument(schema.ACCOUNT_USAGE, doc.get("_id"), "campaigns", "must be an object of counts")
    day = doc.get("day")
    if not isinstance(day, str):
        raise InvalidDocument(schema.ACCOUNT_USAGE, doc.get("_id"), "day", f"must be a YYYY-MM-DD string, got {day!r}")
    return AccountUsage(
        account_id=str(doc.get("account_id")),
        day=day,
        sent=_count(doc, "sent", doc.get("sent")),
        committed=_count(doc, "committed", doc.get("committed")),
        campaigns={str(k): _count(doc, f"campaigns.{k}", v) for k, v in campaigns.items()},
        hours=_hours(doc),
        reserved_unsent=_unsent(doc),
    )


def _hours(doc: Mapping[str, Any]) -> dict[str, int]:
    hours = doc.get("hours") or {}
    if not isinstance(hours, Mapping):
        raise InvalidDocument(schema.ACCOUNT_USAGE, doc.get("_id"), "hours", "must be an object of counts per hour")
    return {str(k): _count(doc, f"hours.{k}", v) for k, v in hours.items()}


def _unsent(doc: Mapping[str, Any]) -> int:
    """Open reservation records that say their message never went out; malformed records are not counted."""
    records = doc.get("open") or {}
    if not isinstance(records, Mapping):
        raise InvalidDocument(schema.ACCOUNT_USAGE, doc.get("_id"), "open", "must be an object of reservations")
    return sum(1 for r in records.values() if isinstance(r, Mapping) and r.get("flown") is False)


def remaining_sends(sent: int, limit: int | None) -> int | None:
    """Sends left today under `limit` (None: no daily limit configured)."""
    return None if limit is None else max(limit - sent, 0)


@dataclass(frozen=True)
class AccountState:
    """The arbiter's fields on an `email_accounts` document (never its credentials)."""

    next_available_at: datetime | None = None
    last_used_at: datetime | None = None
    disabled_reason: str | None = None
    reserved: bool = False  # a reservation token is present


def _when(doc: Mapping[str, Any], name: str) -> datetime | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidDocument(schema.EMAIL_ACCOUNTS, doc.get("_id"), name, f"must be a date, got {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def account_state(doc: Mapping[str, Any]) -> AccountState:
    """Read the arbiter's fields of an account document; raise InvalidDocument when one has the wrong type."""
    reason = doc.get("disabled_reason")
    return AccountState(
        next_available_at=_when(doc, "next_available_at"),
        last_used_at=_when(doc, "last_used_at"),
        disabled_reason=None if reason is None else str(reason),
        reserved=bool(doc.get("reservation_token")),
    )
