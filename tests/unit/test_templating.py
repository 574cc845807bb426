"""Template context and rendering: strict, sandboxed, injection-proof, signature-aware."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from app.domain.models import Campaign, EmailAccount, GeneralSettings, Lead, Template
from app.domain.templating import Renderer, TemplateError, build_context, html_to_text

LEAD_ID = ObjectId("65f000000000000000000001")


def campaign() -> Campaign:
    return Campaign.from_doc(
        {"_id": "c1", "name": "Spring outreach", "status": "active", "sequence_id": "s1", "settings": {}}
    )


def lead(*recipients: dict[str, Any]) -> Lead:
    data = list(recipients) or [{"email": "Ann@Example.com", "first_name": "Ann", "last_name": "Lee"}]
    return Lead.from_doc({"_id": LEAD_ID, "campaign_id": "c1", "lead_data": data, "progress": {}})


def account(**extra: Any) -> EmailAccount:
    doc = {"_id": "a1", "email": "bob@sender.example", "smtp_host": "smtp.example.com", "status": "active"}
    return EmailAccount.from_doc({**doc, **extra})


def general(**fields: Any) -> GeneralSettings:
    return GeneralSettings.from_doc({"email_id": "a1", **fields})


def context(the_lead: Lead | None = None, index: int = 0, gen: GeneralSettings | None = None) -> dict[str, Any]:
    return build_context(
        campaign=campaign(),
        lead=the_lead or lead(),
        recipient_index=index,
        step_order=2,
        account=account(),
        general=gen,
    )


def template(subject: str = "Hi", text: str = "Hello", html: str | None = None, tid: str = "t1") -> Template:
    return Template(id=tid, name=tid, subject=subject, body_text=text, body_html=html)


# --- context ----------------------------------------------------------------------------------------------------


def test_context_has_seed_variables_for_recipient_and_sender() -> None:
    ctx = context(gen=general(signature="Bob\nAcme", sender_name="Bob Smith"))
    assert ctx["first_name"] == "Ann"
    assert ctx["last_name"] == "Lee"
    assert ctx["email"] == "Ann@example.com"
    assert ctx["sender_name"] == "Bob Smith"
    assert ctx["sender_first_name"] == "Bob"
    assert ctx["sender_last_name"] == "Smith"
    assert ctx["sender_email"] == "bob@sender.example"
    assert ctx["account_signature"] == "Bob\nAcme"
    assert (ctx["campaign_id"], ctx["campaign_name"], ctx["step_order"]) == ("c1", "Spring outreach", 2)


def test_name_falls_back_to_first_and_last_name() -> None:
    assert context()["name"] == "Ann Lee"
    explicit = lead({"email": "a@x.com", "name": "Annie", "first_name": "Ann"})
    assert context(explicit)["name"] == "Annie"


def test_missing_optional_values_are_absent_not_empty() -> None:
    ctx = context(lead({"email": "a@x.com", "company_name": "", "website": None}))
    assert "company_name" not in ctx
    assert "website" not in ctx
    assert "name" not in ctx
    assert "sender_name" not in ctx


def test_custom_recipient_fields_are_available_but_tracking_fields_are_not() -> None:
    ctx = context(lead({"email": "a@x.com", "favourite_tool": "vim", "status": "contacted", "last_step": 1}))
    assert ctx["favourite_tool"] == "vim"
    assert "status" not in ctx
    assert "last_step" not in ctx


def test_lead_data_cannot_override_reserved_variables() -> None:
    hostile = lead(
        {
            "email": "a@x.com",
            "sender_name": "Mallory",
            "sender_email": "evil@x.com",
            "campaign_name": "pwned",
            "step_order": 99,
            "account_signature": "evil",
            "sender_extra": "x",
        }
    )
    ctx = context(hostile, gen=general(sender_name="Bob"))
    assert ctx["sender_name"] == "Bob"
    assert ctx["sender_email"] == "bob@sender.example"
    assert ctx["campaign_name"] == "Spring outreach"
    assert ctx["step_order"] == 2
    assert ctx["account_signature"] == ""
    assert "sender_extra" not in ctx


def test_context_for_second_recipient_uses_that_recipient() -> None:
    two = lead({"email": "a@x.com", "first_name": "Ann"}, {"email": "c@x.com", "first_name": "Cat"})
    assert context(two, index=1)["first_name"] == "Cat"


def test_context_for_missing_recipient_index_is_refused() -> None:
    with pytest.raises(ValueError, match="index 3 does not exist"):
        context(index=3)


# --- rendering --------------------------------------------------------------------------------------------------


def test_renders_subject_text_and_html_with_variables() -> None:
    tpl = template("Hi {{ first_name }}", "Hello {{ name }} from {{ sender_email }}", "<p>Hi {{ first_name }}</p>")
    out = Renderer().render(tpl, context())
    assert out.subject == "Hi Ann"
    assert out.text == "Hello Ann Lee from bob@sender.example"
    assert out.html == "<p>Hi Ann</p>"


def test_default_filter_fills_missing_optional_values() -> None:
    tpl = template(text="At {{ company_name | default('your company') }}")
    assert Renderer().render(tpl, context()).text == "At your company"


def test_missing_variable_raises_template_error_naming_it_and_listing_available() -> None:
    with pytest.raises(TemplateError) as caught:
        Renderer().render(template(text="Hello {{ company_name }}"), context())
    err = caught.value
    assert err.template_id == "t1"
    assert err.part == "body_text"
    assert "company_name" in err.reason
    assert "first_name" in err.available
    assert err.available == sorted(err.available)
    assert "company_name" in str(err)


def test_sandbox_violation_is_a_template_error() -> None:
    with pytest.raises(TemplateError) as caught:
        Renderer().render(template(text="{{ ''.__class__.__mro__ }}"), context())
    assert "sandbox" in caught.value.reason or "unsafe" in caught.value.reason


def test_syntax_error_is_a_template_error_with_the_line() -> None:
    with pytest.raises(TemplateError) as caught:
        Renderer().render(template(text="line one\n{{ first_name "), context())
    assert caught.value.part == "body_text"
    assert "syntax error" in caught.value.reason


def test_subject_with_line_break_from_lead_data_is_refused() -> None:
    hostile = lead({"email": "a@x.com", "company_name": "Acme\r\nBcc: everyone@x.com"})
    with pytest.raises(TemplateError) as caught:
        Renderer().render(template(subject="News for {{ company_name }}"), context(hostile))
    assert caught.value.part == "subject"
    assert "line break" in caught.value.reason


def test_subject_whitespace_is_collapsed_to_one_line() -> None:
    out = Renderer().render(template(subject="  Hi   {{ first_name }}\t there  "), context())
    assert out.subject == "Hi Ann there"


def test_empty_rendered_subject_is_refused() -> None:
    with pytest.raises(TemplateError, match="subject is empty"):
        Renderer().render(template(subject="{{ nickname | default('') }}"), context())


def test_html_output_is_autoescaped_but_text_is_not() -> None:
    ctx = context(lead({"email": "a@x.com", "company_name": "<b>A&B</b>"}))
    out = Renderer().render(template(text="{{ company_name }}", html="<p>{{ company_name }}</p>"), ctx)
    assert out.text == "<b>A&B</b>"
    assert out.html == "<p>&lt;b&gt;A&amp;B&lt;/b&gt;</p>"


def test_signature_is_appended_when_template_does_not_use_it() -> None:
    ctx = context(gen=general(signature="Bob <CEO>\nAcme & Co"))
    out = Renderer().render(template(text="Hello", html="<html><body><p>Hello</p></body></html>"), ctx)
    assert out.text == "Hello\n\n-- \nBob <CEO>\nAcme & Co"
    assert out.html is not None
    assert "-- <br>Bob &lt;CEO&gt;<br>Acme &amp; Co" in out.html
    assert out.html.index("Acme &amp; Co") < out.html.index("</body>")


def test_signature_is_not_appended_twice_when_template_uses_it() -> None:
    ctx = context(gen=general(signature="Bob"))
    out = Renderer().render(template(text="Hello\n{{ account_signature }}"), ctx)
    assert out.text == "Hello\nBob"


def test_no_signature_block_when_account_has_no_signature() -> None:
    out = Renderer().render(template(text="Hello", html="<p>Hello</p>"), context())
    assert out.text == "Hello"
    assert out.html == "<p>Hello</p>"


def test_text_is_derived_from_html_when_template_has_no_text() -> None:
    tpl = template(text="", html="<p>Hi {{ first_name }},</p><p>Line one<br>Line two &amp; more</p>")
    out = Renderer().render(tpl, context())
    assert out.text == "Hi Ann,\n\nLine one\nLine two & more"


def test_html_to_text_drops_styles_and_keeps_links() -> None:
    html = "<html><head><style>p{color:red}</style></head><body><a href='https://x.com/a'>our site</a></body></html>"
    assert html_to_text(html) == "our site (https://x.com/a)"


def test_changed_template_source_is_recompiled_not_served_from_cache() -> None:
    renderer = Renderer(max_cached=4)
    assert renderer.render(template(text="one {{ first_name }}"), context()).text == "one Ann"
    assert renderer.render(template(text="two {{ first_name }}"), context()).text == "two Ann"


def test_cache_never_exceeds_its_bound() -> None:
    renderer = Renderer(max_cached=3)
    for i in range(10):
        renderer.render(template(text=f"v{i}", tid=f"t{i}"), context())
    assert len(renderer._cache) <= 3
