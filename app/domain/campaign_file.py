"""Campaign files: one YAML file holding a campaign, its templates, steps and accounts. Pure.

`parse` validates a file (pydantic) and reports each problem with the file, line and field (YAML node marks);
`plan` compares what the file asks for with what is stored and returns the writes and a readable diff as
plain values; `export` writes a stored campaign back as a file that `plan` finds nothing to change in.
Template files named in a campaign file are read through the `read` callback the caller passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.domain.campaigns import Campaign, Template, split_subject_line
from app.domain.document_reader import InvalidDocument
from app.domain.sending_windows import InvalidSchedule, parse_schedule
from app.domain.sequence_edits import StepSpec, match_steps
from app.domain.variants import Variant

# The settings a campaign file manages; other keys stored under `settings` by other tools are left alone.
SETTINGS_KEYS = (
    "daily_limit",
    "min_wait_time",
    "batch_size",
    "stop_on_reply",
    "uncertain_after_hours",
    "hourly_limit",
    "wait_jitter",
    "schedule",
)
# `settings.schedule`'s fields, in the order files and diffs show them.
SCHEDULE_KEYS = ("timezone", "days", "start", "end", "blackout_dates", "recipient_timezone")


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


@dataclass(frozen=True)
class TemplateSpec:
    """A template's stored content; `subject` None when it has none of its own.

    `variants` are `templates.variants` entries as `variant_docs` writes them (name always, weight when not 1).
    """

    name: str
    subject: str | None
    body_text: str
    body_html: str | None = None
    id: str | None = None
    variants: tuple[Mapping[str, Any], ...] = ()

    def document(self) -> dict[str, Any]:
        """The `templates` document (without `_id`), checked by the model."""
        doc: dict[str, Any] = {"name": self.name, "body_text": self.body_text}
        if self.subject:
            doc["subject"] = self.subject
        if self.body_html is not None:
            doc["body_html"] = self.body_html
        if self.variants:
            doc["variants"] = [dict(v) for v in self.variants]
        Template.from_doc({"_id": self.id or "new", **doc})
        return doc

    def same_content(self, other: TemplateSpec) -> bool:
        """True when both would be stored alike (names and ids aside)."""
        return (self.subject or None, self.body_text, self.body_html, self.variants) == (
            other.subject or None,
            other.body_text,
            other.body_html,
            other.variants,
        )


def variant_docs(variants: Sequence[Variant]) -> tuple[dict[str, Any], ...]:
    """Variants as `templates.variants` entries in one canonical form, so a file and the store compare alike."""
    docs = []
    for v in variants:
        doc: dict[str, Any] = {"name": v.name}
        doc.update({part: text for part, text in _variant_parts(v) if text is not None})
        if v.weight != 1:
            doc["weight"] = int(v.weight) if v.weight.is_integer() else v.weight
        docs.append(doc)
    return tuple(docs)


def _variant_parts(v: Variant) -> tuple[tuple[str, str | None], ...]:
    return (("subject", v.subject), ("body_text", v.body_text), ("body_html", v.body_html))


def template_spec(template: Template) -> TemplateSpec:
    """A stored template as a spec (a seed 001 `Subject:` line already split off by the model)."""
    return TemplateSpec(
        template.name,
        template.subject or None,
        template.body_text,
        template.body_html,
        template.id,
        variant_docs(template.variants),
    )


def template_from_text(name: str, text: str, html: str | None = None, subject: str | None = None) -> TemplateSpec:
    """A template from a text body that may start with seed 001's `Subject: ...` line."""
    line_subject, body = split_subject_line(text)
    if line_subject is not None and subject is not None:
        raise ValueError("the text starts with a Subject: line and a subject is given too: keep one")
    return TemplateSpec(name, subject if subject is not None else line_subject, body, html)


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign file asks for, validated, with its template files read."""

    name: str
    id: str | None
    status: str | None
    settings: Mapping[str, Any]  # only the keys the file gives
    accounts: tuple[str, ...]  # ids or emails, as written
    templates: tuple[TemplateSpec, ...]
    steps: tuple[StepSpec, ...]  # template: a name in `templates`


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


@dataclass(frozen=True)
class Stored:
    """What is stored for the campaign a file names (None: not created yet), as plain values."""

    campaign: Campaign | None
    settings: Mapping[str, Any] = field(default_factory=dict)  # the stored `settings` document
    paused_reason: str | None = None
    steps: tuple[tuple[str, StepSpec], ...] = ()  # step key, spec with the template's name
    # The stored template each of the file's templates is (by its `id:`, else by name), under the file's name;
    # for export, the templates the steps use, by their stored names.
    templates: Mapping[str, TemplateSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One line of the diff: `op` is create, change or remove."""

    op: str
    what: str
    detail: str = ""

    def line(self) -> str:
        """The diff line people read."""
        mark = {"create": "+", "change": "~", "remove": "-"}[self.op]
        return f"{mark} {self.what}{': ' + self.detail if self.detail else ''}"


@dataclass(frozen=True)
class ApplyPlan:
    """The writes a campaign file needs, in plain values, and the diff that explains them."""

    create: bool
    campaign_set: Mapping[str, Any]
    campaign_unset: tuple[str, ...]
    templates_new: tuple[TemplateSpec, ...]
    templates_changed: tuple[TemplateSpec, ...]  # with their ids
    steps: tuple[StepSpec, ...] | None  # the whole new sequence (template names), None: unchanged
    step_keys: tuple[str, ...]  # the new sequence as keys of `Stored.steps` (or new ones), for the impact
    changes: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        """True when the file matches what is stored."""
        return not self.changes


