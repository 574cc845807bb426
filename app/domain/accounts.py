"""Typed views of the sending accounts: SMTP settings, sender identity and per-account limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain import collections as schema
from app.domain.addresses import InvalidAddress, has_line_break, normalize_email
from app.domain.document_reader import DocumentReader, id_str

ACCOUNT_STATUSES = ("active", "paused", "disabled", "auth_failed")
SMTP_SECURITY = ("starttls", "tls", "none")


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
        r = DocumentReader(schema.EMAIL_ACCOUNTS, doc)
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
        r = DocumentReader(schema.EMAIL_GENERAL_SETTINGS, doc)
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
        r = DocumentReader(schema.EMAIL_CAMPAIGN_SETTINGS, doc)
        return cls(
            email_id=r.req_string("email_id"),
            daily_limit=r.integer("daily_limit", minimum=0),
            min_wait_time=r.number("min_wait_time", default=0.0) or 0.0,
            max_daily_sends=r.integer("max_daily_sends", minimum=0),
        )
