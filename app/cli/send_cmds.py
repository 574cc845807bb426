"""`debug-template` and `test-smtp` (seed 001): see what a lead would receive, and check an account's SMTP."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any

import typer
from rich.markup import escape

from app.cli.common import JSON_OPTION, console, err_console, fail, print_json, run_db, settings_of
from app.cli.dispatcher_wiring import unsubscribe_links
from app.config import Settings
from app.credentials import CredentialsError, credentials_for
from app.domain.inbound import SendRef
from app.domain.models import Campaign, EmailAccount, GeneralSettings, Lead, SequenceStep, Template
from app.domain.planning import Thread, thread_before, threading_for, threads_of
from app.domain.templating import RenderedEmail, Renderer, TemplateError, build_context
from app.send.compose import UnsubscribeLinks, extra_headers, unsubscribe_link
from app.store import schema
from app.store.client import Database
from app.store.documents import get_doc, get_model, id_values, iter_valid
from app.transport.base import AccountAuthError, SendError
from app.transport.smtp import check_account, effective_security


class _Refused(Exception):
    """The command cannot go on; the message says what to fix."""


@dataclass(frozen=True)
class _Preview:
    """Everything needed to render one lead's step."""

    campaign: Campaign
    lead: Lead
    step: SequenceStep
    template: Template
    account: EmailAccount
    general: GeneralSettings | None
    threads: dict[int, Thread]  # what the lead's earlier steps left (`progress.threads`)


@dataclass(frozen=True)
class _Rendered:
    """One recipient's email as the pipeline would compose it: the rendered parts and the other headers."""

    email: RenderedEmail
    headers: dict[str, str]


async def _step(db: Database, campaign: Campaign, step_order: int) -> SequenceStep:
    if not campaign.sequence_id:
        raise _Refused(f"campaign {campaign.id} has no sequence_id: set campaigns.sequence_id to its sequence")
    flt = {"sequence_id": campaign.sequence_id}
    steps = {s.step_order: s async for s in iter_valid(db[schema.SEQUENCE_STEPS], flt, SequenceStep.from_doc)}
    if step_order not in steps:
        known = ", ".join(str(n) for n in sorted(steps)) or "none"
        raise _Refused(
            f"sequence {campaign.sequence_id} has no step {step_order} (steps: {known}); pass --step with one of them"
        )
    return steps[step_order]


async def _account(db: Database, campaign: Campaign, account_id: str | None) -> EmailAccount:
    coll = db[schema.EMAIL_ACCOUNTS]
    if account_id is not None:
        return await get_model(coll, "email account", account_id, EmailAccount.from_doc)
    allowed = campaign.settings.account_ids
    flt: dict[str, Any] = {"status": "active"}
    if allowed:
        flt["_id"] = {"$in": [v for a in allowed for v in id_values(a)]}
    accounts = [a async for a in iter_valid(coll, flt, EmailAccount.from_doc, sort=[("_id", 1)])]
    if allowed:
        accounts.sort(key=lambda a: allowed.index(a.id) if a.id in allowed else len(allowed))
    if not accounts:
        raise _Refused(f"no active email account may send for campaign {campaign.id}; pass --account-id")
    return accounts[0]


async def _general(db: Database, account: EmailAccount) -> GeneralSettings | None:
    flt = {"email_id": {"$in": id_values(account.id)}}
    async for general in iter_valid(db[schema.EMAIL_GENERAL_SETTINGS], flt, GeneralSettings.from_doc, limit=1):
        return general
    return None


async def _load_preview(
    db: Database, campaign_id: str, lead_id: str, step_order: int | None, account_id: str | None
) -> _Preview:
    campaign = await get_model(db[schema.CAMPAIGNS], "campaign", campaign_id, Campaign.from_doc)
    lead_doc = await get_doc(db[schema.CAMPAIGN_LEADS], "lead", lead_id)
    lead = Lead.from_doc(lead_doc)
    if lead.campaign_id != campaign.id:
        raise _Refused(f"lead {lead_id} belongs to campaign {lead.campaign_id}, not {campaign.id}")
    step = await _step(db, campaign, step_order or lead.progress.current_step_order)
    template = await get_model(db[schema.TEMPLATES], "template", step.template_id, Template.from_doc)
    account = await _account(db, campaign, account_id)
    general = await _general(db, account)
    return _Preview(campaign, lead, step, template, account, general, threads_of(lead_doc))


