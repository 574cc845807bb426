"""`outbound apply FILE` and `outbound export <campaign_id>`: a campaign, its templates and steps as one file.

`apply` validates the file (file, line and field for each problem), works out the diff against what is
stored and what it means for the leads in flight, prints it, and only then writes (after `--yes` or a
confirmation); `--dry-run` stops after the diff. Applying the same file again, or a file `export` wrote,
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from app.cli.campaign_admin_cmds import run_admin
from app.cli.common import YES_OPTION, confirm, console, fail, now_utc
from app.domain import campaign_file, campaign_plan, sequence_edits
from app.domain.campaign_file import CampaignFileError
from app.domain.campaign_plan import ApplyPlan, Stored
from app.domain.campaign_specs import CampaignSpec
from app.domain.sequence_edits import SequenceImpact
from app.store import campaign_admin
from app.store.client import Database


@dataclass(frozen=True)
class Prepared:
    """A file's plan against the stored campaign, with its consequences for leads in flight."""

    plan: ApplyPlan
    stored: Stored
    impact: SequenceImpact | None
    lines: list[str]


def _read_spec(path: Path) -> CampaignSpec:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", code=2)

    def read(name: str) -> str:
        return (path.parent / name).read_text(encoding="utf-8-sig")

    try:
        return campaign_file.parse(text, str(path), read)
    except CampaignFileError as exc:
        fail(f"{path} is not a valid campaign file:\n" + "\n".join(exc.problems), code=2)


async def _prepare(db: Database, spec: CampaignSpec) -> Prepared:
    stored = await campaign_admin.stored_for(db, spec)
    account_ids = await campaign_admin.resolve_accounts(db, list(spec.accounts))
    plan = campaign_plan.plan(spec, stored, account_ids)
    lines = [c.line() for c in plan.changes]
    changed_ids = [t.id for t in plan.templates_changed if t.id]
    users = await campaign_admin.campaigns_using_templates(db, changed_ids) if changed_ids else {}
    own = stored.campaign.name if stored.campaign else None
    for t in plan.templates_changed:
        others = [n for n in users.get(t.id or "", []) if n != own]
        if others:
            lines.append(f"  template {t.name} is also used by: {', '.join(others)}")
    impact = None
    if stored.campaign is not None and plan.steps is not None:
        at, completed = await campaign_admin.lead_positions(db, stored.campaign.id)
        old = [key for key, _spec in stored.steps]
        edited = [k for k in plan.step_keys if k in old]
        edited = [k for k in edited if dict(stored.steps)[k] != plan.steps[plan.step_keys.index(k)]]
        impact = sequence_edits.impact(old, list(plan.step_keys), at, edited=edited, completed_leads=completed)
        label = {k: f"step {i} ({s.template})" for i, (k, s) in enumerate(stored.steps, 1)}
        label.update({k: f"the new step {i} ({s.template})" for i, (k, s) in
                      enumerate(zip(plan.step_keys, plan.steps, strict=True), 1) if k not in old})  # fmt: skip
        lines += [f"  {line}" for line in sequence_edits.describe(impact, label)]
    return Prepared(plan, stored, impact, lines)


def apply(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="The campaign file (YAML)."),
    yes: bool = YES_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would change."),
    force: bool = typer.Option(False, "--force", help="Allow step changes that make leads in flight skip a step."),
) -> None:
    """Create or update a campaign with its templates, steps and accounts from one YAML file.

    The campaign is found by the file's `id:`, else by its `name`. The diff is shown before anything is
    written; applying the same file twice changes nothing.

    Example: outbound apply spring.yaml --dry-run
    """
    spec = _read_spec(path)
    first = run_admin(ctx, lambda db: _prepare(db, spec))
    if first.plan.empty:
        console.print(f"{spec.name}: no change")
        return
    for line in first.lines:
        console.print(line, markup=False)
    if dry_run:
        console.print("dry run: nothing was written")
        return
    _refuse_unsafe(first.impact, force)
    confirm(f"Apply {len(first.plan.changes)} change(s) to campaign {spec.name!r}?", yes)
    now = now_utc()

    async def write(db: Database) -> str:
        again = await _prepare(db, spec)
        if again.lines != first.lines:
            raise campaign_admin.AdminError(
                "the campaign or its leads changed meanwhile: nothing was written; run again"
            )
        return await campaign_admin.apply_plan(db, again.plan, again.stored, now)

    campaign_id = run_admin(ctx, write)
    console.print(f"applied: campaign {campaign_id} ({spec.name})")


def _refuse_unsafe(result: SequenceImpact | None, force: bool) -> None:
    if result is None:
        return
    if result.refused:
        fail("refused: leads in flight would be sent a step they already had (nothing was written)")
    if result.needs_force and not force:
        leads = sum(p.leads for p in result.needs_force)
        fail(f"refused: {leads} lead(s) in flight would skip a step; pass --force to accept (nothing was written)")


def export(
    ctx: typer.Context,
    campaign_id: str = typer.Argument(..., help="Campaign _id."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to this file (default: standard output)."),
) -> None:
    """Write a campaign, its templates and steps as a campaign file that `apply` finds nothing to change in.

    Example: outbound export 665f1c2e9b1e8a3d4c5b6a70 -o spring.yaml
    """

    async def work(db: Database) -> str:
        stored = await campaign_admin.stored_campaign(db, await campaign_admin.campaign_doc(db, campaign_id))
        account_ids = list(stored.campaign.settings.account_ids) if stored.campaign else []
        return campaign_file.export(stored, await campaign_admin.account_emails(db, account_ids))

    text = run_admin(ctx, work)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote {output}")


def register(app: typer.Typer) -> None:
    """Add `apply` and `export` to `app`."""
    app.command("apply")(apply)
    app.command("export")(export)
