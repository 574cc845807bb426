"""Campaign files: one YAML file holding a campaign, its templates, steps and accounts. Pure.

`parse` validates a file (pydantic) and reports each problem with the file, line and field (YAML node marks);
`export` writes a stored campaign back as a file that `campaign_plan.plan` finds nothing to change in.
Template files named in a campaign file are read through the `read` callback the caller passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.domain.campaign_plan import Stored
from app.domain.campaign_specs import (
    SCHEDULE_KEYS,
    SETTINGS_KEYS,
    CampaignSpec,
    TemplateSpec,
    template_from_text,
    variant_docs,
)
from app.domain.campaigns import Template
from app.domain.document_reader import InvalidDocument
from app.domain.sending_windows import InvalidSchedule, parse_schedule
from app.domain.sequence_edits import StepSpec


class CampaignFileError(ValueError):
    """A campaign file that cannot be applied; each problem names the file, line and field."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ScheduleEntry(_Strict):
    """`settings.schedule:` the sending window (checked by `parse_schedule` once the types are right)."""

    timezone: str
    days: list[str] | None = None
    start: str
    end: str
    blackout_dates: list[str] | None = None
    recipient_timezone: bool | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted_time(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 17:00 as the number 1020 (base 60).
            raise ValueError("must be a local time in quotes, such as '17:00' (unquoted, YAML reads it as a number)")
        return value

    @field_validator("blackout_dates", mode="before")
    @classmethod
    def _dates_as_text(cls, value: Any) -> Any:
        # YAML reads an unquoted 2025-12-25 as a date; it is stored as the text `YYYY-MM-DD`.
        if isinstance(value, list):
            return [v.isoformat() if type(v) is date else v for v in value]
        return value


class SettingsEntry(_Strict):
    """`settings:` of a campaign file (see `campaigns.settings`)."""

    daily_limit: int | None = Field(default=None, ge=0)
    min_wait_time: float | None = Field(default=None, ge=0)
    batch_size: int | None = Field(default=None, ge=1)
    stop_on_reply: Literal["lead", "recipient", "none"] | None = None
    uncertain_after_hours: float | None = Field(default=None, ge=0)
    hourly_limit: int | None = Field(default=None, ge=0)
    wait_jitter: float | None = Field(default=None, ge=0)  # minutes
    schedule: ScheduleEntry | None = None


class VariantEntry(_Strict):
    """One of a template's `variants:` (see Variants and spintax); every field is optional."""

    name: str | None = Field(default=None, min_length=1)
    subject: str | None = None
    body_text: str | None = None
    body_html: str | None = None
    weight: float | None = Field(default=None, gt=0)


class TemplateEntry(_Strict):
    """One template: inline (`subject`, `body_text`, `body_html`) or from files relative to the campaign file."""

    id: str | None = None
    subject: str | None = None
    body_text: str | None = None
    body_html: str | None = None
    file: str | None = None  # seed 001's form: a first line `Subject: ...`, then the text body
    body_text_file: str | None = None
    body_html_file: str | None = None
    variants: list[VariantEntry] | None = None

    @model_validator(mode="after")
    def _one_source_each(self) -> TemplateEntry:
        texts = [n for n in ("body_text", "body_text_file", "file") if getattr(self, n) is not None]
        if len(texts) > 1:
            raise ValueError(f"give one text body, not {' and '.join(texts)}")
        if self.body_html is not None and self.body_html_file is not None:
            raise ValueError("give body_html or body_html_file, not both")
        if not texts and self.body_html is None and self.body_html_file is None:
            raise ValueError("needs a body: body_text, body_text_file, file, body_html or body_html_file")
        return self


class StepEntry(_Strict):
    """One sequence step: a template named in `templates:`, the delay after the previous step, threading."""

    template: str = Field(min_length=1)
    delay_minutes: float = Field(default=0.0, ge=0)
    thread: bool | None = None


class CampaignFileModel(_Strict):
    """The whole file."""

    id: str | None = None
    name: str = Field(min_length=1)
    status: Literal["draft", "active", "paused", "completed"] | None = None
    settings: SettingsEntry = SettingsEntry()
    accounts: list[str] | None = None  # ids or emails; absent or empty: every active account
    templates: dict[str, TemplateEntry] = Field(min_length=1)
    steps: list[StepEntry] = Field(min_length=1)


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


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, so exported templates read like the files people write."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Times always quoted: YAML reads 17:00 unquoted as a number, and 09:00 alone would look safe to copy.
    style = "|" if "\n" in value else "'" if re.fullmatch(r"\d\d:\d\d", value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def export(stored: Stored, accounts: Sequence[str]) -> str:
    """A campaign file for a stored campaign; `accounts` are its accounts as emails (ids where unknown)."""
    campaign = stored.campaign
    if campaign is None:
        raise ValueError("nothing to export: the campaign is not stored")
    used = list(dict.fromkeys(spec.template for _key, spec in stored.steps))
    data: dict[str, Any] = {"id": campaign.id, "name": campaign.name, "status": campaign.status}
    settings = {k: stored.settings[k] for k in SETTINGS_KEYS if stored.settings.get(k) is not None}
    if isinstance(settings.get("schedule"), Mapping):
        settings["schedule"] = _schedule_entry(settings["schedule"])
    if settings:
        data["settings"] = settings
    if accounts:
        data["accounts"] = list(accounts)
    missing = [name for name in used if name not in stored.templates]
    if missing:
        raise ValueError(f"the campaign's steps use templates that are not stored: {', '.join(missing)}")
    data["templates"] = {name: _template_entry(stored.templates[name]) for name in used}
    data["steps"] = [_step_entry(spec) for _key, spec in stored.steps]
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=120)


def _schedule_entry(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """The stored schedule's fields a file knows, in their order; a BSON date as its `YYYY-MM-DD` text."""
    entry = {k: schedule[k] for k in SCHEDULE_KEYS if schedule.get(k) is not None}
    if isinstance(entry.get("blackout_dates"), list):
        entry["blackout_dates"] = [
            d.date().isoformat() if isinstance(d, datetime) else d for d in entry["blackout_dates"]
        ]
    return entry


def _template_entry(t: TemplateSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": t.id} if t.id else {}
    if t.subject:
        entry["subject"] = t.subject
    entry["body_text"] = t.body_text
    if t.body_html is not None:
        entry["body_html"] = t.body_html
    if t.variants:
        entry["variants"] = [dict(v) for v in t.variants]
    return entry


def _step_entry(step: StepSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {"template": step.template, "delay_minutes": step.delay_minutes}
    if step.thread is not None:
        entry["thread"] = step.thread
    return entry
