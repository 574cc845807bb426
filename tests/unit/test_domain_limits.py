"""Per-domain limits: which bucket a domain counts in, providers from MX hosts, the next slot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.domain_limits import Bucket, DomainLimit, bucket_for, mx_provider, next_slot, usage_day, usage_hour
from app.domain.models import InvalidDocument

GMAIL = DomainLimit("gmail.com", 20, group_by_mx=True)
ACME = DomainLimit("acme.example", 5, 30)
LIMITS = {"gmail.com": GMAIL, "acme.example": ACME}
PROVIDERS = {"gmail.com": "google", "workspace.example": "google", "m365.example": "microsoft"}


@pytest.mark.parametrize(
    ("hosts", "provider"),
    [
        (("gmail-smtp-in.l.google.com",), "google"),
        (("aspmx.l.google.com", "alt1.aspmx.l.google.com"), "google"),
        (("mx.googlemail.com",), "google"),
        (("acme-example.mail.protection.outlook.com",), "microsoft"),
        (("mx.acme.example", "aspmx.l.google.com"), "google"),
        (("mx.notgoogle.com",), None),
        ((), None),
    ],
)
def test_providers_from_mx_hosts(hosts: tuple[str, ...], provider: str | None) -> None:
    assert mx_provider(hosts) == provider


@pytest.mark.parametrize(
    ("domain", "default", "bucket"),
    [
        ("acme.example", None, Bucket("acme.example", ACME)),
        ("gmail.com", None, Bucket("mx:google", GMAIL)),
        ("workspace.example", None, Bucket("mx:google", GMAIL)),  # hosted by Google: shares gmail.com's limit
        ("m365.example", None, None),  # no Microsoft row
        ("m365.example", 7, Bucket("m365.example", DomainLimit("*", 7))),
        ("other.example", None, None),
        ("other.example", 7, Bucket("other.example", DomainLimit("*", 7))),
    ],
)
def test_bucket_for(domain: str, default: int | None, bucket: Bucket | None) -> None:
    assert bucket_for(domain, LIMITS, default, PROVIDERS) == bucket


def test_without_dns_answers_each_domain_counts_alone() -> None:
    assert bucket_for("gmail.com", LIMITS, None, {}) == Bucket("gmail.com", GMAIL)
    assert bucket_for("workspace.example", LIMITS, None, {}) is None


def test_rows_are_read_with_their_domain_normalised_and_refused_naming_the_field() -> None:
    row = DomainLimit.from_doc({"_id": 1, "domain": "@GMail.com.", "max_per_hour": 20, "group_by_mx": True})
    assert row == GMAIL
    with pytest.raises(InvalidDocument) as caught:
        DomainLimit.from_doc({"_id": 2, "domain": "acme.example"})
    assert caught.value.field == "max_per_hour"


@pytest.mark.parametrize(
    ("now", "slot"),
    [
        (datetime(2026, 3, 14, 9, 30, tzinfo=UTC), datetime(2026, 3, 14, 10, 0, tzinfo=UTC)),
        (datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC), datetime(2026, 3, 15, 0, 0, tzinfo=UTC)),
        (datetime(2028, 2, 28, 23, 0, tzinfo=UTC), datetime(2028, 2, 29, 0, 0, tzinfo=UTC)),
    ],
)
def test_a_deferred_recipient_waits_for_the_next_hour(now: datetime, slot: datetime) -> None:
    assert next_slot(now) == slot


def test_usage_is_counted_per_utc_day_and_hour() -> None:
    now = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
    assert (usage_day(now), usage_hour(now)) == ("2026-03-14", "09")
