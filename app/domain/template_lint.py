"""Linting a template without a lead: render it with the real sandboxed renderer for a sample recipient and a
sample account, and report every undefined variable and every sandbox or syntax error. Pure.

Each part (subject, text, HTML) is rendered on its own, so a problem in one does not hide those in another. A
variable the sample does not supply is reported and then given a placeholder, so one missing name does not
hide the next. Each variant is linted too, its own parts named `variants[i].<part>`; spins are resolved as for
one sample send, and a spin that is never closed is a `spintax` problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from app.domain.accounts import EmailAccount, GeneralSettings
from app.domain.campaigns import Campaign, CampaignSettings, Lead, LeadProgress, Recipient
from app.domain.template_docs import Template
from app.domain.templating import RenderedEmail, Renderer, TemplateError, build_context
from app.domain.variants import Variant

SAMPLE_RECIPIENT: Mapping[str, str] = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company_name": "Example Ltd",
    "website": "https://example.com",
}
SAMPLE_ACCOUNT = EmailAccount(
    id="sample-account",
    email="sam@sender.example",
    smtp_host="smtp.sender.example",
    smtp_port=587,
    smtp_username=None,
    smtp_password=None,
    status="active",
    sender_name="Sam Sender",
)
SAMPLE_GENERAL = GeneralSettings(
    email_id="sample-account", signature="Sam Sender\nSender Ltd", sender_name="Sam Sender"
)
SAMPLE_UNSUBSCRIBE_URL = "https://outbound.example/u/sample-token"
SAMPLE_REPLY_SUBJECT = "Re: (the previous step's subject)"
SAMPLE_SEND_KEY = "sample-lead:1:0"  # the spins shown are those of this send
_PARTS = ("subject", "body_text", "body_html")
_UNDEFINED = re.compile(r"'([^']+)' is undefined")
_MAX_PLACEHOLDERS = 50


class _Placeholder(str):
    """Stands in for a variable the sample lacks, so that `{{ missing.field }}` renders as text too."""

    __slots__ = ()

    def __getattr__(self, name: str) -> _Placeholder:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Placeholder(f"{str.__str__(self)[:-1]}.{name}>")

    def __getitem__(self, key: object) -> _Placeholder:
        return _Placeholder(f"{str.__str__(self)[:-1]}[{key!r}]>")


@dataclass(frozen=True)
class LintProblem:
    """One thing that would stop the template from being sent: `kind` is undefined, sandbox, syntax, spintax or
    error; `part` is `subject`, `body_text`, `body_html`, or `variants[i].<part>` for a variant's own."""

    part: str
    kind: str
    detail: str


@dataclass(frozen=True)
class LintResult:
    """What the sample rendering found, and the rendering itself (with placeholders) when it could be made."""

    problems: tuple[LintProblem, ...]
    rendered: RenderedEmail | None
    notes: tuple[str, ...]
    context: Mapping[str, Any]
    variants: Mapping[str, RenderedEmail | None] = field(default_factory=dict)  # each variant's rendering

    @property
    def ok(self) -> bool:
        """True when the template renders for the sample as it is."""
        return not self.problems


def sample_context(fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The variables the sample recipient (plus `fields`) and the sample account give a template."""
    recipient = Recipient(email=SAMPLE_RECIPIENT["email"], fields={**SAMPLE_RECIPIENT, **(fields or {})})
    lead = Lead(id="sample-lead", campaign_id="sample-campaign", recipients=(recipient,), progress=LeadProgress())
    campaign = Campaign("sample-campaign", "Sample campaign", "active", None, CampaignSettings())
    return build_context(
        campaign=campaign,
        lead=lead,
        recipient_index=0,
        step_order=1,
        account=SAMPLE_ACCOUNT,
        general=SAMPLE_GENERAL,
        unsubscribe_url=SAMPLE_UNSUBSCRIBE_URL,
    )


def lint(template: Template, fields: Mapping[str, str] | None = None) -> LintResult:
    """Render `template` and each of its variants for the sample recipient and account; report what would fail
    for a real one. A variant's problems are named `variants[i].<part>`; the parts it takes from the template
    are checked once, with the template's."""
    renderer = Renderer()
    context = sample_context(fields)
    problems, rendered = _lint_wording(renderer, replace(template, variants=()), context, "", _PARTS)
    notes = []
    if not template.subject:
        notes.append("no subject of its own: it can only be sent as a reply in the recipient's thread (Re: ...)")
    variants: dict[str, RenderedEmail | None] = {}
    for i, variant in enumerate(template.variants):
        found, variants[variant.name] = _lint_wording(
            renderer, template.as_variant(variant), context, f"variants[{i}].", _own_parts(variant)
        )
        problems += [p for p in found if p.part.startswith("variants[")]
    return LintResult(tuple(problems), rendered, tuple(notes), context, variants)


def _own_parts(variant: Variant) -> list[str]:
    """The parts a variant words itself: its subject if it has one, both bodies if it has either."""
    own_body = variant.body_text is not None or variant.body_html is not None
    return [p for p in _PARTS if (variant.subject is not None if p == "subject" else own_body)]


def _lint_wording(
    renderer: Renderer, template: Template, context: dict[str, Any], prefix: str, parts: Sequence[str]
) -> tuple[list[LintProblem], RenderedEmail | None]:
    """Lint one wording (the template, or the template as one variant words it) part by part, then render it."""
    sources = {
        "subject": (template.subject or None, Template(template.id, template.name, template.subject, "")),
        "body_text": (template.body_text or None, Template(template.id, template.name, "-", template.body_text)),
        "body_html": (template.body_html, Template(template.id, template.name, "-", "", template.body_html)),
    }
    problems: list[LintProblem] = []
    for part in parts:
        source, alone = sources[part]
        if source is not None:
            problems += _lint_part(renderer, prefix + part, alone, context)
    if any(p.kind != "undefined" for p in problems):
        return problems, None
    reply = None if template.subject else SAMPLE_REPLY_SUBJECT
    try:
        return problems, renderer.render(template, context, reply=reply, send_key=SAMPLE_SEND_KEY)
    except TemplateError as exc:  # e.g. a subject that renders empty or with a line break
        label = prefix + exc.part if exc.part in parts else exc.part
        return [*problems, LintProblem(label, _kind(exc.reason), exc.reason)], None


def _lint_part(renderer: Renderer, part: str, template: Template, context: dict[str, Any]) -> list[LintProblem]:
    problems: list[LintProblem] = []
    for _ in range(_MAX_PLACEHOLDERS):
        try:
            renderer.render(template, context, send_key=SAMPLE_SEND_KEY)
            return problems
        except TemplateError as exc:
            found = _UNDEFINED.search(exc.reason) if exc.reason.startswith("missing variable") else None
            if found is None or found.group(1) in context:
                return [*problems, LintProblem(part, _kind(exc.reason), exc.reason)]
            name = found.group(1)
            problems.append(LintProblem(part, "undefined", f"{name} is not defined for a recipient without it"))
            context[name] = _Placeholder(f"<{name}>")
    return problems


def _kind(reason: str) -> str:
    if reason.startswith("spintax"):
        return "spintax"
    if reason.startswith("sandbox violation"):
        return "sandbox"
    if reason.startswith("syntax error"):
        return "syntax"
    return "undefined" if reason.startswith("missing variable") else "error"
