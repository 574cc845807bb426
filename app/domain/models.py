"""Typed, validated views of seed 001's documents (and ours).

`X.from_doc(doc)` either returns a view or raises InvalidDocument naming the collection, the `_id`, the field
and why, so a command can report a malformed document and skip it instead of crashing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email

from app.domain import collections as schema

CAMPAIGN_STATUSES = ("active", "paused", "completed", "draft")
ACCOUNT_STATUSES = ("active", "paused", "disabled", "auth_failed")
RECIPIENT_STATUSES = (
    "not_contacted",
    "contacted",
    "failed",
    "replied",
    "unsubscribed",
    "bounced",
    "uncertain",
)
SMTP_SECURITY = ("starttls", "tls", "none")
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class InvalidDocument(ValueError):
    """A stored document does not fit the data contract."""

    def __init__(self, collection: str, doc_id: object, field_name: str, reason: str) -> None:
        super().__init__(f"{collection} {doc_id}: field '{field_name}' {reason}")
        self.collection = collection
        self.doc_id = doc_id
        self.field = field_name
        self.reason = reason


class InvalidAddress(ValueError):
    """An email address that cannot be mailed."""


def has_line_break(value: str) -> bool:
    """True when `value` contains CR, LF or any other line break (header injection)."""
    return bool(_LINE_BREAKS.search(value))


def normalize_email(raw: object) -> str:
    """Validate an address's syntax and return it normalised (domain lower-cased); raise InvalidAddress."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidAddress("address is empty")
    text = raw.strip()
    if has_line_break(text):
        raise InvalidAddress(f"address {text!r} contains a line break")
    try:
        # Outbound does not speak SMTPUTF8, so a non-ASCII local part could never be delivered: refuse it here.
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{text!r} is not a valid address: {exc}") from None
    local, _, domain = result.normalized.rpartition("@")
    return f"{local}@{domain.lower()}"


class _Reader:
    """Field accessors that raise InvalidDocument with the document's context."""

    def __init__(self, collection: str, doc: Mapping[str, Any]) -> None:
        if not isinstance(doc, Mapping):
            raise InvalidDocument(collection, None, "_id", "document is not an object")
        self.collection = collection
        self.doc = doc
        self.id = doc.get("_id")

    def fail(self, name: str, reason: str) -> InvalidDocument:
        return InvalidDocument(self.collection, self.id, name, reason)

    def get(self, name: str) -> Any:
        value: Any = self.doc
        for part in name.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    def string(self, name: str, required: bool = True, value: Any = None) -> str | None:
        value = self.get(name) if value is None else value
        if value is None or value == "":
            if required:
                raise self.fail(name, "is required")
            return None
        if not isinstance(value, str):
            if hasattr(value, "binary"):  # ObjectId used where seed 001 stores a string id
                return str(value)
            raise self.fail(name, f"must be a string, got {type(value).__name__}")
        return value

    def req_string(self, name: str) -> str:
        value = self.string(name)
        assert value is not None
        return value

    def number(self, name: str, *, default: float | None = None, minimum: float = 0.0) -> float | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(name, f"must be a number, got {value!r}")
        if value < minimum:
            raise self.fail(name, f"must be >= {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, name: str, *, default: int | None = None, minimum: int = 0) -> int | None:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, f"must be a whole number, got {value!r}")
        if value < minimum:
            raise self.fail(name, f"must be >= {minimum}, got {value!r}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, got {value!r}")
        return value

    def when(self, name: str) -> datetime | None:
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise self.fail(name, f"must be a date, got {value!r}")
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.get(name)
        if value is None and default is not None:
            return default
        if value not in choices:
            raise self.fail(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def mapping(self, name: str) -> Mapping[str, Any]:
        value = self.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(name, f"must be an object, got {type(value).__name__}")
        return value


def id_str(value: object) -> str:
    """Ids are stored as ObjectId or string; Outbound compares them as strings."""
    return str(value)


@dataclass(frozen=True)
class CampaignSettings:
    """`campaigns.settings`: limits per sending account for this campaign."""

    daily_limit: int | None = None  # sends per account per day for this campaign
    min_wait_time: float = 0.0  # minutes between two sends of one account, and between recipients of a lead
    batch_size: int | None = None
    account_ids: tuple[str, ...] = ()  # empty: every active account may send for this campaign
    uncertain_after_hours: float = 24.0  # an unresolved uncertain send counts as sent after this long


@dataclass(frozen=True)
class Campaign:
    """A campaign (seed 001)."""

    id: str
    name: str
    status: str
    sequence_id: str | None
    settings: CampaignSettings
    created_at: datetime | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Campaign:
        r = _Reader(schema.CAMPAIGNS, doc)
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
            ),
            created_at=r.when("created_at"),
        )


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
        r = _Reader(schema.CAMPAIGN_LEADS, doc)
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
                stop_reason=r.string("progress.stop_reason", required=False),
                retries=dict(r.mapping("progress.retries")),
            ),
        )


