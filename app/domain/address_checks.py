"""Address checks before sending: what DNS answers mean for a recipient's domain, and who gets the next step. Pure.

A domain is `invalid` only on proof that mail cannot be delivered there: the resolver answered NXDOMAIN (the
name does not exist), the domain publishes a null MX (RFC 7505: "accepts no mail"), or it answered NOERROR
with no record for each of MX, A and AAAA (no MX and no host to fall back to, RFC 5321 section 5.1). A resolver
that could not be reached, timed out, or failed (SERVFAIL, REFUSED) proves nothing: the domain is `unknown`,
and its recipients are mailed as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.domain.addresses import InvalidAddress, normalize_email
from app.domain.gates import GateContext, Skip, judge
from app.domain.models import Lead, recipient_key
from app.domain.stop_policy import SKIP_STATUSES, invalid_reason

# What one DNS question got.
RECORDS = "records"  # NOERROR with an answer
NO_RECORDS = "no_records"  # NOERROR without an answer (NODATA)
NXDOMAIN = "nxdomain"  # the name does not exist
NO_ANSWER = "no_answer"  # timeout, unreachable resolver, SERVFAIL, REFUSED: nothing learnt

# Domain verdicts.
VALID = "valid"
INVALID = "invalid"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Answer:
    """The outcome of one question (MX, A or AAAA); `values` are MX host names (lower case, no final dot)."""

    kind: str
    values: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class DomainLookup:
    """What DNS said about a domain's mail routing. A and AAAA are None when not asked (MX answered)."""

    domain: str
    mx: Answer
    a: Answer | None = None
    aaaa: Answer | None = None


@dataclass(frozen=True)
class DomainVerdict:
    """`valid`, `invalid` or `unknown`, with why in words an operator reads; `mx_hosts` when known."""

    domain: str
    status: str
    reason: str
    mx_hosts: tuple[str, ...] = ()


def needs_address_records(mx: Answer) -> bool:
    """True when the A and AAAA records decide (the MX question proved neither delivery nor its absence)."""
    return mx.kind == NO_RECORDS


def domain_verdict(lookup: DomainLookup) -> DomainVerdict:
    """Decide from the answers; only proof of non-delivery is `invalid`, the lack of an answer is `unknown`."""
    domain, mx = lookup.domain, lookup.mx
    if mx.kind == NXDOMAIN:
        return DomainVerdict(domain, INVALID, f"domain {domain} does not exist (NXDOMAIN)")
    if mx.kind == RECORDS:
        if mx.values in (("",), (".",)):
            return DomainVerdict(domain, INVALID, f"domain {domain} accepts no mail (null MX)")
        return DomainVerdict(domain, VALID, "MX " + ", ".join(mx.values), mx.values)
    if mx.kind == NO_ANSWER:
        return DomainVerdict(domain, UNKNOWN, f"DNS did not answer for {domain} (MX: {mx.detail or 'no answer'})")
    hosts = [answer for answer in (lookup.a, lookup.aaaa) if answer is not None]
    if any(answer.kind == RECORDS for answer in hosts):
        return DomainVerdict(domain, VALID, "no MX; mail goes to its A/AAAA address")
    if len(hosts) == 2 and all(answer.kind in (NO_RECORDS, NXDOMAIN) for answer in hosts):
        return DomainVerdict(domain, INVALID, invalid_reason(domain))
    failed = next((answer for answer in hosts if answer.kind == NO_ANSWER), None)
    detail = failed.detail if failed is not None and failed.detail else "no answer"
    return DomainVerdict(domain, UNKNOWN, f"DNS did not answer for {domain} (A/AAAA: {detail})")


@dataclass(frozen=True)
class RecipientCheck:
    """One recipient of a lead: whether the lead's next step goes to them, and why not."""

    lead_id: str
    index: int
    email: str
    step_order: int | None
    receives: bool
    reason: str
    domain_status: str | None = None  # valid / invalid / unknown; None when the syntax was refused
    mark_invalid: bool = False  # the domain is invalid and the recipient is not yet marked so


def address_domain(raw: object) -> tuple[str | None, str | None]:
    """(domain, None) for a valid address, (None, why) for one whose syntax is refused."""
    try:
        return normalize_email(raw).rpartition("@")[2], None
    except InvalidAddress as exc:
        return None, str(exc)


def check_lead(
    lead: Lead,
    verdicts: Mapping[str, DomainVerdict],
    ctx: GateContext,
) -> list[RecipientCheck]:
    """Who of `lead` would receive its current step and who would not, with why (the gates, then the domain)."""
    return [_check_recipient(lead, index, verdicts, ctx) for index in range(len(lead.recipients))]


def _check_recipient(lead: Lead, index: int, verdicts: Mapping[str, DomainVerdict], ctx: GateContext) -> RecipientCheck:
    recipient = lead.recipients[index]
    domain = recipient.email.rpartition("@")[2]
    verdict = verdicts.get(domain)
    status = verdict.status if verdict is not None else None
    ended = _ended(lead)
    if ended is not None:
        return RecipientCheck(str(lead.id), index, recipient.email, None, False, ended, status)
    step = lead.progress.current_step_order
    mark = status == INVALID and recipient.status not in SKIP_STATUSES
    reason = _why_not(lead, index, step, ctx)
    if reason is None and mark:
        reason = f"recipient is invalid ({invalid_reason(domain)})"
    if reason is not None:
        return RecipientCheck(str(lead.id), index, recipient.email, step, False, reason, status, mark)
    note = f"; {verdict.reason}" if verdict is not None and status == UNKNOWN else ""
    return RecipientCheck(str(lead.id), index, recipient.email, step, True, f"receives step {step}{note}", status)


def _ended(lead: Lead) -> str | None:
    if lead.progress.stopped:
        return "lead stopped" + (f" ({lead.progress.stop_reason})" if lead.progress.stop_reason else "")
    if lead.progress.completed:
        return "sequence completed"
    return None


def _why_not(lead: Lead, index: int, step: int, ctx: GateContext) -> str | None:
    if recipient_key(step, index) in lead.progress.processed_recipients:
        return f"already had step {step}"
    objection = judge(lead.recipients[index], ctx)
    if isinstance(objection, Skip):
        return objection.reason
    if objection is not None:
        return f"{objection.reason} (until {objection.until.isoformat()})"
    return None


def summary(checks: Sequence[RecipientCheck]) -> dict[str, int]:
    """Counts for the report's last line."""
    return {
        "recipients": len(checks),
        "receive": sum(1 for c in checks if c.receives),
        "do_not_receive": sum(1 for c in checks if not c.receives),
        "invalid_domains": sum(1 for c in checks if c.domain_status == INVALID),
        "unknown_domains": sum(1 for c in checks if c.domain_status == UNKNOWN),
        "newly_marked": sum(1 for c in checks if c.mark_invalid),
    }
