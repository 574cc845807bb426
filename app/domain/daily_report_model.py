"""The daily report's values: what the gatherer read for a day, and the rows, alerts and report built from it.

Separate from `daily_report.py` (which day a report covers, when it is due, how it is assembled) and from
`daily_report_render.py` (how it reads) because both use these plain frozen values and the store fills the
inputs: they hold no rule of their own, so either side imports them without importing the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

# The report's count columns, in their order in every table and in the totals.
COUNTED = ("sent", "replied", "bounced", "unsubscribed", "failed")


@dataclass(frozen=True)
class CampaignInfo:
    """What the report shows of a campaign document."""

    campaign_id: str
    name: str
    status: str
    paused_reason: str | None = None
    paused_at: datetime | None = None
    paused_by: str | None = None  # who, as people read it ("alice (command line)")
    job_id: str | None = None  # the campaign of a job's execution: its counts are shown under its job
    job_name: str | None = None


@dataclass(frozen=True)
class AccountStanding:
    """One account on the report's day: its status and what it sent against its daily limit (None: no limit)."""

    account_id: str
    email: str
    status: str
    disabled_reason: str | None
    sent: int
    limit: int | None


@dataclass(frozen=True)
class UncertainSend:
    """A send nobody can vouch for, by its ledger key (never the recipient's address)."""

    send_key: str
    campaign_id: str | None
    account_id: str | None
    since: datetime | None
    why: str | None


@dataclass(frozen=True)
class ReportInputs:
    """Everything the gatherer read for one day, as plain values."""

    campaigns: Sequence[CampaignInfo]
    activity_counts: Mapping[str, Mapping[str, int]]  # campaign id -> activity type -> count on the day
    failures: Mapping[str, int]  # campaign id -> ledger entries that became `failed` on the day
    accounts: Sequence[AccountStanding]
    uncertain_total: int
    uncertain_oldest: Sequence[UncertainSend]


@dataclass(frozen=True)
class CampaignRow:
    """One campaign's day: sends, replies, hard bounces and unsubscribes (activities), failures (the ledger)."""

    campaign_id: str
    name: str
    status: str
    sent: int = 0
    replied: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class AccountAlert:
    """An account that needs a look: near, at or over its daily limit, or out of rotation."""

    account_id: str
    email: str
    status: str
    sent: int
    limit: int | None
    notes: tuple[str, ...]


@dataclass(frozen=True)
class PausedCampaign:
    """A paused campaign and why."""

    campaign_id: str
    name: str
    reason: str | None
    paused_at: datetime | None
    by: str | None = None  # who paused it, as people read it; None when not recorded


@dataclass(frozen=True)
class DailyReport:
    """The report for `day` (ISO date, local to `timezone`), as of `generated_at`."""

    day: str
    timezone: str
    generated_at: datetime
    campaigns: tuple[CampaignRow, ...]
    totals: CampaignRow
    accounts: tuple[AccountAlert, ...]
    uncertain_total: int
    uncertain: tuple[UncertainSend, ...]
    paused: tuple[PausedCampaign, ...]
