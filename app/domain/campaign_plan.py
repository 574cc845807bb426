"""Applying a campaign file: compare what it asks for with what is stored, and return the writes and a readable
diff as plain values (`plan`). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from app.domain.campaign_specs import (
    SCHEDULE_KEYS,
    SETTINGS_KEYS,
    CampaignSpec,
    TemplateSpec,
)
from app.domain.campaigns import Campaign
from app.domain.sequence_edits import StepSpec, match_steps


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
            unsets += ["paused_reason", "paused_at", "paused_by"]
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
