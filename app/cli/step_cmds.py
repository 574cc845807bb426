"""`outbound step add/list/edit/remove`: a campaign's sequence steps, changed safely while leads are in flight.

A step is named by its campaign and number (`--campaign-id C --order K`). Every change is checked against the
leads in flight first (app/domain/sequence_edits.py): what changes for them is printed with the number of
leads concerned before asking; a change that would send anyone a step again is refused; one that makes leads
skip a step needs `--force`. The new sequence is then written as a whole and the campaign switched to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer

from app.cli.campaign_admin_cmds import run_admin
from app.cli.common import JSON_OPTION, YES_OPTION, confirm, console, fail, print_json, print_table
from app.domain import sequence_edits
from app.domain.sequence_edits import SequenceImpact, StepSpec
from app.store import campaign_admin
from app.store.client import Database

step_app = typer.Typer(help="Add, list, edit and remove a campaign's sequence steps.", no_args_is_help=True)
CAMPAIGN_OPTION = typer.Option(..., "--campaign-id", help="Campaign _id.")
ORDER_OPTION = typer.Option(..., "--order", min=1, help="The step's number (step_order).")
FORCE_OPTION = typer.Option(False, "--force", help="Allow a change that makes leads in flight skip a step.")
THREAD_OPTION = typer.Option(
    None, "--thread/--no-thread", help="Reply in the recipient's thread / start a new one (default: by subject)."
)

# A change of the sequence: (keys, specs) -> (keys, specs), keys naming the steps (old ids or "new:0").
Change = Callable[[list[str], list[StepSpec]], tuple[list[str], list[StepSpec]]]


@dataclass(frozen=True)
class Prepared:
    """A sequence change worked out against the stored campaign and its leads, not yet written."""

    campaign_id: str
    sequence_id: str | None
    specs: list[StepSpec]
    impact: SequenceImpact
    lines: list[str]


async def _prepare(db: Database, campaign_id: str, change: Change, edited: bool) -> Prepared:
    doc = await campaign_admin.campaign_doc(db, campaign_id)
    steps = await campaign_admin.sequence_steps(db, doc.get("sequence_id"))
    keys = [s.id for s in steps]
    specs = [StepSpec(s.template_id, s.delay_minutes, s.thread) for s in steps]
    new_keys, new_specs = change(list(keys), list(specs))
    at, completed = await campaign_admin.lead_positions(db, campaign_id)
    if not new_specs and at:
        raise campaign_admin.AdminError(f"{sum(at.values())} lead(s) are in flight: a campaign needs a step")
    changed = [
        k for k, s in zip(new_keys, new_specs, strict=True) if edited and k in keys and specs[keys.index(k)] != s
    ]
    result = sequence_edits.impact(keys, new_keys, at, edited=changed, completed_leads=completed)
    names = await campaign_admin.templates_by_id(db, [s.template for s in [*specs, *new_specs]])
    label = {k: f"step {i} ({_name(names, s.template)})" for i, (k, s) in enumerate(zip(keys, specs, strict=True), 1)}
    label.update({k: f"the new step ({_name(names, s.template)})" for k, s in zip(new_keys, new_specs, strict=True)
                  if k not in keys})  # fmt: skip
    return Prepared(campaign_id, doc.get("sequence_id"), new_specs, result, sequence_edits.describe(result, label))


def _name(templates: dict[str, Any], template_id: str) -> str:
    found = templates.get(template_id)
    return str(found.name) if found is not None else template_id


def _change_sequence(ctx: typer.Context, campaign_id: str, change: Change, *, force: bool, yes: bool, edited: bool,
                     done: str) -> None:  # fmt: skip
    """Work out the change, say what it means for leads in flight, refuse or ask, then write it."""
    first = run_admin(ctx, lambda db: _prepare(db, campaign_id, change, edited))
    for line in first.lines:
        console.print(line)
    _refuse_unsafe(first.impact, force)
    if first.impact.affected_leads:
        confirm(f"{first.impact.affected_leads} lead(s) concerned: change the sequence of campaign {campaign_id}?", yes)

    async def write(db: Database) -> None:
        again = await _prepare(db, campaign_id, change, edited)
        if again.sequence_id != first.sequence_id or again.lines != first.lines:
            raise campaign_admin.AdminError("leads moved or the sequence changed meanwhile: run the command again")
        await campaign_admin.replace_sequence(db, campaign_id, again.sequence_id, again.specs)

    run_admin(ctx, write)
    console.print(done)


def _refuse_unsafe(result: SequenceImpact, force: bool) -> None:
    if result.refused:
        fail("refused: leads in flight would be sent a step they already had (nothing was changed)")
    if result.needs_force and not force:
        leads = sum(p.leads for p in result.needs_force)
        fail(f"refused: {leads} lead(s) in flight would skip a step; pass --force to accept (nothing was changed)")


def add(
    ctx: typer.Context,
    campaign_id: str = CAMPAIGN_OPTION,
    template: str = typer.Option(..., "--template", help="Template id or name."),
    delay_minutes: float = typer.Option(0.0, "--delay-minutes", min=0, help="Wait after the previous step."),
    order: int | None = typer.Option(None, "--order", min=1, help="Insert as this step (default: at the end)."),
    thread: bool | None = THREAD_OPTION,
    force: bool = FORCE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Add a step to a campaign's sequence, at the end or as step --order.

    Example: outbound step add --campaign-id 665f1c2e9b1e8a3d4c5b6a70 --template follow-up --delay-minutes 2880
    """
    resolved = run_admin(ctx, lambda db: campaign_admin.find_template(db, template))

    def change(keys: list[str], specs: list[StepSpec]) -> tuple[list[str], list[StepSpec]]:
        at = len(keys) if order is None else order - 1
        if at > len(keys):
            raise campaign_admin.AdminError(f"--order {order}: the sequence has {len(keys)} step(s)")
        keys.insert(at, "new:0")
        specs.insert(at, StepSpec(resolved.id, delay_minutes, thread))
        return keys, specs

    done = f"step added to campaign {campaign_id} (template {resolved.name})"
    _change_sequence(ctx, campaign_id, change, force=force, yes=yes, edited=False, done=done)


