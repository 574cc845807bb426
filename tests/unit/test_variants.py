"""Variants and spintax: the wording of one send follows from its send key alone."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from app.domain import template_lint
from app.domain.document_reader import InvalidDocument
from app.domain.models import Template
from app.domain.templating import Renderer, TemplateError
from app.domain.variants import SpintaxError, Variant, choose_variant, spin, spins_in

TWO = (Variant("a", 1.0, subject="A"), Variant("b", 3.0, subject="B"))
KEYS = [f"65f00000000000000000{n:04x}:1:{n % 3}" for n in range(4000)]


def test_the_same_send_key_always_gets_the_same_variant() -> None:
    for key in KEYS[:200]:
        assert choose_variant(TWO, key) == choose_variant(TWO, key)


def test_a_template_without_variants_has_no_variant_to_choose() -> None:
    assert choose_variant((), "lead:1:0") is None


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        pytest.param((1.0, 1.0), (0.5, 0.5), id="even"),
        pytest.param((1.0, 3.0), (0.25, 0.75), id="one-to-three"),
        pytest.param((0.2, 0.3, 0.5), (0.2, 0.3, 0.5), id="fractions"),
        pytest.param((99.0, 1.0), (0.99, 0.01), id="rare-variant"),
    ],
)
def test_variants_are_chosen_in_proportion_to_their_weights(
    weights: tuple[float, ...], expected: tuple[float, ...]
) -> None:
    variants = tuple(Variant(f"v{i}", w, subject=str(i)) for i, w in enumerate(weights))
    counts = Counter(choose_variant(variants, key).name for key in KEYS)  # type: ignore[union-attr]
    for i, share in enumerate(expected):
        assert abs(counts[f"v{i}"] / len(KEYS) - share) < 0.03, counts


def test_a_rare_variant_is_still_chosen_for_some_sends() -> None:
    variants = (Variant("common", 99.0, subject="c"), Variant("rare", 1.0, subject="r"))
    assert {choose_variant(variants, key).name for key in KEYS} == {"common", "rare"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("source", "outcomes"),
    [
        pytest.param("{Hi|Hello|Hey} there", {"Hi there", "Hello there", "Hey there"}, id="flat"),
        pytest.param("{Hi|Hello {friend|pal}}!", {"Hi!", "Hello friend!", "Hello pal!"}, id="nested"),
        pytest.param("{Hi|}.", {"Hi.", "."}, id="empty-option"),
        pytest.param(
            "{Hi|Hello} {{ name | upper }}", {"Hi {{ name | upper }}", "Hello {{ name | upper }}"}, id="jinja"
        ),
        pytest.param("{Hi {{ name }}|Hey {{ name }}}", {"Hi {{ name }}", "Hey {{ name }}"}, id="jinja-inside"),
        pytest.param("{% if a|length %}x{% endif %}", {"{% if a|length %}x{% endif %}"}, id="jinja-statement"),
        pytest.param("{# a|b #}ok", {"{# a|b #}ok"}, id="jinja-comment"),
        pytest.param("{{ '{' }}a|b{{ '}' }}", {"{{ '{' }}a|b{{ '}' }}"}, id="escaped-braces"),
        pytest.param("p { color: red; } a|b", {"p { color: red; } a|b"}, id="braces-without-bar-are-text"),
        pytest.param("x { {a|b} }", {"x { a }", "x { b }"}, id="spin-inside-plain-braces"),
        pytest.param("100% | } stray", {"100% | } stray"}, id="stray-bar-and-brace"),
        pytest.param("{ unclosed but plain", {"{ unclosed but plain"}, id="unclosed-plain-brace"),
    ],
)
def test_spintax_picks_one_option_per_spin_and_leaves_jinja_and_plain_braces_alone(
    source: str, outcomes: set[str]
) -> None:
    seen = {spin(source, key, "body")[0] for key in KEYS[:300]}
    assert seen == outcomes


def test_a_spin_is_the_same_for_the_same_send_and_reports_what_it_chose() -> None:
    source = "Line one\n{Hi|Hello|Hey} {you|there}"
    text, choices = spin(source, "lead:1:0", "body")
    assert (text, choices) == spin(source, "lead:1:0", "body")
    assert [(c.line, c.column, c.options) for c in choices] == [(2, 1, 3), (2, 16, 2)]
    assert text == f"Line one\n{choices[0].text} {choices[1].text}"


def test_matching_spins_of_the_text_and_html_bodies_agree() -> None:
    for key in KEYS[:100]:
        text, _ = spin("{Hi|Hello|Hey} Ann", key, "body")
        html, _ = spin("<p>{Hi|Hello|Hey} <b>Ann</b></p>", key, "body")
        assert html.startswith(f"<p>{text.split()[0]} ")


def test_spins_of_different_sends_vary() -> None:
    assert len({spin("{a|b|c|d}", key, "subject")[0] for key in KEYS[:100]}) == 4


@pytest.mark.parametrize(
    ("source", "line", "column"),
    [
        pytest.param("{Hi|Hello", 1, 1, id="unclosed"),
        pytest.param("ok\n  {Hi|{a|b}", 2, 3, id="outer-unclosed"),
        pytest.param("{a|b} {c|d", 1, 7, id="second-unclosed"),
    ],
)
def test_a_spin_that_is_never_closed_is_reported_with_its_line_and_column(source: str, line: int, column: int) -> None:
    with pytest.raises(SpintaxError) as caught:
        spin(source, "lead:1:0", "body")
    assert (caught.value.line, caught.value.column) == (line, column)
    assert "{{ '{' }}" in str(caught.value)


def test_spins_are_counted_nested_ones_too() -> None:
    assert spins_in("{a|{b|c}} {d|e} plain {x}") == 3
    assert spins_in("no spins") == 0


def doc(**extra: Any) -> dict[str, Any]:
    return {"_id": "t1", "name": "intro", "subject": "Hi", "body_text": "Hello", **extra}


def test_a_template_reads_its_variants_with_default_names_and_weights() -> None:
    found = Template.from_doc(
        doc(variants=[{"subject": "A"}, {"name": "long", "body_text": "Subject: B\nBody B", "weight": 2.5}])
    )
    assert found.variants == (Variant("v1", 1.0, subject="A"), Variant("long", 2.5, subject="B", body_text="Body B"))


@pytest.mark.parametrize(
    ("variants", "field", "reason"),
    [
        pytest.param("a", "variants", "must be a list", id="not-a-list"),
        pytest.param([3], "variants[0]", "must be an object", id="not-an-object"),
        pytest.param([{"subject": "A", "weight": 0}], "variants[0].weight", "positive", id="zero-weight"),
        pytest.param([{"subject": "A", "weight": -1}], "variants[0].weight", "positive", id="negative-weight"),
        pytest.param([{"subject": "A", "weight": "2"}], "variants[0].weight", "positive", id="text-weight"),
        pytest.param([{"subject": "A", "weight": True}], "variants[0].weight", "positive", id="bool-weight"),
        pytest.param([{"subject": "A"}, {"subject": 5}], "variants[1].subject", "must be a string", id="subject"),
        pytest.param([{"subject": "A", "body": "x"}], "variants[0].body", "not a variant field", id="unknown"),
        pytest.param(
            [{"name": "x", "subject": "A"}, {"name": "x", "subject": "B"}], "variants[1].name", "must differ", id="dup"
        ),
    ],
)
def test_a_malformed_variant_is_refused_naming_its_field(variants: Any, field: str, reason: str) -> None:
    with pytest.raises(InvalidDocument) as caught:
        Template.from_doc(doc(variants=variants))
    assert caught.value.field == field
    assert reason in str(caught.value)


def test_a_variant_overrides_the_subject_alone_or_both_bodies() -> None:
    base = Template("t1", "intro", "Hi", "Text", "<p>HTML</p>")
    assert base.as_variant(Variant("own", 2.0)) == Template("t1", "intro", "Hi", "Text", "<p>HTML</p>")
    assert base.as_variant(Variant("s", subject="Yo")) == Template("t1", "intro", "Yo", "Text", "<p>HTML</p>")
    assert base.as_variant(Variant("h", body_html="<p>B</p>")) == Template("t1", "intro", "Hi", "", "<p>B</p>")
    assert base.as_variant(None) is base


def template_with_variants() -> Template:
    return Template.from_doc(
        doc(
            subject="{Hi|Hello} {{ first_name }}",
            variants=[
                {"name": "short", "body_text": "{Quick|Brief} note, {{ first_name }}."},
                {"name": "long", "subject": "A longer {hello|greeting}", "body_text": "A long letter."},
            ],
        )
    )


def test_rendering_uses_the_variant_and_spins_of_the_send() -> None:
    renderer = Renderer()
    rendered = {
        key: renderer.render(template_with_variants(), {"first_name": "Ann"}, send_key=key) for key in KEYS[:60]
    }
    assert {r.variant for r in rendered.values()} == {"short", "long"}
    for key, email in rendered.items():
        assert renderer.render(template_with_variants(), {"first_name": "Ann"}, send_key=key) == email
        if email.variant == "short":
            assert email.subject in ("Hi Ann", "Hello Ann")
            assert email.text in ("Quick note, Ann.", "Brief note, Ann.")
        else:
            assert email.subject in ("A longer hello", "A longer greeting")
            assert email.text == "A long letter."
        assert len(email.spins) == (2 if email.variant == "short" else 1)
        assert all(spin.text in email.subject + email.text for spin in email.spins)


def test_spintax_in_lead_data_is_never_spun() -> None:
    email = Renderer().render(
        Template("t1", "intro", "Hi", "Dear {{ company_name }}"), {"company_name": "{Acme|Evil}"}, send_key="l:1:0"
    )
    assert email.text == "Dear {Acme|Evil}"


def test_a_literal_brace_is_written_as_a_jinja_string() -> None:
    email = Renderer().render(Template("t1", "intro", "Hi", "{{ '{' }}a|b{{ '}' }}"), {}, send_key="l:1:0")
    assert email.text == "{a|b}"


def test_malformed_spintax_in_a_variant_is_a_template_error_naming_the_variant_part_and_place() -> None:
    broken = Template.from_doc(doc(variants=[{"name": "only", "body_text": "ok\n{Hi|Hello"}]))
    with pytest.raises(TemplateError) as caught:
        Renderer().render(broken, {}, send_key="l:1:0")
    assert caught.value.part == "variants[0].body_text"
    assert "line 2, column 1" in caught.value.reason


def test_a_jinja_error_in_a_variant_names_the_variant_part() -> None:
    broken = Template.from_doc(doc(variants=[{"subject": "Hi {{ nobody }}"}]))
    with pytest.raises(TemplateError) as caught:
        Renderer().render(broken, {}, send_key="l:1:0")
    assert caught.value.part == "variants[0].subject"


def test_lint_checks_every_variant_and_names_the_variant_part_at_fault() -> None:
    found = Template.from_doc(
        doc(
            subject="Hi {{ first_name }}",
            variants=[
                {"name": "fine", "subject": "{Hey|Hello} {{ first_name }}"},
                {"name": "typo", "body_text": "Dear {{ frist_name }}"},
                {"name": "open", "subject": "{Hey|Hello"},
            ],
        )
    )
    result = template_lint.lint(found)
    assert [(p.part, p.kind) for p in result.problems] == [
        ("variants[1].body_text", "undefined"),
        ("variants[2].subject", "spintax"),
    ]
    assert result.rendered is not None and result.rendered.subject == "Hi Ada"
    fine = result.variants["fine"]
    assert fine is not None and fine.subject in ("Hey Ada", "Hello Ada") and fine.variant is None
    assert result.variants["open"] is None
