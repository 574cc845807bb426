"""`outbound template add/edit/show/list/lint`: email templates without writing documents by hand.

A template is `name`, `subject` (none for a follow-up sent as a reply), `body_text` and optional `body_html`;
a text file may be in seed 001's form, its first line `Subject: ...`. Templates are named by id or name.
`lint` renders a template for a sample recipient and account with the real sandboxed renderer.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import typer

from app.cli.campaign_admin_cmds import run_admin
from app.cli.common import JSON_OPTION, console, fail, print_json, print_table
from app.domain import template_lint
from app.domain.campaign_specs import TemplateSpec, template_from_text, template_spec
from app.domain.template_docs import Template
from app.domain.templating import RenderedEmail
from app.store import campaign_admin
from app.store.client import Database

template_app = typer.Typer(help="Add, edit, show, list and lint email templates.", no_args_is_help=True)
TEMPLATE_ARGUMENT = typer.Argument(..., help="Template _id or name.")
FILE_OPTION = typer.Option(None, "--file", help="Text body; a first line `Subject: ...` gives the subject.")
BODY_OPTION = typer.Option(None, "--body-file", help="Text body (the subject comes from --subject).")
HTML_OPTION = typer.Option(None, "--html-file", help="HTML body.")
SUBJECT_OPTION = typer.Option(None, "--subject", help="Subject (Jinja2); leave out for a follow-up sent as a reply.")


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", code=2)


def _content(name: str, subject: str | None, file: Path | None, body_file: Path | None, html_file: Path | None,
             base: TemplateSpec | None = None) -> TemplateSpec:  # fmt: skip
    """The template the options describe (on top of `base` when editing)."""
    if file is not None and body_file is not None:
        fail("give --file or --body-file, not both", code=2)
    html = _read(html_file)
    text = _read(file) if file is not None else _read(body_file)
    try:
        if file is not None and text is not None:
            spec = template_from_text(name, text, html, subject)
        elif base is None:
            spec = TemplateSpec(name, subject or None, text or "", html)
        else:
            spec = TemplateSpec(name, base.subject if subject is None else subject or None,
                                base.body_text if text is None else text,
                                base.body_html if html is None else html, base.id)  # fmt: skip
        # An edit keeps the template's variants: only campaign files change them.
        spec = TemplateSpec(spec.name, spec.subject or None, spec.body_text, spec.body_html, base.id if base else None,
                            base.variants if base else ())  # fmt: skip
        spec.document()
    except ValueError as exc:
        fail(str(exc), code=2)
    return spec


def _syntax_check(spec: TemplateSpec) -> template_lint.LintResult:
    result = template_lint.lint(Template(spec.id or "new", spec.name, spec.subject or "", spec.body_text,
                                         spec.body_html))  # fmt: skip
    broken = [p for p in result.problems if p.kind in ("syntax", "sandbox")]
    if broken:
        fail("; ".join(f"{p.part}: {p.detail}" for p in broken) + " (nothing was written)")
    return result


def _warn(result: template_lint.LintResult) -> None:
    for p in result.problems:
        console.print(f"warning: {p.part}: {p.detail} (`template lint` shows the sample it renders for)")


def add(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="The template's name (unique)."),
    file: Path | None = FILE_OPTION,
    subject: str | None = SUBJECT_OPTION,
    body_file: Path | None = BODY_OPTION,
    html_file: Path | None = HTML_OPTION,
    json_: bool = JSON_OPTION,
) -> None:
    """Add a template from files: `--file F` (seed 001's form) or `--subject S --body-file F`, with `--html-file`.

    Example: outbound template add --name intro --subject "Hello {{ first_name }}" --body-file intro.txt
    """
    if file is None and body_file is None and html_file is None:
        fail("give --file, --body-file or --html-file", code=2)
    spec = _content(name, subject, file, body_file, html_file)
    result = _syntax_check(spec)

    async def work(db: Database) -> str:
        if await campaign_admin.templates_named(db, name):
            raise campaign_admin.AdminError(f"a template named {name!r} exists already: choose another name")
        return await campaign_admin.insert_template(db, spec)

    template_id = run_admin(ctx, work)
    if json_:
        print_json({"_id": template_id, **spec.document()})
        return
    console.print(f"created template {template_id} ({name})")
    _warn(result)


def edit(
    ctx: typer.Context,
    template: str = TEMPLATE_ARGUMENT,
    name: str | None = typer.Option(None, "--name", help="A new name (unique)."),
    subject: str | None = SUBJECT_OPTION,
    no_subject: bool = typer.Option(False, "--no-subject", help="Remove the subject (sent as a reply only)."),
    file: Path | None = FILE_OPTION,
    body_file: Path | None = BODY_OPTION,
    html_file: Path | None = HTML_OPTION,
    no_html: bool = typer.Option(False, "--no-html", help="Remove the HTML body."),
) -> None:
    """Change a template; the campaigns using it send the new version to recipients not yet sent.

    Example: outbound template edit intro --body-file intro-v2.txt
    """
    current = run_admin(ctx, lambda db: campaign_admin.find_template(db, template))
    base = template_spec(current)
    if no_subject:
        base = replace(base, subject=None)
    if no_html:
        base = replace(base, body_html=None)
    spec = _content(name or current.name, subject, file, body_file, html_file, base)
    result = _syntax_check(spec)
    if spec == template_spec(current):
        console.print("no change")
        return

    async def work(db: Database) -> list[str]:
        if name is not None and name != current.name and await campaign_admin.templates_named(db, name):
            raise campaign_admin.AdminError(f"a template named {name!r} exists already: choose another name")
        await campaign_admin.update_template(db, current.id, spec)
        return (await campaign_admin.campaigns_using_templates(db, [current.id])).get(current.id, [])

    users = run_admin(ctx, work)
    console.print(f"template {current.id} ({spec.name}) changed")
    if users:
        console.print(f"used by {len(users)} campaign(s): {', '.join(users)}; recipients not yet sent get this version")
    _warn(result)


def _as_json(t: Template) -> dict[str, Any]:
    return {"_id": t.id, **asdict(t)}


def show(ctx: typer.Context, template: str = TEMPLATE_ARGUMENT, json_: bool = JSON_OPTION) -> None:
    """Show a template's subject, bodies and variants, and the campaigns using it.

    Example: outbound template show intro
    """

    async def work(db: Database) -> tuple[Template, list[str]]:
        found = await campaign_admin.find_template(db, template)
        return found, (await campaign_admin.campaigns_using_templates(db, [found.id])).get(found.id, [])

    found, users = run_admin(ctx, work)
    if json_:
        print_json({**_as_json(found), "campaigns": users})
        return
    console.print(f"[bold]{found.name}[/] ({found.id}), used by: {', '.join(users) or 'no campaign'}")
    console.print(f"subject: {found.subject or '(none: sent as a reply in the thread)'}")
    console.print("--- text ---", markup=False)
    console.print(found.body_text, markup=False)
    if found.body_html is not None:
        console.print("--- html ---", markup=False)
        console.print(found.body_html, markup=False)
    for i, variant in enumerate(found.variants):
        console.print(f"--- variants[{i}]: {variant.name}, weight {variant.weight:g} ---", markup=False)
        for part in ("subject", "body_text", "body_html"):
            value = getattr(variant, part)
            if value is not None:
                console.print(f"{part}: {value}", markup=False)


def list_templates(ctx: typer.Context, json_: bool = JSON_OPTION) -> None:
    """List the templates.

    Example: outbound template list --json
    """
    found = run_admin(ctx, campaign_admin.list_templates)
    if json_:
        print_json({"templates": [_as_json(t) for t in found]})
        return
    rows = [[t.id, t.name, t.subject or "(reply)", "yes" if t.body_html is not None else "no"] for t in found]
    print_table(f"Templates ({len(found)})", ["id", "name", "subject", "html"], rows)


def _fields(raw: list[str]) -> dict[str, str]:
    fields = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--field {item!r}: give NAME=VALUE", code=2)
        fields[key.strip()] = value
    return fields


def lint(
    ctx: typer.Context,
    template: str = TEMPLATE_ARGUMENT,
    field: list[str] = typer.Option([], "--field", help="A custom recipient field for the sample, NAME=VALUE."),
    json_: bool = JSON_OPTION,
) -> None:
    """Render a template and each of its variants for a sample recipient and account; report undefined variables,
    sandbox violations and unclosed spintax.

    The sample recipient has email, first_name, last_name, name, company_name and website; the sample account
    gives sender_* and account_signature; unsubscribe_url, campaign_* and step_order get sample values. Exits 1
    when the template would fail for a recipient like the sample.

    Example: outbound template lint intro --field industry=retail
    """
    found = run_admin(ctx, lambda db: campaign_admin.find_template(db, template))
    result = template_lint.lint(found, _fields(field))
    if json_:
        rendered = asdict(result.rendered) if result.rendered else None
        problems = [asdict(p) for p in result.problems]
        variants = {name: asdict(r) if r else None for name, r in result.variants.items()}
        print_json({"template_id": found.id, "ok": result.ok, "problems": problems, "rendered": rendered,
                    "variants": variants, "notes": list(result.notes), "sample": dict(result.context)})  # fmt: skip
    else:
        _print_lint(found, result)
    if not result.ok:
        raise typer.Exit(1)


def _print_lint(found: Template, result: template_lint.LintResult) -> None:
    for p in result.problems:
        console.print(f"{p.part}: {p.kind}: {p.detail}", markup=False)
    for note in result.notes:
        console.print(f"note: {note}")
    if result.rendered is not None:
        _print_rendered(result.rendered)
    for name, rendered in result.variants.items():
        console.print(f"=== variant {name} ===", markup=False)
        if rendered is not None:
            _print_rendered(rendered)
    verdict = "renders for the sample" if result.ok else f"{len(result.problems)} problem(s)"
    console.print(f"template {found.id} ({found.name}): {verdict}")


def _print_rendered(rendered: RenderedEmail) -> None:
    console.print(f"subject: {rendered.subject}", markup=False)
    console.print("--- text ---", markup=False)
    console.print(rendered.text, markup=False)
    if rendered.html is not None:
        console.print("--- html ---", markup=False)
        console.print(rendered.html, markup=False)


template_app.command("add")(add)
template_app.command("edit")(edit)
template_app.command("show")(show)
template_app.command("list")(list_templates)
template_app.command("lint")(lint)


def register(app: typer.Typer) -> None:
    """Add the `template` commands to `app`."""
    app.add_typer(template_app, name="template")
