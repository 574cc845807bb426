"""Sandboxed, strict Jinja2 rendering of a template's subject, text and HTML for one recipient.

Templates are user data: they render in Jinja2's sandbox, and a variable the template uses without a
`default` must exist (StrictUndefined), so a typo fails loudly instead of mailing "Hello ,". The variables a
template sees are built in template_context.py (re-exported here).
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from html import escape
from html.parser import HTMLParser
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2 import Template as JinjaTemplate
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from app.domain.models import Template, has_line_break

# What a template sees is built in template_context.py; re-exported so callers keep one import.
from app.domain.template_context import RESERVED_VARIABLES as RESERVED_VARIABLES
from app.domain.template_context import SIGNATURE_VARIABLE
from app.domain.template_context import build_context as build_context
from app.domain.template_context import sender_variables as sender_variables
from app.domain.variants import SpinChoice, SpintaxError, Variant, choose_variant, spin

_WHITESPACE = re.compile(r"[ \t]+")
# "Re:" prefixes already on a subject ("Re: ", "RE:", "Re[2]: ", repeated): a reply carries exactly one.
_REPLY_PREFIXES = re.compile(r"^(?:\s*re\s*(?:\[\d+\])?\s*:)+\s*", re.IGNORECASE)


class TemplateError(Exception):
    """A template could not be rendered; says which template, which part, why, and what was available."""

    def __init__(self, template_id: str, part: str, reason: str, available: list[str]) -> None:
        self.template_id = template_id
        self.part = part
        self.reason = reason
        self.available = available
        super().__init__(str(self))

    def __str__(self) -> str:
        names = ", ".join(self.available) or "(none)"
        return f"template {self.template_id} ({self.part}): {self.reason}. Available variables: {names}"


@dataclass(frozen=True)
class RenderedEmail:
    """The rendered parts of one email."""

    subject: str
    text: str
    html: str | None
    variant: str | None = None  # the template's variant it was worded from (None: the template has none)
    spins: tuple[SpinChoice, ...] = ()  # what each spin chose, in the order they were resolved


def _labels(template: Template, variant: Variant | None) -> dict[str, str]:
    """How errors name each part: `variants[i].<part>` where the variant supplies it, else the part."""
    labels = {part: part for part in ("subject", "body_text", "body_html")}
    if variant is None:
        return labels
    where = f"variants[{template.variants.index(variant)}]"
    own_body = variant.body_text is not None or variant.body_html is not None
    if variant.subject is not None:
        labels["subject"] = f"{where}.subject"
    if own_body:
        labels.update(body_text=f"{where}.body_text", body_html=f"{where}.body_html")
    return labels


def reply_subject(previous: str) -> str:
    """The subject of a reply to a message with subject `previous`: "Re: " once, never "Re: Re: "."""
    return f"Re: {_REPLY_PREFIXES.sub('', previous).strip()}".rstrip()


class _HtmlToText(HTMLParser):
    """Plain text from HTML: tags dropped, line breaks kept for <br> and block elements."""

    _BLOCKS = frozenset({"div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"})
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "p":
            self.parts.append("\n\n")
        elif tag in self._BLOCKS:
            self.parts.append("\n")
            if tag == "li":
                self.parts.append("- ")
        elif tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "p":
            self.parts.append("\n\n")
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href and not href.startswith(("#", "mailto:")) and not "".join(self.parts).endswith(href):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.parts).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body (tags stripped, <br>/<p> kept as line breaks, entities unescaped)."""
    parser = _HtmlToText()
    parser.feed(html)
    parser.close()
    return parser.text()


def _signature_html(signature: str) -> str:
    lines = "<br>".join(escape(line) for line in signature.splitlines())
    return f'<div class="signature">-- <br>{lines}</div>'


def _append_html(html: str, block: str) -> str:
    end = html.lower().rfind("</body>")
    if end == -1:
        return f"{html}\n{block}"
    return f"{html[:end]}{block}\n{html[end:]}"


@dataclass(frozen=True)
class _Compiled:
    template: JinjaTemplate
    variables: frozenset[str]


