"""`outbound validate-leads`: check a campaign's addresses before sending (syntax, domain, MX) and say who gets
the next step and who does not, with why.

Recipients whose domain is proven unable to receive mail are marked `invalid` (with `invalid_reason`); the
dispatcher's stop policy then skips them with that reason. A domain DNS did not answer for is only reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import typer

from app.cli.common import JSON_OPTION, console, now_utc, print_json, print_table, run_db, settings_of
from app.cli.lookups import campaign_ref, load_campaign
from app.config import Settings
from app.domain.address_checks import (
    DomainVerdict,
    RecipientCheck,
    address_domain,
    check_lead,
    summary,
)
from app.domain.gates import GateContext
from app.domain.models import InvalidDocument, Lead
from app.domain.stop_policy import invalid_reason
from app.store import schema, suppressions
from app.store.client import Database
from app.store.invalid_recipients import Mark, mark_invalid
from app.transport.dns_check import DEFAULT_TIMEOUT_SECONDS, DnsChecker


@dataclass
class Report:
    """What a check found: a row per recipient, the verdict per domain, and how many were marked."""

    campaign_id: str
    campaign_name: str
    checks: list[RecipientCheck] = field(default_factory=list)
    domains: dict[str, DomainVerdict] = field(default_factory=dict)
    marked: int = 0


async def validate(
    db: Database, settings: Settings, campaign_id: str, *, timeout: float, dry_run: bool, now: datetime
) -> Report:
    """Check every recipient of the campaign; mark the invalid ones unless `dry_run`."""
    campaign = await load_campaign(db, campaign_id)
    report = Report(campaign.id, campaign.name)
    leads: list[tuple[Lead, Mapping[str, Any]]] = []
    async for doc in db[schema.CAMPAIGN_LEADS].find(campaign_ref(campaign.id), sort=[("_id", 1)]):
        try:
            leads.append((Lead.from_doc(doc), doc))
        except InvalidDocument as exc:
            report.checks += _unreadable(doc, exc)
    live = [lead for lead, _ in leads if not (lead.progress.stopped or lead.progress.completed)]
    domains = {r.email.rpartition("@")[2] for lead in live for r in lead.recipients}
    report.domains = await DnsChecker(settings.dns_servers, timeout=timeout).check_many(domains)
    emails = [r.email for lead in live for r in lead.recipients]
    ctx = GateContext(now=now, suppressed=await suppressions.load(db[schema.SUPPRESSIONS], emails))
    marks: list[Mark] = []
    for lead, stored in leads:
        checks = check_lead(lead, report.domains, ctx)
        report.checks += checks
        for c in checks:
            if c.mark_invalid:
                raw_email = stored["lead_data"][c.index]["email"]
                marks.append(Mark(lead.id, c.index, raw_email, invalid_reason(c.email.rpartition("@")[2])))
    if not dry_run:
        report.marked = await mark_invalid(db[schema.CAMPAIGN_LEADS], marks, now)
    return report


def _unreadable(doc: Mapping[str, Any], exc: InvalidDocument) -> list[RecipientCheck]:
    """A lead the dispatcher cannot read: each recipient with its syntax verdict and the document's problem."""
    data = doc.get("lead_data")
    entries = data if isinstance(data, list) else []
    rows = []
    for index, entry in enumerate(entries):
        raw = entry.get("email") if isinstance(entry, Mapping) else None
        _, why = address_domain(raw)
        reason = f"address refused: {why}" if why else f"lead is malformed ({exc.field}: {exc.reason})"
        rows.append(RecipientCheck(str(doc.get("_id")), index, str(raw), None, False, reason, None))
    return rows


def _as_json(report: Report) -> dict[str, Any]:
    return {
        "campaign_id": report.campaign_id,
        "campaign_name": report.campaign_name,
        "summary": {**summary(report.checks), "marked_invalid": report.marked},
        "domains": {d: {"status": v.status, "reason": v.reason} for d, v in sorted(report.domains.items())},
        "recipients": [
            {
                "lead_id": c.lead_id,
                "index": c.index,
                "email": c.email,
                "step_order": c.step_order,
                "receives": c.receives,
                "reason": c.reason,
                "domain_status": c.domain_status,
            }
            for c in report.checks
        ],
    }


def _render(report: Report, dry_run: bool) -> None:
    rows = [
        (c.lead_id, c.email, c.domain_status or "-", "yes" if c.receives else "no", c.reason) for c in report.checks
    ]
    title = f"Next step for {report.campaign_name} ({report.campaign_id})"
    print_table(title, ("lead", "recipient", "domain", "receives", "why"), rows)
    counts = summary(report.checks)
    marked = "would mark" if dry_run else "marked"
    newly = counts["newly_marked"] if dry_run else report.marked
    console.print(
        f"{counts['recipients']} recipients: {counts['receive']} receive the next step, "
        f"{counts['do_not_receive']} do not; domains: {counts['invalid_domains']} recipients at invalid, "
        f"{counts['unknown_domains']} at unknown (DNS did not answer: mailed as usual); {marked} {newly} invalid",
        markup=False,
    )


def validate_leads(
    ctx: typer.Context,
    campaign_id: str = typer.Option(..., "--campaign-id", help="The campaign whose leads to check."),
    timeout: float = typer.Option(
        DEFAULT_TIMEOUT_SECONDS, "--timeout", min=0.1, help="Seconds DNS may take per domain before it is unknown."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report only: mark nobody invalid."),
    json_: bool = JSON_OPTION,
) -> None:
    """Check the campaign's addresses (syntax, the domain exists, MX or A records) and show who would receive
    the next step and who would not, with why. Recipients whose domain has no MX and no A record (or does not
    exist) are marked invalid and skipped by the dispatcher; a domain DNS did not answer for stays mailable.

    Example: outbound validate-leads --campaign-id 65f0c0ffee0000000000c001 --json
    """
    settings = settings_of(ctx)
    report = run_db(
        settings, lambda db: validate(db, settings, campaign_id, timeout=timeout, dry_run=dry_run, now=now_utc())
    )
    if json_:
        print_json(_as_json(report))
    else:
        _render(report, dry_run)


def register(app: typer.Typer) -> None:
    """Add `validate-leads`."""
    app.command("validate-leads")(validate_leads)
