"""Account eligibility: the account-provided variables a campaign's templates read that an account cannot supply."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.eligibility import (
    ACCOUNT_VARIABLES,
    account_variables_used,
    fix_hint,
    ineligible_accounts,
    may_send,
    missing_account_variables,
)
from app.domain.models import Campaign, EmailAccount, GeneralSettings, Lead, Template
from app.domain.templating import Renderer, TemplateError, build_context


def template(subject: str = "Hi", body_text: str = "Hello", body_html: str | None = None) -> Template:
    return Template(id="t1", name="Intro", subject=subject, body_text=body_text, body_html=body_html)


def account(account_id: str = "a1", **extra: Any) -> EmailAccount:
    doc = {"_id": account_id, "email": f"{account_id}@sender.example", "smtp_host": "smtp.example.com"}
    return EmailAccount.from_doc({"status": "active", **doc, **extra})


def general(**fields: Any) -> GeneralSettings:
    return GeneralSettings.from_doc({"email_id": "a1", **fields})


def campaign(**settings: Any) -> Campaign:
    return Campaign.from_doc({"_id": "c1", "name": "Spring", "status": "active", "settings": settings})


# (templates, variables the templates need from the account)
USED_CASES = [
    pytest.param([template()], set(), id="no-variables"),
    pytest.param([template(body_text="Hi {{ first_name }}, {{ company }}")], set(), id="lead-variables-only"),
    pytest.param([template(body_text="{{ campaign_name }} step {{ step_order }}")], set(), id="campaign-variables"),
    pytest.param([template(body_text="Cheers, {{ sender_name }}")], {"sender_name"}, id="text-body"),
    pytest.param([template(subject="From {{ sender_first_name }}")], {"sender_first_name"}, id="subject"),
    pytest.param(
        [template(body_text="", body_html="<p>{{ sender_last_name }}</p>")], {"sender_last_name"}, id="html-body"
    ),
    pytest.param(
        [template(body_text="{{ sender_name }}"), template(subject="{{ sender_email }}")],
        {"sender_name", "sender_email"},
        id="several-templates",
    ),
    pytest.param([template(body_text="{{ sender_name | default('The team') }}")], set(), id="default-filter"),
    pytest.param([template(body_text="{{ sender_name | d('The team') | upper }}")], set(), id="d-then-filter"),
    pytest.param([template(body_text="{{ sender_name | upper | default('x') }}")], {"sender_name"}, id="filter-first"),
    pytest.param(
        [template(body_text="{{ sender_name | default('x') }} {{ sender_name }}")], {"sender_name"}, id="once-bare"
    ),
    pytest.param(
        [template(body_text="{{ sender_name | default(sender_first_name) }}")],
        {"sender_first_name"},
        id="default-from-another",
    ),
    pytest.param([template(body_text="{% if sender_name is defined %}x{% endif %}")], set(), id="is-defined"),
    pytest.param([template(body_text="{% if sender_name %}x{% endif %}")], {"sender_name"}, id="bare-if"),
    pytest.param([template(body_text="{% set sender_name = 'Bob' %}{{ sender_name }}")], set(), id="set-in-template"),
    pytest.param(
        [template(body_text="{% for sender_name in names %}{{ sender_name }}{% endfor %}")], set(), id="loop-variable"
    ),
    pytest.param([template(body_text="{{ account_signature }}")], {"account_signature"}, id="signature"),
    pytest.param(
        [template(body_text="{{ sender_name", body_html="<p>{{ sender_email }}</p>")],
        {"sender_email"},
        id="syntax-error-part-skipped",
    ),
]


@pytest.mark.parametrize(("templates", "expected"), USED_CASES)
def test_account_variables_used(templates: list[Template], expected: set[str]) -> None:
    assert account_variables_used(templates) == expected


def test_account_variables_are_the_sender_and_signature_names() -> None:
    assert {
        "sender_name",
        "sender_first_name",
        "sender_last_name",
        "sender_email",
        "account_signature",
    } == ACCOUNT_VARIABLES


NAME_TEMPLATE = template(body_text="{{ sender_name }}")
ALL_TEMPLATE = template(
    body_text="{{ sender_name }} {{ sender_first_name }} {{ sender_last_name }} {{ sender_email }}",
    body_html="{{ account_signature }}",
)

# (templates, account, general settings, missing variables)
MISSING_CASES = [
    pytest.param([NAME_TEMPLATE], account(), None, ("sender_name",), id="no-general-settings"),
    pytest.param([NAME_TEMPLATE], account(), general(signature="--"), ("sender_name",), id="general-without-name"),
    pytest.param([NAME_TEMPLATE], account(), general(sender_name="Bob Smith"), (), id="general-sender-name"),
    pytest.param([NAME_TEMPLATE], account(sender_name="Bob Smith"), None, (), id="account-sender-name"),
    pytest.param([NAME_TEMPLATE], account(name="Bob Smith"), None, (), id="account-name-field"),
    pytest.param([NAME_TEMPLATE], account(), general(sender_first_name="Bob"), (), id="first-name-makes-a-name"),
    pytest.param([NAME_TEMPLATE], account(), general(sender_name=""), ("sender_name",), id="empty-name"),
    pytest.param(
        [ALL_TEMPLATE],
        account(),
        None,
        ("sender_first_name", "sender_last_name", "sender_name"),
        id="signature-and-email-always-there",
    ),
    pytest.param([ALL_TEMPLATE], account(), general(sender_name="Bob"), ("sender_last_name",), id="one-word-name"),
    pytest.param([ALL_TEMPLATE], account(), general(sender_name="Bob Smith"), (), id="two-word-name"),
    pytest.param([ALL_TEMPLATE], account(sender_name="Bob Smith"), None, (), id="account-two-word-name"),
    pytest.param(
        [template(body_text="{{ sender_name | default('us') }}")], account(), None, (), id="default-satisfies"
    ),
    pytest.param([template(body_text="{{ first_name }}")], account(), None, (), id="no-account-variables"),
]


@pytest.mark.parametrize(("templates", "the_account", "settings", "expected"), MISSING_CASES)
def test_missing_account_variables(
    templates: list[Template], the_account: EmailAccount, settings: GeneralSettings | None, expected: tuple[str, ...]
) -> None:
    assert missing_account_variables(templates, the_account, settings) == expected


@pytest.mark.parametrize(("templates", "the_account", "settings", "expected"), MISSING_CASES)
def test_the_renderer_agrees(
    templates: list[Template], the_account: EmailAccount, settings: GeneralSettings | None, expected: tuple[str, ...]
) -> None:
    lead = Lead.from_doc(
        {"_id": "l1", "campaign_id": "c1", "lead_data": [{"email": "ann@example.com", "first_name": "Ann"}]}
    )
    the_context = build_context(
        campaign=campaign(), lead=lead, recipient_index=0, step_order=1, account=the_account, general=settings
    )
    renderer = Renderer()
    for one in templates:
        if expected:
            with pytest.raises(TemplateError, match=r"'sender_[a-z_]+' is undefined"):
                renderer.render(one, the_context)
        else:
            renderer.render(one, the_context)


def test_ineligible_accounts_keeps_order_and_only_the_accounts_missing_something() -> None:
    accounts = [account("a1"), account("a2"), account("a3", sender_name="Carol")]
    settings = {"a2": GeneralSettings(email_id="a2", sender_name="Bob")}
    found = ineligible_accounts([NAME_TEMPLATE], accounts, settings)
    assert [(i.account.id, i.missing) for i in found] == [("a1", ("sender_name",))]
    assert ineligible_accounts([template()], accounts, {}) == []


# (campaign account_ids, account, may send)
SCOPE_CASES = [
    pytest.param((), account(), True, id="no-list-active"),
    pytest.param((), account(status="paused"), False, id="no-list-paused"),
    pytest.param(("a1",), account(), True, id="listed"),
    pytest.param(("a1",), account(status="paused"), True, id="listed-paused"),
    pytest.param(("a2",), account(), False, id="not-listed"),
]


@pytest.mark.parametrize(("account_ids", "the_account", "expected"), SCOPE_CASES)
def test_may_send(account_ids: tuple[str, ...], the_account: EmailAccount, expected: bool) -> None:
    assert may_send(campaign(account_ids=list(account_ids)), the_account) is expected


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("sender_name", "set sender_name in email_general_settings for account b@x.example (or sender_name on "),
        ("sender_first_name", "set sender_first_name in email_general_settings for account b@x.example (or a "),
        ("sender_last_name", "set sender_last_name in email_general_settings for account b@x.example (or a "),
    ],
)
def test_fix_hint_says_where_to_set_the_variable(variable: str, expected: str) -> None:
    assert fix_hint(variable, "b@x.example").startswith(expected)
