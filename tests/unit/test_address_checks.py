"""Address checks: only proof of non-delivery makes a domain invalid; who gets the next step, and why not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.domain.address_checks import (
    INVALID,
    NO_ANSWER,
    NO_RECORDS,
    NXDOMAIN,
    RECORDS,
    UNKNOWN,
    VALID,
    Answer,
    DomainLookup,
    DomainVerdict,
    address_domain,
    check_lead,
    domain_verdict,
    needs_address_records,
    summary,
)
from app.domain.gates import GateContext
from app.domain.models import Lead, LeadProgress, Recipient
from app.domain.stop_policy import skip_reason

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
MX = Answer(RECORDS, ("mx1.acme.example",))
NODATA = Answer(NO_RECORDS)
GONE = Answer(NXDOMAIN)
TIMEOUT = Answer(NO_ANSWER, detail="timeout")
HOST = Answer(RECORDS)


@pytest.mark.parametrize(
    ("mx", "a", "aaaa", "status", "reason"),
    [
        (MX, None, None, VALID, "MX mx1.acme.example"),
        (NODATA, HOST, NODATA, VALID, "no MX; mail goes to its A/AAAA address"),
        (NODATA, NODATA, HOST, VALID, "no MX; mail goes to its A/AAAA address"),
        (GONE, None, None, INVALID, "domain acme.example does not exist (NXDOMAIN)"),
        (NODATA, NODATA, NODATA, INVALID, "no MX or A record for acme.example"),
        (Answer(RECORDS, (".",)), None, None, INVALID, "domain acme.example accepts no mail (null MX)"),
        # Nothing learnt is never proof: a timeout anywhere leaves the domain unknown.
        (TIMEOUT, None, None, UNKNOWN, "DNS did not answer for acme.example (MX: timeout)"),
        (NODATA, TIMEOUT, NODATA, UNKNOWN, "DNS did not answer for acme.example (A/AAAA: timeout)"),
        (NODATA, NODATA, TIMEOUT, UNKNOWN, "DNS did not answer for acme.example (A/AAAA: timeout)"),
        (NODATA, None, None, UNKNOWN, "DNS did not answer for acme.example (A/AAAA: no answer)"),
    ],
)
def test_domain_verdicts(mx: Answer, a: Answer | None, aaaa: Answer | None, status: str, reason: str) -> None:
    verdict = domain_verdict_of(mx, a, aaaa)
    assert (verdict.status, verdict.reason) == (status, reason)


def domain_verdict_of(mx: Answer, a: Answer | None, aaaa: Answer | None) -> DomainVerdict:
    return domain_verdict(DomainLookup("acme.example", mx, a, aaaa))


@pytest.mark.parametrize(("mx", "asks"), [(MX, False), (NODATA, True), (GONE, False), (TIMEOUT, False)])
def test_address_records_are_asked_for_only_when_mx_has_no_records(mx: Answer, asks: bool) -> None:
    assert needs_address_records(mx) is asks


@pytest.mark.parametrize(
    ("raw", "domain"),
    [("Ann@ACME.example", "acme.example"), ("zoë@müller.example", "müller.example"), ("not an address", None)],
)
def test_address_domain(raw: str, domain: str | None) -> None:
    found, why = address_domain(raw)
    assert found == domain
    assert (why is None) is (domain is not None)


def test_an_invalid_recipient_is_skipped_naming_the_domain() -> None:
    assert skip_reason("invalid", "ann@gone.example") == "recipient is invalid (no MX or A record for gone.example)"
    assert skip_reason("invalid") == "recipient is invalid"


def lead(*recipients: Recipient, **progress: object) -> Lead:
    return Lead(id="L1", campaign_id="C1", recipients=recipients, progress=LeadProgress(**progress))  # type: ignore[arg-type]


VERDICTS = {
    "ok.example": DomainVerdict("ok.example", VALID, "MX mx.ok.example"),
    "gone.example": DomainVerdict("gone.example", INVALID, "domain gone.example does not exist (NXDOMAIN)"),
    "slow.example": DomainVerdict("slow.example", UNKNOWN, "DNS did not answer for slow.example (MX: timeout)"),
}


def test_who_receives_the_next_step_and_who_does_not() -> None:
    checked = check_lead(
        lead(
            Recipient("ann@ok.example"),
            Recipient("bob@gone.example"),
            Recipient("cy@slow.example"),
            Recipient("di@ok.example", status="replied"),
            Recipient("ed@ok.example"),
            Recipient("flo@gone.example", status="invalid"),
            processed_recipients={"step_1_recipient_4": {"status": "sent"}},
        ),
        VERDICTS,
        GateContext(NOW, {"cy@slow.example": "manual"}),
    )
    rows = [(c.email, c.receives, c.reason, c.mark_invalid) for c in checked]
    assert rows == [
        ("ann@ok.example", True, "receives step 1", False),
        ("bob@gone.example", False, "recipient is invalid (no MX or A record for gone.example)", True),
        ("cy@slow.example", False, "suppressed (manual): cy@slow.example", False),
        ("di@ok.example", False, "recipient is replied", False),
        ("ed@ok.example", False, "already had step 1", False),
        ("flo@gone.example", False, "recipient is invalid (no MX or A record for gone.example)", False),
    ]
    counts = summary(checked)
    assert counts == {
        "recipients": 6,
        "receive": 1,
        "do_not_receive": 5,
        "invalid_domains": 2,
        "unknown_domains": 1,
        "newly_marked": 1,
    }


def test_an_unknown_domain_is_still_mailed_and_says_so() -> None:
    [check] = check_lead(lead(Recipient("cy@slow.example")), VERDICTS, GateContext(NOW))
    assert check.receives
    assert check.reason == "receives step 1; DNS did not answer for slow.example (MX: timeout)"


def test_a_stopped_lead_sends_nobody_anything() -> None:
    [check] = check_lead(
        lead(Recipient("ann@ok.example"), stopped=True, stop_reason="replied"), VERDICTS, GateContext(NOW)
    )
    assert (check.receives, check.reason, check.step_order) == (False, "lead stopped (replied)", None)
