"""Compose: the message for one recipient, or an error that says whose it is (template, account, recipient)."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from app.domain.models import Campaign, EmailAccount, GeneralSettings, Lead, LeadProgress, Recipient, Template
from app.domain.templating import Renderer
from app.send.compose import ComposedMessage, ComposeError, compose, display_name
from app.transport.base import OutgoingMessage, ValidatedMessage

LEAD_ID = ObjectId("65f000000000000000000001")
CAMPAIGN = Campaign.from_doc({"_id": "c1", "name": "Spring", "status": "active", "sequence_id": "s1", "settings": {}})


def lead(**fields: Any) -> Lead:
    data = [{"email": "ann@acme.example", "first_name": "Ann", "last_name": "Lee", **fields}]
    return Lead.from_doc({"_id": LEAD_ID, "campaign_id": "c1", "lead_data": data, "progress": {}})


def account(**extra: Any) -> EmailAccount:
    doc = {"_id": "a1", "email": "bob@sender.example", "smtp_host": "smtp.example.com", "status": "active"}
    return EmailAccount.from_doc({**doc, **extra})


def template(subject: str = "Hi {{ first_name }}", text: str = "Hello {{ first_name }}") -> Template:
    return Template(id="t1", name="t1", subject=subject, body_text=text)


def run(
    the_template: Template | None = None,
    *,
    the_lead: Lead | None = None,
    the_account: EmailAccount | None = None,
    general: GeneralSettings | None = None,
) -> OutgoingMessage | ComposeError:
    return compose(
        Renderer(),
        the_template or template(),
        campaign=CAMPAIGN,
        lead=the_lead or lead(),
        step_order=2,
        index=0,
        account=the_account or account(),
        general=general,
    )


@pytest.mark.parametrize(
    ("the_account", "general", "from_name"),
    [
        pytest.param(
            account(sender_name="Bob Account"),
            GeneralSettings("a1", sender_name="Bob General"),
            "Bob General",
            id="general-settings-win",
        ),
        pytest.param(account(sender_name="Bob Account"), GeneralSettings("a1"), "Bob Account", id="general-unset"),
        pytest.param(account(sender_name="Bob Account"), None, "Bob Account", id="no-general-settings"),
        pytest.param(account(), None, None, id="no-name-anywhere"),
    ],
)
def test_a_rendered_message_takes_its_from_name_from_general_settings_else_the_account(
    the_account: EmailAccount, general: GeneralSettings | None, from_name: str | None
) -> None:
    message = run(the_account=the_account, general=general)
    assert isinstance(message, ValidatedMessage)  # checked once, here
    assert message.message == ComposedMessage(
        message_id=f"<outbound.{LEAD_ID}.2.0@sender.example>",
        from_email="bob@sender.example",
        from_name=from_name,
        to_email="ann@acme.example",
        to_name="Ann Lee",
        subject="Hi Ann",
        text="Hello Ann",
        html=None,
        headers={"List-Unsubscribe": f"<mailto:bob@sender.example?subject=unsubscribe%20outbound.{LEAD_ID}.2.0>"},
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"name": "  Annie Lee ", "first_name": "Ann"}, "Annie Lee", id="name-wins"),
        pytest.param({"first_name": "Ann", "last_name": "Lee"}, "Ann Lee", id="first-and-last"),
        pytest.param({"first_name": " Ann "}, "Ann", id="first-only"),
        pytest.param({"name": "  ", "last_name": "Lee"}, "Lee", id="blank-name-falls-back"),
        pytest.param({"first_name": 7, "last_name": None}, None, id="non-text-ignored"),
        pytest.param({}, None, id="none"),
    ],
)
def test_display_name(fields: dict[str, Any], expected: str | None) -> None:
    assert display_name(fields) == expected


@pytest.mark.parametrize(
    ("the_template", "part"),
    [
        pytest.param(template(text="Hello {{ company }}"), "missing variable", id="missing-lead-variable"),
        pytest.param(template(subject="Hi {{ first_name"), "syntax error", id="syntax-error"),
        pytest.param(template(subject="{{ ''.__class__ }}"), "sandbox violation", id="sandbox"),
    ],
)
def test_a_broken_template_is_the_templates_error(the_template: Template, part: str) -> None:
    error = run(the_template)
    assert isinstance(error, ComposeError)
    assert (error.kind, error.template_id) == ("template", "t1")
    assert error.reason.startswith("template error: template t1")
    assert part in error.reason


def test_a_missing_sender_name_is_the_accounts_error() -> None:
    error = run(template(text="Best, {{ sender_name }}"), the_account=account(), general=None)
    assert isinstance(error, ComposeError)
    assert error.kind == "account"
    assert "'sender_name' is undefined" in error.reason
    assert error.reason.endswith("(account a1 has no such value: set it in email_general_settings)")


@pytest.mark.parametrize(
    ("the_template", "the_lead"),
    [
        pytest.param(template(subject="Hi\r\nBcc: all@victim.example"), None, id="in-the-template"),
        pytest.param(template(), lead(first_name="Ann\nBcc: all@victim.example"), id="from-lead-data"),
    ],
)
def test_a_header_injection_in_the_subject_is_refused_as_a_template_error(
    the_template: Template, the_lead: Lead | None
) -> None:
    error = run(the_template, the_lead=the_lead)
    assert isinstance(error, ComposeError)
    assert error.kind == "template"
    assert "header injection refused" in error.reason


def test_a_line_break_in_the_sender_name_is_the_accounts_error() -> None:
    error = run(general=GeneralSettings("a1", sender_name="Bob\r\nBcc: x@y.example"))
    assert isinstance(error, ComposeError)
    assert error.kind == "account"
    assert error.reason.startswith("invalid header: header From display name contains a line break")


def test_an_unsendable_non_ascii_local_part_is_the_recipients_error() -> None:
    # Lead.from_doc refuses such an address; an older document may still hold one.
    the_lead = Lead("l1", "c1", (Recipient("josé..x@acme.example", fields={"first_name": "José"}),), LeadProgress())
    error = run(the_lead=the_lead)
    assert isinstance(error, ComposeError)
    assert error.kind == "recipient"
    assert error.reason.startswith(
        "invalid header: header To: 'josé..x@acme.example' has a non-ASCII local part that is not a plain dot-atom"
    )


def test_a_non_ascii_local_part_composes_a_message_that_needs_smtputf8() -> None:
    the_lead = Lead("l1", "c1", (Recipient("josé@acme.example", fields={"first_name": "José"}),), LeadProgress())
    message = run(the_lead=the_lead)
    assert isinstance(message, ValidatedMessage)
    assert (message.rcpt_to, message.smtputf8) == ("josé@acme.example", True)
