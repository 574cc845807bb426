"""The JSON API's answers and bodies as pydantic models, so `/api/v1/openapi.json` documents every field.

Times are ISO 8601 in UTC. No model has a field for a password, a credential or a token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from bson import ObjectId
from pydantic import BaseModel, ConfigDict, Field


def jsonable(value: Any) -> Any:
    """Stored values made JSON-ready: ObjectIds as their string form, inside dicts and lists too."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, ObjectId):
        return str(value)
    return value


class Open(BaseModel):
    """A model that keeps fields it does not name (documents may carry more than the model lists)."""

    model_config = ConfigDict(extra="allow")


class LeadCounts(BaseModel):
    total: int
    completed: int
    stopped: int
    in_progress: int
    due: int
    waiting: int


class CampaignSummary(BaseModel):
    id: str
    name: str
    status: str
    sequence_id: str | None
    daily_limit: int | None
    min_wait_time: float
    leads: int
    completed: int
    due_now: int = Field(description="Leads ready to send now (even while the campaign is paused).")


class CampaignPage(BaseModel):
    items: list[CampaignSummary]
    next_cursor: str | None


class StepInfo(BaseModel):
    step_order: int
    template_id: str
    template_name: str | None
    delay_minutes: float


class AccountRef(BaseModel):
    id: str
    email: str | None
    status: str


class IneligibleAccount(BaseModel):
    id: str
    email: str
    missing: list[str] = Field(description="Template variables the account does not supply.")


class CampaignDetail(BaseModel):
    id: str
    name: str
    status: str
    sequence_id: str | None
    created_at: datetime | None
    paused_reason: str | None
    paused_at: datetime | None
    paused_by: str | None  # who paused it: "alice (command line)", "ci (API token)", "dispatcher (automatic)"
    settings: dict[str, Any]
    steps: list[StepInfo]
    accounts: list[AccountRef]
    account_scope: str
    leads: LeadCounts
    ineligible_accounts: list[IneligibleAccount]


class VariantStats(BaseModel):
    variant: str
    sent: int
    replied: int
    reply_rate: float | None


class StepProgress(BaseModel):
    step_order: int
    total: int = Field(description="Leads that reached this step (at it or past it).")
    pending: int = Field(description="Leads at this step that have not moved past it.")
    percentage: float = Field(description="Share of all the campaign's leads past this step, in percent.")
    leads_at_step: int
    sent: int
    failed: int
    uncertain: int
    replied: int
    auto_replies: int
    bounced: int
    soft_bounces: int
    unsubscribed: int
    variants: list[VariantStats]


class CampaignProgress(BaseModel):
    id: str
    name: str
    status: str
    steps: list[StepProgress]
    leads: LeadCounts
    percent_complete: float
    sent_today: int
    counted_today: int


class PauseBody(BaseModel):
    reason: str | None = Field(None, max_length=500, description="Why; shown with the campaign until it resumes.")


class CampaignStatusChange(BaseModel):
    campaign_id: str
    before: str
    after: str
    paused_reason: str | None


class TriggerResult(BaseModel):
    campaign_id: str
    status: str
    leads_due_now: int = Field(description="Waiting leads made due now.")


class RecipientSummary(BaseModel):
    email: str
    status: str


class LeadSummary(BaseModel):
    id: str
    campaign_id: str
    lead_key: str | None
    company: str | None
    state: str
    current_step_order: int
    next_due_at: datetime | None
    recipients: list[RecipientSummary]


class LeadPage(BaseModel):
    items: list[LeadSummary]
    next_cursor: str | None


class LeadDetail(Open):
    id: str
    lead_key: str | None
    campaign: dict[str, Any]
    state: str
    window: str | None = Field(description="Why the lead waits for its campaign's sending window, if it does.")
    progress: dict[str, Any]
    recipients: list[dict[str, Any]]
    processed_recipients: dict[str, Any]
    sends: list[dict[str, Any]]
    activities: list[dict[str, Any]] = Field(description="The latest activities, newest first.")
    answers: list[dict[str, Any]] = Field(description="Replies, bounces and unsubscribes among them.")


class Answers30d(BaseModel):
    sent: int
    replied: int
    auto_replies: int
    bounced: int
    soft_bounces: int
    unsubscribed: int
    bounce_rate: float | None


class AccountUsage(BaseModel):
    id: str
    email: str
    status: str = Field(description="active, paused, disabled or auth_failed (out of rotation).")
    disabled_reason: str | None
    provider: str | None
    smtp: str
    inbox: str
    timezone: str | None
    max_daily_sends: int | None
    daily_limit: int | None
    max_hourly_sends: int | None
    min_wait_time: float | None
    ramp: dict[str, Any] | None
    ramp_started_on: str | None
    day: str = Field(description="The account's day the usage is for, in its own time zone.")
    sent: int
    committed: int
    reserved: int
    reserved_unsent: int
    campaigns: dict[str, int]
    campaign_names: dict[str, str | None]
    sent_this_hour: int
    limit: int | None = Field(description="The day's effective limit (under a warm-up ramp, that day's step).")
    remaining: int | None
    next_available_at: datetime | None = Field(description="The end of its wait window: when it may send next.")
    last_used_at: datetime | None
    answers_30d: Answers30d


class AccountPage(BaseModel):
    items: list[AccountUsage]
    next_cursor: str | None


class AccountStatusChange(BaseModel):
    account_id: str
    email: str | None
    before: str
    after: str
    changed: bool
    disabled_reason: str | None


class Activity(Open):
    id: str
    campaign_id: str | None
    lead_id: str | None
    account_id: str | None
    type: str | None
    email: str | None
    created_at: datetime | None


class ActivityPage(BaseModel):
    items: list[Activity]
    next_cursor: str | None


class UncertainSend(BaseModel):
    """A ledger entry in doubt; only these fields leave the server (not the attempt's fencing token)."""

    send_key: str
    campaign_id: str | None
    lead_id: str | None
    step_order: int | None
    recipient_index: int | None
    email: str | None
    account_id: str | None
    message_id: str | None
    attempts: int | None
    updated_at: datetime | None
    last_error: str | None


class UncertainPage(BaseModel):
    items: list[UncertainSend]
    next_cursor: str | None


class ResolveBody(BaseModel):
    outcome: Literal["sent", "resend"] = Field(description="sent: it was delivered; resend: it was not, send it again.")


class ResolvedSend(BaseModel):
    send_key: str
    state: str
    lead_id: str
    email: str | None


class Suppression(BaseModel):
    value: str = Field(description="An address, or a whole domain as @domain.")
    kind: str
    reason: str | None
    detail: str | None
    created_at: datetime | None


class SuppressionPage(BaseModel):
    total: int
    items: list[Suppression]
    next_cursor: str | None


class SuppressBody(BaseModel):
    email: str = Field(max_length=320, description="An address (ann@example.com) or a whole domain (@example.com).")
    reason: str = Field("manual", description="Why; recorded with the entry.")


class Suppressed(BaseModel):
    value: str
    kind: str
    reason: str
    added: bool = Field(description="False when it was on the list already (kept as it was).")


class ImportReport(Open):
    file: str
    campaign_id: str
    format: str
    dry_run: bool
    rows_read: int
    leads_created: int
    leads_updated: int
    recipients_added: int
    duplicates_skipped: int
    rejected: int
    rejections: list[dict[str, Any]]