def edit(
    ctx: typer.Context,
    campaign_id: str = CAMPAIGN_OPTION,
    order: int = ORDER_OPTION,
    template: str | None = typer.Option(None, "--template", help="Template id or name."),
    delay_minutes: float | None = typer.Option(None, "--delay-minutes", min=0, help="Wait after the previous step."),
    thread: bool | None = THREAD_OPTION,
    move_to: int | None = typer.Option(None, "--move-to", min=1, help="Move the step to this number."),
    force: bool = FORCE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Change a step's template, delay or threading, or move it (--move-to).

    Example: outbound step edit --campaign-id 665f1c2e9b1e8a3d4c5b6a70 --order 2 --delay-minutes 1440
    """
    resolved = run_admin(ctx, lambda db: campaign_admin.find_template(db, template)) if template else None

    def change(keys: list[str], specs: list[StepSpec]) -> tuple[list[str], list[StepSpec]]:
        if order > len(keys):
            raise campaign_admin.AdminError(f"--order {order}: the sequence has {len(keys)} step(s)")
        old = specs[order - 1]
        specs[order - 1] = StepSpec(
            resolved.id if resolved else old.template,
            old.delay_minutes if delay_minutes is None else delay_minutes,
            old.thread if thread is None else thread,
        )
        if move_to is not None:
            if move_to > len(keys):
                raise campaign_admin.AdminError(f"--move-to {move_to}: the sequence has {len(keys)} step(s)")
            keys.insert(move_to - 1, keys.pop(order - 1))
            specs.insert(move_to - 1, specs.pop(order - 1))
        return keys, specs

    done = f"step {order} of campaign {campaign_id} changed"
    _change_sequence(ctx, campaign_id, change, force=force, yes=yes, edited=True, done=done)


def remove(
    ctx: typer.Context,
    campaign_id: str = CAMPAIGN_OPTION,
    order: int = ORDER_OPTION,
    force: bool = FORCE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Remove a step; the steps after it move up one number.

    Example: outbound step remove --campaign-id 665f1c2e9b1e8a3d4c5b6a70 --order 3
    """

    def change(keys: list[str], specs: list[StepSpec]) -> tuple[list[str], list[StepSpec]]:
        if order > len(keys):
            raise campaign_admin.AdminError(f"--order {order}: the sequence has {len(keys)} step(s)")
        del keys[order - 1], specs[order - 1]
        return keys, specs

    done = f"step {order} removed from campaign {campaign_id}"
    _change_sequence(ctx, campaign_id, change, force=force, yes=yes, edited=False, done=done)


async def _rows(db: Database, campaign_id: str) -> list[dict[str, Any]]:
    doc = await campaign_admin.campaign_doc(db, campaign_id)
    steps = await campaign_admin.sequence_steps(db, doc.get("sequence_id"))
    names = await campaign_admin.templates_by_id(db, [s.template_id for s in steps])
    at, _completed = await campaign_admin.lead_positions(db, campaign_id)
    return [
        {
            "step_order": s.step_order,
            "template_id": s.template_id,
            "template_name": names[s.template_id].name if s.template_id in names else None,
            "delay_minutes": s.delay_minutes,
            "thread": s.thread,
            "leads_at_step": at.get(s.step_order, 0),
        }
        for s in steps
    ]


def list_steps(ctx: typer.Context, campaign_id: str = CAMPAIGN_OPTION, json_: bool = JSON_OPTION) -> None:
    """List a campaign's steps with their templates, delays and the leads in flight at each.

    Example: outbound step list --campaign-id 665f1c2e9b1e8a3d4c5b6a70
    """
    rows = run_admin(ctx, lambda db: _rows(db, campaign_id))
    if json_:
        print_json({"campaign_id": campaign_id, "steps": rows})
        return
    columns = ["step", "template", "delay (min)", "thread", "leads at step"]
    columns_from = ("delay_minutes", "thread", "leads_at_step")
    table = [
        [r["step_order"], r["template_name"] or f"{r['template_id']} (missing)", *(r[k] for k in columns_from)]
        for r in rows
    ]
    print_table(f"Steps of campaign {campaign_id}", columns, table)


step_app.command("add")(add)
step_app.command("list")(list_steps)
step_app.command("edit")(edit)
step_app.command("remove")(remove)


def register(app: typer.Typer) -> None:
    """Add the `step` commands to `app`."""
    app.add_typer(step_app, name="step")