def _recipient(r: _Reader, index: int, item: Any) -> Recipient:
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

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> SequenceStep:
        r = _Reader(schema.SEQUENCE_STEPS, doc)
        return cls(
            id=id_str(r.id),
            sequence_id=r.req_string("sequence_id"),
            step_order=r.integer("step_order", minimum=1) or _missing(r, "step_order"),
            template_id=r.req_string("template_id"),
            delay_minutes=r.number("delay_minutes", default=0.0) or 0.0,
        )


def _missing(r: _Reader, name: str) -> Any:
    raise r.fail(name, "is required")


def split_subject_line(body: str) -> tuple[str | None, str]:
    """Seed 001's template form: a body whose first line is `Subject: ...` carries its subject."""
    first, _sep, rest = body.lstrip("\ufeff").partition("\n")
    if first.lower().startswith("subject:"):
        return first[len("subject:") :].strip(), rest.lstrip("\r\n")
    return None, body


@dataclass(frozen=True)
class Template:
    """An email template: subject, text body and optional HTML body (Jinja2 sources)."""

    id: str
    name: str
    subject: str
    body_text: str
    body_html: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Template:
        r = _Reader(schema.TEMPLATES, doc)
        body_text = r.string("body_text", required=False)
        body_html = r.string("body_html", required=False)
        if body_text is None and body_html is None:
            raise r.fail("body_text", "is required (or body_html)")
        line_subject, body_text = split_subject_line(body_text) if body_text else (None, body_text)
        subject = r.string("subject", required=False) or line_subject
        if not subject:
            raise r.fail("subject", "is required (or a first body line 'Subject: ...')")
        return cls(
            id=id_str(r.id),
            name=r.string("name", required=False) or id_str(r.id),
            subject=subject,
            body_text=body_text or "",
            body_html=body_html,
        )


@dataclass(frozen=True)
class EmailAccount:
    """An SMTP sending account (seed 001 `email_accounts`)."""

    id: str
    email: str
    smtp_host: str
    smtp_port: int
    smtp_username: str | None
    smtp_password: str | None = field(repr=False)
    status: str
    provider: str | None = None
    security: str | None = None  # starttls, tls (implicit), none; None: SMTP_STARTTLS decides
    sender_name: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> EmailAccount:
        r = _Reader(schema.EMAIL_ACCOUNTS, doc)
        try:
            email = normalize_email(r.get("email"))
        except InvalidAddress as exc:
            raise r.fail("email", str(exc)) from None
        port = r.integer("smtp_port", default=587, minimum=1) or 587
        if port > 65535:
            raise r.fail("smtp_port", f"must be a TCP port (1-65535), got {port}")
        security = r.get("smtp_security")
        if security is not None and security not in SMTP_SECURITY:
            raise r.fail("smtp_security", f"must be one of {', '.join(SMTP_SECURITY)}, got {security!r}")
        host = r.req_string("smtp_host")
        if has_line_break(host) or " " in host:
            raise r.fail("smtp_host", f"is not a host name: {host!r}")
        return cls(
            id=id_str(r.id),
            email=email,
            smtp_host=host,
            smtp_port=port,
            smtp_username=r.string("smtp_username", required=False),
            smtp_password=r.string("smtp_password", required=False),
            status=r.choice("status", ACCOUNT_STATUSES, default="active"),
            provider=r.string("provider", required=False),
            security=security,
            sender_name=r.string("sender_name", required=False) or r.string("name", required=False),
        )


@dataclass(frozen=True)
class GeneralSettings:
    """`email_general_settings`: an account's signature and sender identity."""

    email_id: str
    signature: str | None = None
    sender_name: str | None = None
    sender_first_name: str | None = None
    sender_last_name: str | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> GeneralSettings:
        r = _Reader(schema.EMAIL_GENERAL_SETTINGS, doc)
        return cls(
            email_id=r.req_string("email_id"),
            signature=r.string("signature", required=False),
            sender_name=r.string("sender_name", required=False),
            sender_first_name=r.string("sender_first_name", required=False),
            sender_last_name=r.string("sender_last_name", required=False),
        )


@dataclass(frozen=True)
class AccountCampaignSettings:
    """`email_campaign_settings`: an account's limits (per campaign and across all campaigns)."""

    email_id: str
    daily_limit: int | None = None  # per campaign per day, unless the campaign sets a lower one
    min_wait_time: float = 0.0  # minutes between two sends of this account
    max_daily_sends: int | None = None  # per day across all campaigns

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AccountCampaignSettings:
        r = _Reader(schema.EMAIL_CAMPAIGN_SETTINGS, doc)
        return cls(
            email_id=r.req_string("email_id"),
            daily_limit=r.integer("daily_limit", minimum=0),
            min_wait_time=r.number("min_wait_time", default=0.0) or 0.0,
            max_daily_sends=r.integer("max_daily_sends", minimum=0),
        )
