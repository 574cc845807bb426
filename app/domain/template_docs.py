"""Seed 001's `templates` documents: a subject, a text and an HTML body (Jinja2 sources), and their variants."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.domain import collections as schema
from app.domain.document_reader import DocumentReader, id_str
from app.domain.variants import Variant


def split_subject_line(body: str) -> tuple[str | None, str]:
    """Seed 001's template form: a body whose first line is `Subject: ...` carries its subject."""
    first, _sep, rest = body.lstrip("\ufeff").partition("\n")
    if first.lower().startswith("subject:"):
        return first[len("subject:") :].strip(), rest.lstrip("\r\n")
    return None, body


@dataclass(frozen=True)
class Template:
    """An email template: subject, text body and optional HTML body (Jinja2 sources), and optional variants.

    A template without a subject of its own (`subject` is empty) can only be sent as a reply in its recipient's
    thread ("Re: <the previous subject>"); whether there is a thread is known when it is sent, not here.
    """

    id: str
    name: str
    subject: str  # empty: none of its own
    body_text: str
    body_html: str | None = None
    variants: tuple[Variant, ...] = ()

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Template:
        r = DocumentReader(schema.TEMPLATES, doc)
        body_text = r.string("body_text", required=False)
        body_html = r.string("body_html", required=False)
        if body_text is None and body_html is None:
            raise r.fail("body_text", "is required (or body_html)")
        line_subject, body_text = split_subject_line(body_text) if body_text else (None, body_text)
        subject = r.string("subject", required=False) or line_subject
        return cls(
            id=id_str(r.id),
            name=r.string("name", required=False) or id_str(r.id),
            subject=subject if subject and subject.strip() else "",
            body_text=body_text or "",
            body_html=body_html,
            variants=_variants(r),
        )

    def as_variant(self, variant: Variant | None) -> Template:
        """This template as `variant` words it: its subject if it has one, and its bodies if it has either (a
        variant with only `body_html` gets its text from that HTML, never the template's other wording)."""
        if variant is None:
            return self
        own_body = variant.body_text is not None or variant.body_html is not None
        return Template(
            id=self.id,
            name=self.name,
            subject=variant.subject if variant.subject is not None else self.subject,
            body_text=(variant.body_text or "") if own_body else self.body_text,
            body_html=variant.body_html if own_body else self.body_html,
        )


_VARIANT_PARTS = ("subject", "body_text", "body_html")
_VARIANT_FIELDS = ("name", *_VARIANT_PARTS, "weight")


def _variants(r: DocumentReader) -> tuple[Variant, ...]:
    raw = r.get("variants")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise r.fail("variants", "must be a list of {name, subject, body_text, body_html, weight}")
    found = tuple(_variant(r, i, item) for i, item in enumerate(raw))
    names = [v.name for v in found]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise r.fail(f"variants[{i}].name", f"{name!r} is the name of an earlier variant: names must differ")
    return found


def _variant(r: DocumentReader, index: int, item: Any) -> Variant:
    where = f"variants[{index}]"
    if not isinstance(item, Mapping):
        raise r.fail(where, "must be an object with subject, body_text, body_html and weight")
    unknown = sorted(str(k) for k in item if k not in _VARIANT_FIELDS)
    if unknown:
        raise r.fail(f"{where}.{unknown[0]}", f"is not a variant field (use {', '.join(_VARIANT_FIELDS)})")
    parts = {name: r.string(f"{where}.{name}", required=False, value=item.get(name)) for name in _VARIANT_PARTS}
    weight = item.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight) or weight <= 0:
        raise r.fail(f"{where}.weight", f"must be a positive number, got {weight!r}")
    text = parts["body_text"]
    line_subject, text = split_subject_line(text) if text else (None, text)
    return Variant(
        name=r.string(f"{where}.name", required=False, value=item.get("name")) or f"v{index + 1}",
        weight=float(weight),
        subject=parts["subject"] or line_subject,
        body_text=text,
        body_html=parts["body_html"],
    )
