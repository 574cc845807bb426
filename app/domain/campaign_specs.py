"""What a campaign file asks for and what a stored template is, as plain values, shared by the file's parser,
its export, the apply plan and the template commands. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.sequence_edits import StepSpec
from app.domain.template_docs import Template, split_subject_line
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