class Renderer:
    """Renders templates in the sandbox, caching compiled sources by (template id, part, source hash)."""

    def __init__(self, max_cached: int = 512) -> None:
        self.max_cached = max_cached
        self._text_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self._html_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
        self._cache: OrderedDict[tuple[str, str, str], _Compiled] = OrderedDict()

    def render(
        self, template: Template, context: Mapping[str, Any], *, reply: str | None = None, send_key: str = ""
    ) -> RenderedEmail:
        """Render subject, text and HTML; raise TemplateError naming the part and the reason.

        The send `send_key` (`<lead>:<step>:<index>`) decides the variant and every spin, so rendering it again
        gives the same message. A template without a subject of its own takes `reply` (a reply subject, used as
        it is, not rendered); without one it cannot be sent.
        """
        available = sorted(context)
        variant = choose_variant(template.variants, send_key)
        worded = template.as_variant(variant)
        labels = _labels(template, variant)
        sources: dict[str, str | None] = {
            "subject": worded.subject or None,
            "body_text": worded.body_text,
            "body_html": worded.body_html,
        }
        spins: list[SpinChoice] = []
        for part, source in sources.items():
            if source is not None:
                try:
                    sources[part], chosen = spin(source, send_key, "subject" if part == "subject" else "body")
                except SpintaxError as exc:
                    raise TemplateError(template.id, labels[part], str(exc), available) from None
                spins += chosen
        email = self._render_sources(template.id, sources, labels, context, reply)
        return replace(email, variant=variant.name if variant else None, spins=tuple(spins))

    def _render_sources(
        self,
        template_id: str,
        sources: Mapping[str, str | None],
        labels: Mapping[str, str],
        context: Mapping[str, Any],
        reply: str | None,
    ) -> RenderedEmail:
        available = sorted(context)
        own_subject = sources["subject"]
        html_source = sources["body_html"]
        compiled = {
            part: self._compile(template_id, part, labels[part], source, available)
            for part, source in sources.items()
            if source is not None and (part != "body_text" or source.strip() or html_source is None)
        }
        rendered = {part: self._run(template_id, labels[part], c, context, available) for part, c in compiled.items()}
        if own_subject is None and reply is None:
            reason = "has no subject: only a reply in the recipient's thread can do without one"
            raise TemplateError(template_id, labels["subject"], reason, available)
        subject = rendered["subject"] if own_subject is not None else reply or ""
        subject = self._subject(template_id, labels["subject"], subject, available)
        html = rendered.get("body_html")
        text = rendered["body_text"] if "body_text" in rendered else html_to_text(html or "")
        signature = str(context.get(SIGNATURE_VARIABLE) or "").strip()
        uses_signature = any(SIGNATURE_VARIABLE in c.variables for c in compiled.values())
        if signature and not uses_signature:
            signature = signature.replace("\r\n", "\n").replace("\r", "\n")
            text = f"{text.rstrip()}\n\n-- \n{signature}"
            html = _append_html(html, _signature_html(signature)) if html is not None else None
        return RenderedEmail(subject=subject, text=text, html=html)

    def _compile(self, template_id: str, part: str, label: str, source: str, available: list[str]) -> _Compiled:
        digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
        key = (template_id, part, digest)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        env = self._html_env if part == "body_html" else self._text_env
        try:
            ast = env.parse(source)
            compiled = _Compiled(env.from_string(ast), frozenset(meta.find_undeclared_variables(ast)))
        except TemplateSyntaxError as exc:
            reason = f"syntax error at line {exc.lineno}: {exc.message}"
            raise TemplateError(template_id, label, reason, available) from None
        self._cache[key] = compiled
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return compiled

    @staticmethod
    def _run(template_id: str, part: str, compiled: _Compiled, context: Mapping[str, Any], available: list[str]) -> str:
        try:
            return compiled.template.render(dict(context))
        except SecurityError as exc:
            raise TemplateError(template_id, part, f"sandbox violation: {exc}", available) from None
        except UndefinedError as exc:
            reason = f"missing variable: {exc.message} (use {{{{ name | default('...') }}}} for optional values)"
            raise TemplateError(template_id, part, reason, available) from None
        except TemplateSyntaxError as exc:
            raise TemplateError(template_id, part, f"syntax error: {exc.message}", available) from None
        except Exception as exc:  # templates are user data: any failure inside them is a template error
            raise TemplateError(template_id, part, f"{type(exc).__name__}: {exc}", available) from None

    @staticmethod
    def _subject(template_id: str, label: str, rendered: str, available: list[str]) -> str:
        subject = rendered.strip()
        if has_line_break(subject):
            reason = f"rendered subject contains a line break (header injection refused): {subject!r}"
            raise TemplateError(template_id, label, reason, available)
        subject = _WHITESPACE.sub(" ", subject)
        if not subject:
            raise TemplateError(template_id, label, "rendered subject is empty", available)
        return subject
