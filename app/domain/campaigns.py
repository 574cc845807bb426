"""Typed views of what is sent: campaigns, their leads and recipients, sequence steps and templates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.domain import collections as schema
from app.domain.addresses import InvalidAddress, normalize_email
from app.domain.document_reader import DocumentReader, id_str
from app.domain.sending_windows import InvalidSchedule, Schedule, parse_schedule
from app.domain.stop_policy import STOP_ON_REPLY

CAMPAIGN_STATUSES = ("active", "paused", "completed", "draft")
RECIPIENT_STATUSES = (
    "not_contacted",
    "contacted",
    "failed",
    "replied",
    "unsubscribed",
    "bounced",
    "uncertain",
    "invalid",  # validate-leads: the domain has no MX and no A record
)


@dataclass(frozen=True)
class CampaignSettings:
    """`campaigns.settings`: limits per sending account for this campaign."""

    daily_limit: int | None = None  # sends per account per day for this campaign
    min_wait_time: float = 0.0  # minutes between two sends of one account, and between recipients of a lead
    batch_size: int | None = None
    account_ids: tuple[str, ...] = ()  # empty: every active account may send for this campaign
    uncertain_after_hours: float = 24.0  # an unresolved uncertain send counts as sent after this long
    stop_on_reply: str = "lead"  # lead: a reply stops the whole lead; recipient: only that recipient; none
    hourly_limit: int | None = None  # sends per account per hour for this campaign
    wait_jitter: float = 0.0  # extra random minutes (uniform 0..N) on top of min_wait_time, drawn once per gap
    schedule: Schedule | None = None  # the sending window; None: any time
    max_attempts: int | None = None  # a job's retry budget; None: OUTBOUND_RETRY_MAX_ATTEMPTS


@dataclass(frozen=True)
class Campaign:
    """A campaign (seed 001)."""

    id: str
    name: str
    status: str
    sequence_id: str | None
    settings: CampaignSettings
    created_at: datetime | None = None
    job_id: str | None = None  # set on the campaign behind a job's execution (`kind: "job"`)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Campaign:
        r = DocumentReader(schema.CAMPAIGNS, doc)
        accounts = r.get("settings.account_ids") or []
        if not isinstance(accounts, list):
            raise r.fail("settings.account_ids", "must be a list of account ids")
        r.mapping("settings")
        return cls(
            id=id_str(r.id),
            name=r.req_string("name"),
            status=r.choice("status", CAMPAIGN_STATUSES),
            sequence_id=r.string("sequence_id", required=False),
            settings=CampaignSettings(
                daily_limit=r.integer("settings.daily_limit", minimum=0),
                min_wait_time=r.number("settings.min_wait_time", default=0.0) or 0.0,
                batch_size=r.integer("settings.batch_size", minimum=1),
                account_ids=tuple(id_str(a) for a in accounts),
                uncertain_after_hours=r.number("settings.uncertain_after_hours", default=24.0) or 0.0,
                stop_on_reply=r.choice("settings.stop_on_reply", STOP_ON_REPLY, default="lead"),
                hourly_limit=r.integer("settings.hourly_limit", minimum=0),
                wait_jitter=r.number("settings.wait_jitter", default=0.0, minimum=0.0) or 0.0,
                schedule=_schedule(r),
                max_attempts=r.integer("settings.max_attempts", minimum=1),
            ),
            created_at=r.when("created_at"),
            job_id=r.string("job_id", required=False),
        )


def _schedule(r: DocumentReader) -> Schedule | None:
    """`settings.schedule`, refused with the field at fault (an unknown zone, a bad time, no open day)."""
    if r.get("settings.schedule") is None:
        return None
    try:
        return parse_schedule(r.mapping("settings.schedule"))
    except InvalidSchedule as exc:
        raise r.fail(f"settings.schedule.{exc.field}", exc.reason) from None


@dataclass(frozen=True)
class Recipient:
    """One entry of `campaign_leads.lead_data`: a person at the lead's company."""

    email: str
    status: str = "not_contacted"
    fields: Mapping[str, Any] = field(default_factory=dict)
    last_contacted_at: datetime | None = None
    last_step: int | None = None