def _render_all(
    preview: _Preview, indexes: list[int], links: UnsubscribeLinks
) -> list[tuple[int, _Rendered | TemplateError]]:
    renderer = Renderer()
    return [(index, _render_one(renderer, preview, index, links)) for index in indexes]


def _render_one(
    renderer: Renderer, preview: _Preview, index: int, links: UnsubscribeLinks
) -> _Rendered | TemplateError:
    """What `send/compose.py` would build for one recipient: its thread, unsubscribe link, subject and headers."""
    step, account = preview.step, preview.account
    ref = SendRef(str(preview.lead.id), step.step_order, index)
    context = build_context(
        campaign=preview.campaign,
        lead=preview.lead,
        recipient_index=index,
        step_order=step.step_order,
        account=account,
        general=preview.general,
        unsubscribe_url=unsubscribe_link(ref, account.email, links),
    )
    previous = thread_before(preview.threads, index, step.step_order)
    threading = threading_for(step.step_order, step.thread, bool(preview.template.subject), previous)
    if isinstance(threading, str):
        return TemplateError(preview.template.id, "subject", threading, sorted(context))
    try:
        rendered = renderer.render(preview.template, context, reply=threading.subject, send_key=ref.send_key)
    except TemplateError as exc:
        return exc
    return _Rendered(rendered, extra_headers(ref, account.email, threading, links))


