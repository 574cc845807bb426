"""Per-domain throttles: which limit a recipient domain counts against, and when its next slot opens. Pure.

A `domain_limits` row caps the sends to one recipient domain per UTC hour (and optionally per UTC day) across
every account and campaign. `OUTBOUND_DEFAULT_DOMAIN_LIMIT` caps each domain without a row of its own. A row
with `group_by_mx: true` also covers the domains whose mail goes to the same provider as the row's domain
(Google, Microsoft), found from their MX records; all of them then count in one bucket. Without an MX answer
a domain counts alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain import collections as schema
from app.domain.document_reader import DocumentReader

# MX host suffixes of the providers whose domains may share a limit.
PROVIDERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("google", ("google.com", "googlemail.com")),
    ("microsoft", ("outlook.com",)),  # also *.mail.protection.outlook.com (Microsoft 365)
)


@dataclass(frozen=True)
class DomainLimit:
    """One `domain_limits` document (or the default limit, with `domain` "*")."""

    domain: str
    max_per_hour: int
    max_per_day: int | None = None
    group_by_mx: bool = False

    @classmethod
    def from_doc(cls, doc: Mapping[str, object]) -> DomainLimit:
        r = DocumentReader(schema.DOMAIN_LIMITS, doc)
        domain = r.req_string("domain").strip().lower().lstrip("@").rstrip(".")
        hourly = r.integer("max_per_hour", minimum=0)
        if hourly is None:
            raise r.fail("max_per_hour", "is required (sends per hour to this domain)")
        return cls(
            domain=domain,
            max_per_hour=hourly,
            max_per_day=r.integer("max_per_day", minimum=0),
            group_by_mx=r.boolean("group_by_mx"),
        )


@dataclass(frozen=True)
class Bucket:
    """What a domain's sends count against: `key` names the usage document, `limit` its caps."""

    key: str
    limit: DomainLimit


def mx_provider(mx_hosts: Iterable[str]) -> str | None:
    """The provider the first MX host that is one of theirs belongs to (None: not a known provider)."""
    for host in mx_hosts:
        name = host.lower().rstrip(".")
        for provider, suffixes in PROVIDERS:
            if any(name == suffix or name.endswith("." + suffix) for suffix in suffixes):
                return provider
    return None


def needs_mx(limits: Mapping[str, DomainLimit]) -> bool:
    """True when some row groups by provider, so recipient domains' MX records matter."""
    return any(limit.group_by_mx for limit in limits.values())


def bucket_for(
    domain: str,
    limits: Mapping[str, DomainLimit],
    default: int | None,
    providers: Mapping[str, str | None],
) -> Bucket | None:
    """The bucket `domain`'s sends count in, or None when no limit applies.

    Its own row first; else a `group_by_mx` row whose domain has the same provider; else the default limit.
    `providers` maps domains (recipients' and rows') to their MX provider where DNS said so.
    """
    own = limits.get(domain)
    provider = providers.get(domain)
    if own is not None:
        return Bucket(_group_key(provider) if own.group_by_mx and provider else domain, own)
    if provider is not None:
        for limit in limits.values():
            if limit.group_by_mx and providers.get(limit.domain) == provider:
                return Bucket(_group_key(provider), limit)
    if default is not None:
        return Bucket(domain, DomainLimit("*", default))
    return None


def _group_key(provider: str) -> str:
    return f"mx:{provider}"


def usage_day(now: datetime) -> str:
    """The UTC day a send at `now` counts in: `2026-03-14`."""
    return now.strftime("%Y-%m-%d")


def usage_hour(now: datetime) -> str:
    """The UTC hour within its day: `09`."""
    return now.strftime("%H")


def next_slot(now: datetime) -> datetime:
    """When a recipient deferred by a full bucket looks again: the start of the next UTC hour."""
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
