"""Variants and spintax: which wording one send gets, decided from its send key alone. Pure.

A template's `variants` are alternative subjects and bodies with weights. A send's variant is found by mapping
a SHA-256 of its send key (`<lead>:<step>:<index>`) onto the cumulative weights, so a retry, a dry run and
`debug-template` all see the variant the real send gets, and no state is kept to know it.

Spintax `{Hi|Hello|Hey}` picks one option per spin, nested spins allowed. It is resolved on the template's
source, before Jinja renders it, so text from a lead's data is never spun, and Jinja's own `{{ }}`, `{% %}`
and `{# #}` are copied through untouched: a literal brace is `{{ '{' }}`. Braces without a `|` inside them
(CSS in an HTML body, say) are plain text. A spin is seeded by the send key, the part (subject or body) and
its place among the part's spins, so the text and HTML bodies written with the same spins agree.
"""

from __future__ import annotations

import functools
import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

_JINJA_OPENERS = {"{{": "}}", "{%": "%}", "{#": "#}"}


@dataclass(frozen=True)
class Variant:
    """One of a template's variants: the parts it overrides (None: the template's) and its weight."""

    name: str
    weight: float = 1.0
    subject: str | None = None
    body_text: str | None = None
    body_html: str | None = None


@dataclass(frozen=True)
class SpinChoice:
    """What one spin of a part chose for a send: where the spin is, which option of how many, and its text."""

    part: str
    line: int
    column: int
    chosen: int  # 0-based
    options: int
    text: str


class SpintaxError(ValueError):
    """Spintax that cannot be read: says where (line and column of the part's source) and what to write."""

    def __init__(self, line: int, column: int, reason: str) -> None:
        self.line = line
        self.column = column
        self.reason = reason
        super().__init__(f"spintax at line {line}, column {column}: {reason}")


def fraction(key: str) -> float:
    """A number in [0, 1) that depends on `key` only (the first 64 bits of its SHA-256)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_variant(variants: Sequence[Variant], send_key: str) -> Variant | None:
    """The variant the send `send_key` gets (None when there are none), in proportion to the weights."""
    if not variants:
        return None
    bounds = list(accumulate(v.weight for v in variants))
    point = fraction(f"variant:{send_key}") * bounds[-1]
    return variants[min(bisect_right(bounds, point), len(variants) - 1)]


@dataclass
class _Spin:
    offset: int
    options: list[list[_Node]]
    spin: bool = False  # a `|` was seen: otherwise the braces are plain text


_Node = str | _Spin


def _jinja_end(source: str, start: int) -> int:
    """The offset just past the Jinja construct opened at `start` (quoted strings inside it skipped)."""
    closer = _JINJA_OPENERS[source[start : start + 2]]
    i, quote = start + 2, ""
    while i < len(source):
        c = source[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif source.startswith(closer, i):
            return i + 2
        i += 1
    return len(source)  # unclosed: Jinja reports it with its own line number


def _where(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def _parse(source: str) -> list[_Node]:
    root = _Spin(-1, [[]])
    stack = [root]
    i = 0
    while i < len(source):
        pair = source[i : i + 2]
        top = stack[-1]
        if pair in _JINJA_OPENERS:
            end = _jinja_end(source, i)
            top.options[-1].append(source[i:end])
            i = end
            continue
        c = source[i]
        if c == "{":
            stack.append(_Spin(i, [[]]))
        elif c == "|" and len(stack) > 1:
            top.spin = True
            top.options.append([])
        elif c == "}" and len(stack) > 1:
            stack.pop()
            stack[-1].options[-1].extend([top] if top.spin else ["{", *top.options[0], "}"])
        else:
            top.options[-1].append(c)
        i += 1
    for open_spin in stack[1:]:
        if open_spin.spin:
            line, column = _where(source, open_spin.offset)
            raise SpintaxError(line, column, "'{' is never closed (a literal brace is written {{ '{' }})")
    # Unclosed braces without a `|` are plain text, like any other brace without one.
    nodes = root.options[0]
    for open_braces in stack[1:]:
        nodes += ["{", *open_braces.options[0]]
    return nodes


# A template's sources are the same for every recipient: parse each once. A `|` is in most of them (Jinja's
# filters), a spin in few.
@functools.lru_cache(maxsize=512)
def _spun(source: str) -> tuple[_Node, ...] | None:
    """`source` parsed, adjacent text merged; None when it has no spin (it renders as it is)."""
    merged: list[_Node] = []
    for node in _parse(source):
        if isinstance(node, str) and merged and isinstance(merged[-1], str):
            merged[-1] += node
        else:
            merged.append(node)
    return tuple(merged) if any(isinstance(node, _Spin) for node in merged) else None


def spin(source: str, send_key: str, part: str) -> tuple[str, tuple[SpinChoice, ...]]:
    """`source` with every spin resolved for the send `send_key`, and what each spin chose (in source order).

    `part` names the part for seeding and reporting (`subject`, `body`): pass the same for text and HTML bodies
    so that matching spins agree. Raise SpintaxError when a spin is never closed.
    """
    if "|" not in source:
        return source, ()
    nodes = _spun(source)
    if nodes is None:
        return source, ()
    choices: list[SpinChoice] = []
    out: list[str] = []
    _resolve(nodes, source, send_key, part, choices, out)
    return "".join(out), tuple(choices)


def _resolve(
    nodes: Sequence[_Node], source: str, send_key: str, part: str, choices: list[SpinChoice], out: list[str]
) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
            continue
        ordinal = len(choices)
        chosen = int(fraction(f"spin:{send_key}:{part}:{ordinal}") * len(node.options))
        line, column = _where(source, node.offset)
        start = len(out)
        choices.append(SpinChoice(part, line, column, chosen, len(node.options), ""))
        _resolve(node.options[chosen], source, send_key, part, choices, out)
        choices[ordinal] = SpinChoice(part, line, column, chosen, len(node.options), "".join(out[start:]))


def spins_in(source: str) -> int:
    """How many spins `source` has (every one, nested ones too); raise SpintaxError when one is never closed."""

    def count(nodes: list[_Node]) -> int:
        return sum(1 + sum(count(o) for o in n.options) for n in nodes if isinstance(n, _Spin))

    return count(_parse(source)) if "|" in source else 0