def _as_json(preview: _Preview, results: list[tuple[int, _Rendered | TemplateError]]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for index, outcome in results:
        row: dict[str, Any] = {"recipient_index": index, "email": preview.lead.recipients[index].email}
        if isinstance(outcome, TemplateError):
            row["error"] = {
                "template_id": outcome.template_id,
                "part": outcome.part,
                "reason": outcome.reason,
                "available": outcome.available,
            }
        else:
            email = outcome.email
            row.update(subject=email.subject, text=email.text, html=email.html, headers=outcome.headers)
            row.update(variant=email.variant, spins=[asdict(s) for s in email.spins])
        rows.append(row)
    return {
        "campaign_id": preview.campaign.id,
        "lead_id": str(preview.lead.id),
        "step_order": preview.step.step_order,
        "template_id": preview.template.id,
        "account_id": preview.account.id,
        "ok": not any(isinstance(o, TemplateError) for _, o in results),
        "recipients": rows,
    }


def _print_results(preview: _Preview, results: list[tuple[int, _Rendered | TemplateError]]) -> None:
    console.print(
        f"Campaign {preview.campaign.name} ({preview.campaign.id}), lead {preview.lead.id}, "
        f"step {preview.step.step_order}, template {preview.template.name} ({preview.template.id}), "
        f"account {preview.account.email} ({preview.account.id})",
        markup=False,
    )
    for index, outcome in results:
        email = preview.lead.recipients[index].email
        console.print(f"\n=== recipient {index}: {email}", markup=False)
        if isinstance(outcome, TemplateError):
            console.print("template error (details on stderr)")
            err_console.print(f"recipient {index} ({email}): template error: {outcome}", markup=False)
            continue
        parts = outcome.email
        _print_wording(parts)
        headers = "".join(f"{name}: {value}\n" for name, value in outcome.headers.items())
        console.print(f"Subject: {parts.subject}\n{headers}--- text ---\n{parts.text}", markup=False)
        console.print(f"--- html ---\n{parts.html}" if parts.html is not None else "--- no html ---", markup=False)


def _print_wording(email: RenderedEmail) -> None:
    """Which variant the recipient gets and what each spin chose for it."""
    if email.variant is not None:
        console.print(f"variant: {email.variant}", markup=False)
    for s in email.spins:
        where = f"{s.part} line {s.line} column {s.column}"
        console.print(f"spin at {where}: option {s.chosen + 1} of {s.options}: {s.text!r}", markup=False)


def debug_template(
    ctx: typer.Context,
    campaign_id: str = typer.Argument(..., help="The campaign's id."),
    lead_id: str = typer.Option(..., "--lead-id", help="The lead to render for."),
    step: int | None = typer.Option(None, "--step", min=1, help="Step order (default: the lead's current step)."),
    recipient: int | None = typer.Option(None, "--recipient", min=0, help="Recipient index (default: all)."),
    account_id: str | None = typer.Option(
        None, "--account-id", help="Sending account (default: the first active account the campaign may use)."
    ),
    json_: bool = JSON_OPTION,
) -> None:
    """Render a lead's email (subject, headers, text, HTML) for each recipient, or show the exact template error.

    Each recipient's template variant and spintax choices are shown (those its real send gets). A follow-up
    shows the thread it would reply in (In-Reply-To, References, "Re: ..."); every email its List-Unsubscribe.

    Example: outbound debug-template 665f0c... --lead-id 665f0d... --step 2
    """
    settings = settings_of(ctx)
    try:
        preview = run_db(settings, lambda db: _load_preview(db, campaign_id, lead_id, step, account_id))
    except _Refused as exc:
        fail(escape(str(exc)))
    count = len(preview.lead.recipients)
    if recipient is not None and recipient >= count:
        have = f"{count} recipient(s) (indexes 0-{count - 1})"
        fail(f"lead {escape(lead_id)} has {have}; --recipient {recipient} does not exist")
    indexes = [recipient] if recipient is not None else list(range(count))
    results = _render_all(preview, indexes, unsubscribe_links(settings))
    if json_:
        print_json(_as_json(preview, results))
    else:
        _print_results(preview, results)
    if any(isinstance(outcome, TemplateError) for _, outcome in results):
        raise typer.Exit(1)


def _hint(err: SendError) -> str:
    if isinstance(err, AccountAuthError) and err.during == "auth":
        return "check smtp_username and the password (many providers require an app password)"
    if err.during == "tls":
        return (
            "check the server's TLS certificate (trusted, matching smtp_host) and smtp_security "
            "(starttls, usually port 587; tls, usually port 465)"
        )
    if err.during == "connect":
        return "check smtp_host and smtp_port, and that no firewall blocks outgoing connections to that port"
    return "the server refused the session; read its reply above"


def check_smtp(settings: Settings, account: EmailAccount, timeout: float | None = None) -> str | None:
    """Connect, secure and authenticate as `account` (its password revealed just for this), printing each step;
    None when it passed, else what failed and what to fix. Sends no email."""
    security = effective_security(account, settings.smtp_starttls)
    console.print(
        f"Testing {account.email} ({account.id}) via {account.smtp_host}:{account.smtp_port}, security {security}",
        markup=False,
    )
    try:
        login = credentials_for(settings).for_smtp(account)
    except CredentialsError as exc:
        return f"SMTP check failed before connecting: {exc}"
    try:
        asyncio.run(
            check_account(
                login,
                timeout=timeout or settings.smtp_timeout,
                default_starttls=settings.smtp_starttls,
                local_hostname=settings.helo_name,
                on_step=lambda text: console.print(f"  ok  {text}", markup=False),
            )
        )
    except SendError as err:
        kind = type(err).__name__
        return f"SMTP check failed during {err.during or 'the session'} ({kind}): {err}\nhint: {_hint(err)}"
    return None


def test_smtp(
    ctx: typer.Context,
    account_id: str = typer.Argument(..., help="The email account's id."),
    timeout: float | None = typer.Option(
        None, "--timeout", min=0.1, help="Seconds to wait for each reply (default OUTBOUND_SMTP_TIMEOUT)."
    ),
) -> None:
    """Connect to an account's SMTP server, secure the connection and authenticate, reporting each step.

    Sends no email. Example: outbound test-smtp 665f0e...
    """
    settings = settings_of(ctx)
    account = run_db(
        settings, lambda db: get_model(db[schema.EMAIL_ACCOUNTS], "email account", account_id, EmailAccount.from_doc)
    )
    if account.status != "active":
        console.print(f"note: the account's status is {account.status}; the dispatcher does not use it", markup=False)
    problem = check_smtp(settings, account, timeout)
    if problem is not None:
        fail(escape(problem))
    console.print("SMTP check passed: the account can connect and authenticate.")


def register(app: typer.Typer) -> None:
    """Add `debug-template` and `test-smtp`."""
    app.command("debug-template")(debug_template)
    app.command("test-smtp")(test_smtp)