def plan(spec: CampaignSpec, stored: Stored, account_ids: Sequence[str]) -> ApplyPlan:
    """What to write so that the campaign is as `spec` says; `account_ids` are its accounts resolved to ids."""
    changes: list[Change] = []
    new_templates, changed_templates = _template_changes(spec, stored, changes)
    sets, unsets = _campaign_changes(spec, stored, account_ids, changes)
    old_specs = [s for _k, s in stored.steps]
    steps: tuple[StepSpec, ...] | None = None
    keys = tuple(match_steps(stored.steps, spec.steps))
    if list(spec.steps) != old_specs:
        steps = spec.steps
        changes += _step_changes(old_specs, spec.steps)
    return ApplyPlan(
        create=stored.campaign is None,
        campaign_set=sets,
        campaign_unset=tuple(unsets),
        templates_new=tuple(new_templates),
        templates_changed=tuple(changed_templates),
        steps=steps,
        step_keys=keys,
        changes=tuple(changes),
    )


def _template_changes(
    spec: CampaignSpec, stored: Stored, changes: list[Change]
) -> tuple[list[TemplateSpec], list[TemplateSpec]]:
    new, changed = [], []
    for template in spec.templates:
        existing = stored.templates.get(template.name)
        if existing is None:
            new.append(template)
            changes.append(Change("create", f"template {template.name}"))
        elif not template.same_content(existing) or existing.name != template.name:
            parts = [p for p, a, b in _template_parts(existing, template) if a != b]
            changed.append(replace(template, id=existing.id))
            changes.append(Change("change", f"template {template.name} ({existing.id})", ", ".join(parts)))
    return new, changed


def _template_parts(a: TemplateSpec, b: TemplateSpec) -> list[tuple[str, Any, Any]]:
    return [
        ("name", a.name, b.name),
        ("subject", a.subject or None, b.subject or None),
        ("body_text", a.body_text, b.body_text),
        ("body_html", a.body_html, b.body_html),
        ("variants", a.variants, b.variants),
    ]


def _campaign_changes(
    spec: CampaignSpec, stored: Stored, account_ids: Sequence[str], changes: list[Change]
) -> tuple[dict[str, Any], list[str]]:
    sets: dict[str, Any] = {}
    unsets: list[str] = []
    current = stored.campaign
    if current is None:
        return _new_campaign(spec, account_ids, changes), unsets
    if current.name != spec.name:
        sets["name"] = spec.name
        changes.append(Change("change", "campaign name", f"{current.name!r} -> {spec.name!r}"))
    if spec.status is not None and spec.status != current.status:
        sets["status"] = spec.status
        reason = f" (it was paused: {stored.paused_reason})" if stored.paused_reason else ""
        changes.append(Change("change", "campaign status", f"{current.status} -> {spec.status}{reason}"))
        if current.status == "paused":
            unsets += ["paused_reason", "paused_at"]
    wanted = {**spec.settings, **({"account_ids": list(account_ids)} if account_ids else {})}
    for key in (*SETTINGS_KEYS, "account_ids"):
        before, after = stored.settings.get(key), wanted.get(key)
        if key == "account_ids" and isinstance(before, list):
            before = [str(a) for a in before] or None
        if before == after:
            continue
        if after is None:
            unsets.append(f"settings.{key}")
        else:
            sets[f"settings.{key}"] = after
        changes += _setting_changes(key, before, after)
    return sets, unsets


def _setting_changes(key: str, before: Any, after: Any) -> list[Change]:
    """One line per changed setting; a schedule changed in place, one line per field of it."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        fields = [*SCHEDULE_KEYS, *(k for k in {**before, **after} if k not in SCHEDULE_KEYS)]
        return [
            Change("change", f"settings.{key}.{k}", f"{show_value(before.get(k))} -> {show_value(after.get(k))}")
            for k in fields
            if before.get(k) != after.get(k)
        ]
    return [Change("change", f"settings.{key}", f"{show_value(before)} -> {show_value(after)}")]


def _new_campaign(spec: CampaignSpec, account_ids: Sequence[str], changes: list[Change]) -> dict[str, Any]:
    status = spec.status or "draft"
    changes.append(Change("create", f"campaign {spec.name}", f"status {status}"))
    sets: dict[str, Any] = {"name": spec.name, "status": status}
    sets.update({f"settings.{k}": v for k, v in spec.settings.items()})
    if account_ids:
        sets["settings.account_ids"] = list(account_ids)
    return sets


def show_value(value: Any) -> str:
    """A setting as a diff shows it: lists comma-separated, a schedule field by field, `(unset)` for none."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(map(show_value, value))
    if isinstance(value, Mapping):
        return "; ".join(f"{k} {show_value(v)}" for k, v in value.items())
    return str(value)


def _step_changes(old: Sequence[StepSpec], new: Sequence[StepSpec]) -> list[Change]:
    changes = []
    for i in range(max(len(old), len(new))):
        a = old[i] if i < len(old) else None
        b = new[i] if i < len(new) else None
        if a == b:
            continue
        if a is None and b is not None:
            changes.append(Change("create", f"step {i + 1}", _show_step(b)))
        elif b is None and a is not None:
            changes.append(Change("remove", f"step {i + 1}", _show_step(a)))
        elif a is not None and b is not None:
            changes.append(Change("change", f"step {i + 1}", f"{_show_step(a)} -> {_show_step(b)}"))
    return changes


def _show_step(step: StepSpec) -> str:
    thread = "" if step.thread is None else f", thread {str(step.thread).lower()}"
    return f"template {step.template}, delay {step.delay_minutes:g} min{thread}"


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
