"""Campaign files: one YAML file holding a campaign, its templates, steps and accounts. Pure.

`parse` validates a file (pydantic) and reports each problem with the file, line and field (YAML node marks);
`export` writes a stored campaign back as a file that `campaign_plan.plan` finds nothing to change in.
Template files named in a campaign file are read through the `read` callback the caller passes.

The file's fields are declared in `campaign_file_schema.py` and `export` lives in `campaign_file_export.py`;
every name is importable from here as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import yaml
from pydantic import ValidationError

from app.domain.campaign_file_export import export as export
from app.domain.campaign_file_schema import CampaignFileModel as CampaignFileModel
from app.domain.campaign_file_schema import ScheduleEntry as ScheduleEntry
from app.domain.campaign_file_schema import SettingsEntry as SettingsEntry
from app.domain.campaign_file_schema import StepEntry as StepEntry
from app.domain.campaign_file_schema import TemplateEntry as TemplateEntry
from app.domain.campaign_file_schema import VariantEntry as VariantEntry
from app.domain.campaign_specs import CampaignSpec, TemplateSpec, template_from_text, variant_docs
from app.domain.document_reader import InvalidDocument
from app.domain.sending_windows import InvalidSchedule, parse_schedule
from app.domain.sequence_edits import StepSpec
from app.domain.template_docs import Template


class CampaignFileError(ValueError):
    """A campaign file that cannot be applied; each problem names the file, line and field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def parse(text: str, source: str, read: Callable[[str], str]) -> CampaignSpec:
    """Validate a campaign file; raise CampaignFileError naming `source`, the line and the field of each problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise CampaignFileError([f"{source}:{line}: not valid YAML: {exc.problem}"]) from None
    if root is None or not isinstance(data, dict):
        raise CampaignFileError([f"{source}:1: must be a mapping with at least name, templates and steps"])
    duplicates = _duplicate_keys(root, source)
    if duplicates:
        raise CampaignFileError(duplicates)
    try:
        model = CampaignFileModel.model_validate(data)
    except ValidationError as exc:
        raise CampaignFileError([_problem(source, root, err) for err in exc.errors()]) from None
    return _spec(model, source, root, read)


def _spec(model: CampaignFileModel, source: str, root: yaml.Node, read: Callable[[str], str]) -> CampaignSpec:
    problems = [
        f"{source}:{_line(root, ('steps', i, 'template'))}: steps[{i}].template: {s.template!r} is not in templates"
        f" (templates: {', '.join(model.templates)})"
        for i, s in enumerate(model.steps)
        if s.template not in model.templates
    ]
    problems += _schedule_problems(model.settings.schedule, source, root)
    templates = []
    for name, entry in model.templates.items():
        try:
            templates.append(_template(name, entry, read))
        except InvalidDocument as exc:
            loc = ("templates", name, *_path(exc.field))
            problems.append(f"{source}:{_line(root, loc)}: templates.{name}.{exc.field}: {exc.reason}")
        except OSError as exc:
            reason = f"cannot read {exc.filename}: {exc.strerror}" if exc.filename else str(exc)
            problems.append(f"{source}:{_line(root, ('templates', name))}: templates.{name}: {reason}")
        except ValueError as exc:
            problems.append(f"{source}:{_line(root, ('templates', name))}: templates.{name}: {exc}")
    if problems:
        raise CampaignFileError(problems)
    return CampaignSpec(
        name=model.name,
        id=model.id,
        status=model.status,
        settings=model.settings.model_dump(exclude_none=True),
        accounts=tuple(dict.fromkeys(model.accounts or ())),
        templates=tuple(templates),
        steps=tuple(StepSpec(s.template, s.delay_minutes, s.thread) for s in model.steps),
    )


def _schedule_problems(schedule: ScheduleEntry | None, source: str, root: yaml.Node) -> list[str]:
    if schedule is None:
        return []
    try:
        parse_schedule(schedule.model_dump(exclude_none=True))
    except InvalidSchedule as exc:
        line = _line(root, ("settings", "schedule", exc.field))
        return [f"{source}:{line}: settings.schedule.{exc.field}: {exc.reason}"]
    return []


def _path(dotted: str) -> list[str | int]:
    """`variants[1].weight` as the parts of a location: variants, 1, weight."""
    return [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", dotted)]


def _template(name: str, entry: TemplateEntry, read: Callable[[str], str]) -> TemplateSpec:
    html = read(entry.body_html_file) if entry.body_html_file is not None else entry.body_html
    if entry.file is not None:
        spec = template_from_text(name, read(entry.file), html, entry.subject)
    else:
        text = read(entry.body_text_file) if entry.body_text_file is not None else entry.body_text
        spec = TemplateSpec(name, entry.subject, text or "", html)
    variants = tuple(v.model_dump(exclude_none=True) for v in entry.variants or ())
    spec = TemplateSpec(spec.name, spec.subject or None, spec.body_text, spec.body_html, entry.id, variants)
    # The model reads the variants as they are sent (names defaulted, a `Subject:` line split off); keep that form.
    checked = Template.from_doc({"_id": entry.id or "new", **spec.document()})
    return replace(spec, variants=variant_docs(checked.variants))


def _duplicate_keys(node: yaml.Node, source: str) -> list[str]:
    problems = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                problems.append(f"{source}:{key.start_mark.line + 1}: {key.value}: given twice")
            seen.add(key.value)
            problems += _duplicate_keys(value, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            problems += _duplicate_keys(item, source)
    return problems


def _problem(source: str, root: yaml.Node, err: Mapping[str, Any]) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(file)"
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        message = "is not a known field"
    elif err["type"] == "missing":
        message = "is required"
    return f"{source}:{_line(root, loc)}: {where}: {message}"


def _line(root: yaml.Node, loc: Sequence[str | int]) -> int:
    """The line of the deepest node of `loc` present in the file (a missing field: its parent's line)."""
    node = root
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                # A value is shown where it is; an empty one (`field:` alone) at its key.
                found: yaml.Node = value if not isinstance(value, yaml.ScalarNode) or value.value else key
                return found
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None