@dataclass(frozen=True)
class LeadProgress:
    """`campaign_leads.progress`, with our lease fields."""

    current_step_order: int = 1
    stopped: bool = False
    completed: bool = False
    last_sent_at: datetime | None = None
    next_due_at: datetime | None = None
    processed_recipients: Mapping[str, Any] = field(default_factory=dict)
    lease_owner: str | None = None
    lease_token: str | None = None
    lease_until: datetime | None = None
    stop_reason: str | None = None
    retries: Mapping[str, Any] = field(default_factory=dict)  # recipient key -> last failed attempt (account_id)


def recipient_key(step_order: int, index: int) -> str:
    """Seed 001's key in `progress.processed_recipients`."""
    return f"step_{step_order}_recipient_{index}"


@dataclass(frozen=True)
class Lead:
    """A lead (seed 001): a company with one or more recipients, moving through a sequence."""

    id: Any
    campaign_id: str
    recipients: tuple[Recipient, ...]
    progress: LeadProgress
    lead_key: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Lead:
        r = DocumentReader(schema.CAMPAIGN_LEADS, doc)
        data = r.get("lead_data")
        if not isinstance(data, list) or not data:
            raise r.fail("lead_data", "must be a non-empty list of recipients")
        recipients = tuple(_recipient(r, i, item) for i, item in enumerate(data))
        r.mapping("progress")
        processed = r.mapping("progress.processed_recipients")
        return cls(
            id=r.id,
            campaign_id=r.req_string("campaign_id"),
            recipients=recipients,
            lead_key=r.string("lead_key", required=False),
            progress=LeadProgress(
                current_step_order=r.integer("progress.current_step_order", default=1, minimum=1) or 1,
                stopped=r.boolean("progress.stopped"),
                completed=r.boolean("progress.completed"),
                last_sent_at=r.when("progress.last_sent_at"),
                next_due_at=r.when("progress.next_due_at"),
                processed_recipients=dict(processed),
                lease_owner=r.string("progress.lease_owner", required=False),
                lease_token=r.string("progress.lease_token", required=False),
                lease_until=r.when("progress.lease_until"),
                # `stopped_reason`; leads stopped by earlier versions carry `stop_reason`.
                stop_reason=r.string("progress.stopped_reason", required=False)
                or r.string("progress.stop_reason", required=False),
                retries=dict(r.mapping("progress.retries")),
            ),
        )


def _recipient(r: DocumentReader, index: int, item: Any) -> Recipient:
    name = f"lead_data.{index}"
    if not isinstance(item, Mapping):
        raise r.fail(name, "must be an object with an email")
    try:
        email = normalize_email(item.get("email"))
    except InvalidAddress as exc:
        raise r.fail(f"{name}.email", str(exc)) from None
    status = item.get("status") or "not_contacted"
    if status not in RECIPIENT_STATUSES:
        raise r.fail(f"{name}.status", f"must be one of {', '.join(RECIPIENT_STATUSES)}, got {status!r}")
    last = item.get("last_contacted_at")
    if last is not None and not isinstance(last, datetime):
        raise r.fail(f"{name}.last_contacted_at", f"must be a date, got {last!r}")
    step = item.get("last_step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise r.fail(f"{name}.last_step", f"must be a whole number, got {step!r}")
    return Recipient(
        email=email,
        status=status,
        fields=dict(item),
        last_contacted_at=last if last is None or last.tzinfo else last.replace(tzinfo=UTC),
        last_step=step,
    )


@dataclass(frozen=True)
class SequenceStep:
    """One step of a sequence: which template, and how long after the previous step finished."""

    id: str
    sequence_id: str
    step_order: int
    template_id: str
    delay_minutes: float
    # True: reply in the recipient's thread (In-Reply-To, References) even when the template has a subject;
    # False: start a new thread (the template needs a subject); None: reply exactly when it has no subject.
    thread: bool | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> SequenceStep:
        r = DocumentReader(schema.SEQUENCE_STEPS, doc)
        return cls(
            id=id_str(r.id),
            sequence_id=r.req_string("sequence_id"),
            step_order=r.integer("step_order", minimum=1) or _missing(r, "step_order"),
            template_id=r.req_string("template_id"),
            delay_minutes=r.number("delay_minutes", default=0.0) or 0.0,
            thread=None if r.get("thread") is None else r.boolean("thread"),
        )


def _missing(r: DocumentReader, name: str) -> Any:
    raise r.fail(name, "is required")
